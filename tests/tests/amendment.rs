//! Partial availability end to end (issue 17, `partial-availability-v1`):
//! a checkout order paid through the payments sandbox, one line of which
//! cannot be served. The order becomes `ACTION_REQUIRED` with the proposed
//! amendment (the served lines held, the missing lines' amount to refund,
//! a deadline), the customer is emailed, and the saga waits: accepting
//! refunds exactly the missing amount at the gateway and confirms and
//! ships the rest; cancelling, or the deadline passing, fails the order,
//! refunds it in full and puts the held stock back. Accepting an order not
//! awaiting a decision is a typed error that changes nothing.

use std::time::Duration;

use anyhow::Context;

use ordersaga_domain::{CheckoutTiming, Sku};
use ordersaga_proto::v1 as pb;
use ordersaga_tests::{ORDER_TIMEOUT, Stack, TestDatabase, eventually, place_request};
use ordersaga_worker::WorkerSettings;
use reqwest::StatusCode;
use serde_json::Value;
use tonic::Code;

/// Long payment deadline, no poll within a test's life: only webhooks (or
/// the buyer) move the payment.
const WEBHOOKS_ONLY: CheckoutTiming = CheckoutTiming {
    deadline_secs: 600,
    poll_secs: 600,
};

/// 2 mugs at 12.50 can be served; 3 caps at 7.50 cannot (1 in stock).
const LINES: &[(&str, i64)] = &[("MUG-1", 2), ("CAP-1", 3)];
/// The missing caps' amount, minor units.
const MISSING_MINOR: i64 = 2_250;

struct Amended {
    placed: pb::PlaceOrderResponse,
    mug: Sku,
    cap: Sku,
}

async fn get(stack: &Stack, order_id: &str) -> anyhow::Result<pb::Order> {
    Ok(stack
        .grpc
        .clone()
        .get_order(pb::GetOrderRequest {
            order_id: order_id.to_string(),
        })
        .await?
        .into_inner())
}

async fn accept(
    stack: &Stack,
    order_id: &str,
) -> Result<pb::AcceptAmendmentResponse, tonic::Status> {
    stack
        .grpc
        .clone()
        .accept_amendment(pb::AcceptAmendmentRequest {
            order_id: order_id.to_string(),
        })
        .await
        .map(tonic::Response::into_inner)
}

fn eur(minor_units: i64) -> Option<pb::Money> {
    Some(pb::Money {
        minor_units,
        currency: "EUR".into(),
    })
}

/// Places the order, approves its payment, and waits until it is
/// `ACTION_REQUIRED`; checks what the API, the store and Temporal show.
async fn amended_order(stack: &Stack) -> anyhow::Result<Amended> {
    let mug = stack.product("MUG-1", 1_250, 10).await?;
    let cap = stack.product("CAP-1", 750, 1).await?;
    let placed = stack
        .grpc
        .clone()
        .place_order(place_request("alice", LINES, ""))
        .await?
        .into_inner();
    stack.sandbox()?.approve(&placed.approval_url).await?;
    let order = eventually("an ACTION_REQUIRED order", ORDER_TIMEOUT, || async {
        let order = get(stack, &placed.order_id).await?;
        anyhow::ensure!(
            order.status != pb::OrderStatus::Failed as i32
                && order.status != pb::OrderStatus::Confirmed as i32,
            "the order ended: {order:?}"
        );
        Ok((order.status == pb::OrderStatus::ActionRequired as i32).then_some(order))
    })
    .await?;
    let amendment = order
        .amendment
        .clone()
        .context("an ACTION_REQUIRED order shows its amendment")?;
    assert_eq!(amendment.status, "PROPOSED");
    let skus = |lines: &[pb::OrderLine]| -> Vec<(String, i64)> {
        lines.iter().map(|l| (l.sku.clone(), l.quantity)).collect()
    };
    assert_eq!(skus(&amendment.lines), [("MUG-1".to_string(), 2)]);
    assert_eq!(skus(&amendment.missing), [("CAP-1".to_string(), 3)]);
    assert_eq!(amendment.refund, eur(MISSING_MINOR));
    assert!(amendment.deadline.is_some());
    assert_eq!(order.payment_status, pb::PaymentStatus::Captured as i32);
    assert!(order.events.iter().any(|e| e.name == "OrderAmended"));
    // The served lines are held, the short product untouched.
    assert_eq!(stack.on_hand(&mug).await?, 8);
    assert_eq!(stack.on_hand(&cap).await?, 1);
    eventually("the OrderStatus attribute", ORDER_TIMEOUT, || async {
        let status = stack.order_status_attribute(&placed.workflow_id).await?;
        Ok((status == "ACTION_REQUIRED").then_some(()))
    })
    .await?;
    // The customer is told (the "order amended" email, through the outbox).
    let email = stack
        .mailbox_dir()
        .join(format!("order-amended.{}.eml", placed.order_id));
    eventually("the order-amended email", ORDER_TIMEOUT, || {
        let email = email.clone();
        async move { Ok(email.exists().then_some(())) }
    })
    .await?;
    let text = std::fs::read_to_string(&email)?;
    assert!(text.contains("CAP-1"), "the email names the missing line");
    assert!(text.contains("22.50"), "the email names the refund");
    Ok(Amended { placed, mug, cap })
}

