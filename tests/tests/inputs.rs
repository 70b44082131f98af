//! Requests and money validated at the door: an idempotency key names one
//! request and nothing else, whether or not a worker has stored the order.

use std::collections::BTreeSet;

use anyhow::Context;
use ordersaga_proto::v1 as pb;
use ordersaga_tests::{Stack, TestDatabase, place_request};
use ordersaga_worker::WorkerSettings;
use tonic::Code;

/// `PlaceOrder` once; the total's minor units, or the error code.
async fn place(stack: &Stack, req: pb::PlaceOrderRequest) -> Result<(String, i64), Code> {
    let mut grpc = stack.grpc.clone();
    match grpc.place_order(req).await {
        Ok(res) => {
            let res = res.into_inner();
            Ok((res.order_id, res.total.map_or(-1, |t| t.minor_units)))
        }
        Err(status) => Err(status.code()),
    }
}

/// 20 racing calls with one key, half with other quantities, no worker:
/// one kind wins with its own total, the other kind is refused; every
/// other field changed is refused too; after the saga stored the order the
/// answers are the same.
async fn reused_key_is_refused_every_time(db: TestDatabase) -> anyhow::Result<()> {
    let mut stack = Stack::builder()
        .database(db)
        .without_worker()
        .start()
        .await?;
    let mug = stack.product("MUG-1", 1_000, 100).await?;
    let one = place_request("erin", &[("MUG-1", 1)], "k-race");
    let two = place_request("erin", &[("MUG-1", 2)], "k-race");

    let calls = (0..20).map(|n| {
        let req = if n % 2 == 0 { one.clone() } else { two.clone() };
        let stack = &stack;
        async move { (req.lines[0].quantity, place(stack, req).await) }
    });
    let answers = futures::future::join_all(calls).await;
    let winners: BTreeSet<i64> = answers
        .iter()
        .filter(|(_, a)| a.is_ok())
        .map(|(q, _)| *q)
        .collect();
    assert_eq!(winners.len(), 1, "one kind of request wins: {answers:?}");
    let winner_qty = *winners.first().context("a winner")?;
    let mut order_ids = BTreeSet::new();
    for (qty, answer) in &answers {
        match answer {
            Ok((order_id, total)) => {
                assert_eq!(*total, 1_000 * winner_qty, "the first request's total");
                order_ids.insert(order_id.clone());
            }
            Err(code) => {
                assert_ne!(*qty, winner_qty, "a replay of the winner is answered");
                assert_eq!(*code, Code::FailedPrecondition, "{answers:?}");
            }
        }
    }
    assert_eq!(order_ids.len(), 1, "one order");
    let order_id = order_ids.first().context("an order")?.clone();
    let (same, loser) = if winner_qty == 1 {
        (one, two)
    } else {
        (two, one)
    };

    // Any other field is another request.
    let mut email = same.clone();
    email.customer_email = "someone-else@example.com".into();
    let mut address = same.clone();
    if let Some(a) = address.shipping_address.as_mut() {
        a.line1 = "2 Other Street".into();
    }
    for (req, what) in [(&loser, "lines"), (&email, "email"), (&address, "address")] {
        assert_eq!(
            place(&stack, req.clone()).await,
            Err(Code::FailedPrecondition),
            "{what} changed, no worker"
        );
    }
    assert_eq!(
        place(&stack, same.clone()).await,
        Ok((order_id.clone(), 1_000 * winner_qty))
    );

    // Over HTTP: the documented 409 and JSON shape.
    let res = stack
        .http
        .post(format!("{}/v1/orders", stack.http_base))
        .header("Idempotency-Key", "k-race")
        .json(&serde_json::json!({
            "customer_id": "erin", "customer_email": "erin@example.com",
            "shipping_address": {"name": "Test Customer", "line1": "1 Test Street",
                "city": "Berlin", "postal_code": "10115", "country": "DE"},
            "lines": [{"sku": "MUG-1", "quantity": 3}]}))
        .send()
        .await?;
    assert_eq!(res.status(), 409);
    let body: serde_json::Value = res.json().await?;
    assert_eq!(body["error"]["code"], "FAILED_PRECONDITION");

    // Once a worker has run the saga, the same holds.
    stack.start_worker(WorkerSettings::default())?;
    let order = stack.terminal_order(&order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    assert_eq!(stack.on_hand(&mug).await?, 100 - winner_qty);
    for req in [&loser, &email, &address] {
        assert_eq!(
            place(&stack, req.clone()).await,
            Err(Code::FailedPrecondition)
        );
    }
    assert_eq!(
        place(&stack, same).await,
        Ok((order_id, 1_000 * winner_qty))
    );
    stack.stop_workers()
}

#[tokio::test]
async fn reused_key_is_refused_every_time_sqlite() -> anyhow::Result<()> {
    reused_key_is_refused_every_time(TestDatabase::sqlite()?).await
}

#[tokio::test]
async fn reused_key_is_refused_every_time_postgres() -> anyhow::Result<()> {
    reused_key_is_refused_every_time(TestDatabase::postgres().await?).await
}
