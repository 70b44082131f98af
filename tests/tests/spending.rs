//! End to end: the spending limit against fraud. A manager sets a
//! customer's cumulative limit over gRPC or HTTP; orders under and at it are
//! confirmed, one over it fails before any charge with
//! `SPENDING_LIMIT_EXCEEDED`; two orders racing the limit cannot both pass;
//! a failed order gives its reservation back; bad input is a typed error
//! and writes nothing.

use anyhow::Context;
use ordersaga_proto::v1 as pb;
use ordersaga_runtime::auth::Role;
use ordersaga_tests::{Stack, auth::http_client, auth::token, place_request};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tonic::Code;

fn eur(minor_units: i64) -> Option<pb::Money> {
    Some(pb::Money {
        minor_units,
        currency: "EUR".into(),
    })
}

async fn set_limit(stack: &Stack, customer: &str, minor_units: i64) -> anyhow::Result<()> {
    let limit = stack
        .grpc
        .clone()
        .set_spending_limit(pb::SetSpendingLimitRequest {
            customer_id: customer.into(),
            limit: eur(minor_units),
        })
        .await?
        .into_inner();
    assert_eq!(limit.limit, eur(minor_units));
    Ok(())
}

async fn spent(stack: &Stack, customer: &str) -> anyhow::Result<Option<pb::Money>> {
    Ok(stack
        .grpc
        .clone()
        .get_spending_limit(pb::GetSpendingLimitRequest {
            customer_id: customer.into(),
        })
        .await?
        .into_inner()
        .spent)
}

/// Places an order and waits for its end.
async fn order(stack: &Stack, customer: &str, lines: &[(&str, i64)]) -> anyhow::Result<pb::Order> {
    let placed = stack
        .grpc
        .clone()
        .place_order(place_request(customer, lines, ""))
        .await?
        .into_inner();
    stack.terminal_order(&placed.order_id).await
}

fn confirmed(order: &pb::Order) -> bool {
    order.status == pb::OrderStatus::Confirmed as i32
}

/// Asserts `order` failed over the limit, before any charge.
async fn refused(stack: &Stack, order: &pb::Order) -> anyhow::Result<()> {
    assert_eq!(order.status, pb::OrderStatus::Failed as i32, "{order:?}");
    assert_eq!(order.failure_code, "SPENDING_LIMIT_EXCEEDED");
    assert!(
        order.failure_reason.contains("spending limit exceeded"),
        "{}",
        order.failure_reason
    );
    let names: Vec<&str> = order.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["OrderPlaced", "OrderFailed"]);
    assert_eq!(order.payment_status, pb::PaymentStatus::Unspecified as i32);
    let txn = ordersaga_domain::TransactionId::parse(&order.transaction_id)?;
    assert!(
        stack.gateway.ledger(&txn).await?.is_none(),
        "the gateway was never asked to charge"
    );
    Ok(())
}