/// The full refund and the released stock of a failed amended order.
async fn fully_undone(stack: &Stack, amended: &Amended, code: &str) -> anyhow::Result<pb::Order> {
    let order = stack.terminal_order(&amended.placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Failed as i32, "{order:?}");
    assert_eq!(order.failure_code, code);
    assert_eq!(order.payment_status, pb::PaymentStatus::Refunded as i32);
    assert_eq!(
        order.amendment.as_ref().map(|a| a.status.as_str()),
        Some("DECLINED")
    );
    let counts = stack
        .sandbox()?
        .counts(&amended.placed.transaction_id)
        .await?;
    assert_eq!(counts.captures, 1);
    assert_eq!(
        counts.refunded,
        ["47.50"],
        "one full refund, nothing partial"
    );
    assert_eq!(
        stack.on_hand(&amended.mug).await?,
        10,
        "held stock released"
    );
    assert_eq!(stack.on_hand(&amended.cap).await?, 1);
    // Too late to accept: refused, nothing changes.
    let refused = accept(stack, &amended.placed.order_id)
        .await
        .err()
        .context("accepting a failed order is refused")?;
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(
        get(stack, &amended.placed.order_id).await?.events,
        order.events
    );
    Ok(order)
}

async fn accepted_is_partly_refunded_and_ships_the_rest(db: TestDatabase) -> anyhow::Result<()> {
    let stack = Stack::builder()
        .database(db)
        .checkout(WEBHOOKS_ONLY)
        .start()
        .await?;
    // A limit, so what counts against it is shown.
    stack
        .grpc
        .clone()
        .set_spending_limit(pb::SetSpendingLimitRequest {
            customer_id: "alice".into(),
            limit: eur(100_000),
        })
        .await?;
    let amended = amended_order(&stack).await?;
    let order_id = &amended.placed.order_id;

    let answer = accept(&stack, order_id).await?;
    assert_eq!(answer.status, pb::OrderStatus::ActionRequired as i32);
    // A repeat is accepted and changes nothing.
    accept(&stack, order_id).await?;
    let order = stack.terminal_order(order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32, "{order:?}");
    assert_eq!(order.payment_status, pb::PaymentStatus::Captured as i32);
    let amendment = order
        .amendment
        .clone()
        .context("the amendment stays shown")?;
    assert_eq!(amendment.status, "ACCEPTED");
    assert_eq!(amendment.refunded, eur(MISSING_MINOR));
    let names: Vec<&str> = order.events.iter().map(|e| e.name.as_str()).collect();
    for event in [
        "OrderAmended",
        "AmendmentAccepted",
        "PaymentPartiallyRefunded",
        "InventoryProcessed",
        "OrderConfirmed",
    ] {
        assert!(names.contains(&event), "{event} in {names:?}");
    }
    assert!(!names.contains(&"PaymentRefunded"), "{names:?}");

    // Exactly the missing amount came back, once, at the gateway.
    let counts = stack
        .sandbox()?
        .counts(&amended.placed.transaction_id)
        .await?;
    assert_eq!((counts.captures, counts.refunds), (1, 1));
    assert_eq!(counts.refunded, ["22.50"]);
    // The held mugs are the order's; the caps were never touched.
    assert_eq!(stack.on_hand(&amended.mug).await?, 8);
    assert_eq!(stack.on_hand(&amended.cap).await?, 1);
    // The shipment carries only the amended lines.
    let shipment = eventually("the shipment", ORDER_TIMEOUT, || async {
        Ok(get(&stack, order_id).await?.shipment)
    })
    .await?;
    let shipped: Vec<(String, i64)> = shipment
        .lines
        .iter()
        .map(|l| (l.sku.clone(), l.quantity))
        .collect();
    assert_eq!(shipped, [("MUG-1".to_string(), 2)]);
    // Only the amended total counts against the customer's spending.
    let spending = stack
        .grpc
        .clone()
        .get_spending_limit(pb::GetSpendingLimitRequest {
            customer_id: "alice".into(),
        })
        .await?
        .into_inner();
    assert_eq!(spending.spent, eur(4_750 - MISSING_MINOR));
    stack
        .replay_check(&amended.placed.workflow_id, "amendment-accepted")
        .await
}