#[tokio::test]
async fn orders_under_and_at_the_limit_pass_and_one_over_it_fails_before_any_charge()
-> anyhow::Result<()> {
    let stack = Stack::builder().start().await?;
    stack.product("MUG-S", 2_000, 100).await?;
    set_limit(&stack, "alice", 10_000).await?;

    let under = order(&stack, "alice", &[("MUG-S", 2)]).await?;
    assert!(confirmed(&under), "{under:?}");
    assert_eq!(spent(&stack, "alice").await?, eur(4_000));
    let at = order(&stack, "alice", &[("MUG-S", 3)]).await?;
    assert!(confirmed(&at), "{at:?}");
    assert_eq!(spent(&stack, "alice").await?, eur(10_000));
    let over = order(&stack, "alice", &[("MUG-S", 1)]).await?;
    refused(&stack, &over).await?;
    assert_eq!(spent(&stack, "alice").await?, eur(10_000));
    // Another customer has no limit.
    let bob = order(&stack, "bob", &[("MUG-S", 20)]).await?;
    assert!(confirmed(&bob), "{bob:?}");

    stack
        .replay_check(&at.workflow_id, "spending-limit-reserved-confirmed")
        .await?;
    stack
        .replay_check(&over.workflow_id, "spending-limit-exceeded")
        .await?;

    // Raised over HTTP, the next order fits; removed, anything goes.
    let url = format!("{}/v1/customers/alice/spending-limit", stack.http_base);
    let raised: Value = stack
        .http
        .put(&url)
        .json(&json!({"limit": {"minor_units": 12_000, "currency": "EUR"}}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(raised["limit"]["minor_units"], 12_000);
    assert_eq!(raised["spent"]["minor_units"], 10_000);
    let fits = order(&stack, "alice", &[("MUG-S", 1)]).await?;
    assert!(confirmed(&fits), "{fits:?}");
    let removed: Value = stack
        .http
        .delete(&url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(removed["limit"], Value::Null);
    let big = order(&stack, "alice", &[("MUG-S", 10)]).await?;
    assert!(confirmed(&big), "{big:?}");
    Ok(())
}

#[tokio::test]
async fn two_orders_racing_the_limit_cannot_both_pass() -> anyhow::Result<()> {
    let stack = Stack::builder().start().await?;
    stack.product("TEE-S", 3_000, 100).await?;
    set_limit(&stack, "carol", 5_000).await?;
    let (a, b) = tokio::join!(
        order(&stack, "carol", &[("TEE-S", 1)]),
        order(&stack, "carol", &[("TEE-S", 1)])
    );
    let (a, b) = (a?, b?);
    let passed: Vec<&pb::Order> = [&a, &b].into_iter().filter(|o| confirmed(o)).collect();
    assert_eq!(passed.len(), 1, "exactly one of {a:?} and {b:?}");
    let loser = if confirmed(&a) { &b } else { &a };
    refused(&stack, loser).await?;
    assert_eq!(spent(&stack, "carol").await?, eur(3_000));
    Ok(())
}

#[tokio::test]
async fn a_failed_order_gives_its_reservation_back() -> anyhow::Result<()> {
    let stack = Stack::builder().start().await?;
    stack.product("LAST-S", 4_000, 1).await?;
    set_limit(&stack, "dave", 10_000).await?;
    // 80.00 fits the limit; paid, then short: refunded, and the
    // reservation released.
    let short = order(&stack, "dave", &[("LAST-S", 2)]).await?;
    assert_eq!(short.status, pb::OrderStatus::Failed as i32);
    assert_eq!(short.failure_code, "OUT_OF_STOCK");
    assert_eq!(spent(&stack, "dave").await?, eur(0));
    assert_eq!(
        stack
            .store
            .spending()
            .reservation_status(&short.order_id.parse()?)
            .await?
            .as_deref(),
        Some("RELEASED")
    );
    // So 40.00 more fits (80.00 + 40.00 would not).
    let fits = order(&stack, "dave", &[("LAST-S", 1)]).await?;
    assert!(confirmed(&fits), "{fits:?}");
    stack
        .replay_check(&short.workflow_id, "spending-limit-released")
        .await?;
    Ok(())
}

#[tokio::test]
async fn bad_limits_and_callers_are_refused_and_write_nothing() -> anyhow::Result<()> {
    let stack = Stack::builder().without_worker().start().await?;
    set_limit(&stack, "erin", 7_000).await?;
    let url = format!("{}/v1/customers/erin/spending-limit", stack.http_base);

    for body in [
        json!({"limit": {"minor_units": -1, "currency": "EUR"}}),
        json!({"limit": {"minor_units": 100, "currency": "XAU"}}),
        json!({"limit": {"minor_units": 100}}),
        json!({"limit": {"minor_units": 100, "currency": "EUR"}, "extra": 1}),
    ] {
        let response = stack.http.put(&url).json(&body).send().await?;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = response.json().await?;
        assert_eq!(error["error"]["code"], "INVALID_ARGUMENT", "{body}");
    }
    let negative = stack
        .grpc
        .clone()
        .set_spending_limit(pb::SetSpendingLimitRequest {
            customer_id: "erin".into(),
            limit: eur(-5),
        })
        .await
        .err()
        .context("a negative limit must be refused")?;
    assert_eq!(negative.code(), Code::InvalidArgument);

    // Customers and couriers may not set limits (not even their own).
    let erin = http_client(&token(Role::Customer, "erin"))?;
    let response = erin
        .put(&url)
        .json(&json!({"limit": {"minor_units": 1_000_000, "currency": "EUR"}}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let denied = stack
        .orders_as(Role::Courier, "van-7")
        .get_spending_limit(pb::GetSpendingLimitRequest {
            customer_id: "erin".into(),
        })
        .await
        .err()
        .context("a courier must be refused")?;
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Nothing was written: the limit is the one set first.
    let now: Value = stack
        .http
        .get(&url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(now["limit"]["minor_units"], 7_000);
    assert_eq!(now["limit"]["currency"], "EUR");
    Ok(())
}