#[tokio::test]
async fn accepted_amendment_on_sqlite() -> anyhow::Result<()> {
    accepted_is_partly_refunded_and_ships_the_rest(TestDatabase::sqlite()?).await
}

#[tokio::test]
async fn accepted_amendment_on_postgres() -> anyhow::Result<()> {
    accepted_is_partly_refunded_and_ships_the_rest(TestDatabase::postgres().await?).await
}

#[tokio::test]
async fn cancelled_amendment_is_refunded_in_full() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    let amended = amended_order(&stack).await?;
    // Over HTTP this time.
    let url = format!(
        "{}/v1/orders/{}/cancel",
        stack.http_base, amended.placed.order_id
    );
    let res = stack.http.post(&url).send().await?;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await?);
    fully_undone(&stack, &amended, "CANCELLED").await?;
    stack
        .replay_check(&amended.placed.workflow_id, "amendment-cancelled")
        .await
}

#[tokio::test]
async fn an_amendment_not_decided_in_time_is_refunded_in_full() -> anyhow::Result<()> {
    let mut stack = Stack::builder()
        .checkout(WEBHOOKS_ONLY)
        .without_worker()
        .start()
        .await?;
    stack.start_worker(WorkerSettings {
        amendment_deadline: Duration::from_secs(3),
        ..WorkerSettings::default()
    })?;
    let amended = amended_order(&stack).await?;
    let order = fully_undone(&stack, &amended, "AMENDMENT_EXPIRED").await?;
    assert!(
        order.failure_reason.contains("within 3s"),
        "{}",
        order.failure_reason
    );
    stack
        .replay_check(&amended.placed.workflow_id, "amendment-expired")
        .await
}

/// Accepting an order that is not awaiting a decision (its payment still
/// waits for the buyer) is refused on both transports, and changes
/// nothing; an unknown order is not found.
#[tokio::test]
async fn accepting_an_order_not_awaiting_a_decision_is_refused() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let placed = stack
        .grpc
        .clone()
        .place_order(place_request("alice", &[("MUG-1", 1)], ""))
        .await?
        .into_inner();
    let before = eventually("the stored order", ORDER_TIMEOUT, || async {
        let order = get(&stack, &placed.order_id).await?;
        Ok((!order.approval_url.is_empty()).then_some(order))
    })
    .await?;

    let refused = accept(&stack, &placed.order_id)
        .await
        .err()
        .context("accepting an order not awaiting a decision is refused")?;
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("not awaiting a decision"),
        "{}",
        refused.message()
    );
    let url = format!(
        "{}/v1/orders/{}/amendment/accept",
        stack.http_base, placed.order_id
    );
    let res = stack.http.post(&url).send().await?;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let body: Value = res.json().await?;
    assert_eq!(body["error"]["code"], "FAILED_PRECONDITION", "{body}");

    let unknown = format!(
        "{}/v1/orders/{}/amendment/accept",
        stack.http_base, "6c1f2a5e-3b7d-4e55-9a1f-0b2c3d4e5f60"
    );
    assert_eq!(
        stack.http.post(&unknown).send().await?.status(),
        StatusCode::NOT_FOUND
    );
    let bad = format!("{}/v1/orders/not-an-id/amendment/accept", stack.http_base);
    assert_eq!(
        stack.http.post(&bad).send().await?.status(),
        StatusCode::BAD_REQUEST
    );

    // Nothing changed: the order still waits for the buyer.
    let after = get(&stack, &placed.order_id).await?;
    assert_eq!(after.status, pb::OrderStatus::Pending as i32);
    assert_eq!(after.events, before.events);
    assert!(after.amendment.is_none());
    // And it still completes normally.
    stack.sandbox()?.approve(&placed.approval_url).await?;
    let done = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(done.status, pb::OrderStatus::Confirmed as i32);
    Ok(())
}
