//! End to end in checkout mode: the saga pays through the PayPal adapter
//! against the payments sandbox, the buyer presses the sandbox's buttons,
//! and the sandbox's signed webhooks reach the API. Each test has its own
//! Temporal namespace (on the binary's one dev server), sandbox, task queue
//! and database.

use std::time::SystemTime;

use anyhow::Context;
use ordersaga_activities::gateway::checkout::CheckoutStatus as GatewayStatus;
use ordersaga_activities::gateway::webhook::{
    MAX_SIGNATURES, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, unix_seconds,
};
use ordersaga_domain::{CheckoutTiming, EmailStage, FailureReason, OrderId};
use ordersaga_proto::v1 as pb;
use ordersaga_store::NotificationStatus;
use ordersaga_tests::{
    ORDER_TIMEOUT, Stack, TEST_WEBHOOK_SECRET, eventually, free_port, place_request,
};
use ordersaga_worker::WorkerSettings;
use ordersaga_workflows::{OrderWorkflow, WORKFLOW_TASK_TIMEOUT};
use serde_json::{Value, json};
use temporalio_client::{UntypedWorkflow, WorkflowFetchHistoryOptions, WorkflowGetResultOptions};
use tonic::Code;

/// Long deadline, no poll within a test's life: only webhooks (or the
/// buyer) move the order.
const WEBHOOKS_ONLY: CheckoutTiming = CheckoutTiming {
    deadline_secs: 600,
    poll_secs: 600,
};

async fn place(
    stack: &Stack,
    customer: &str,
    lines: &[(&str, i64)],
) -> anyhow::Result<pb::PlaceOrderResponse> {
    let placed = stack
        .grpc
        .clone()
        .place_order(place_request(customer, lines, ""))
        .await?
        .into_inner();
    assert_eq!(placed.status, pb::OrderStatus::Pending as i32);
    assert!(
        placed.approval_url.contains("/checkoutnow?token="),
        "PlaceOrder answers the approval link, got {:?}",
        placed.approval_url
    );
    Ok(placed)
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

async fn cancel(stack: &Stack, order_id: &str) -> Result<pb::CancelOrderResponse, tonic::Status> {
    stack
        .grpc
        .clone()
        .cancel_order(pb::CancelOrderRequest {
            order_id: order_id.to_string(),
            reason: "changed my mind".to_string(),
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn approval_by_webhook_confirms_with_one_capture() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let placed = place(&stack, "alice", &[("MUG-1", 2)]).await?;

    // Waiting for the buyer: GetOrder shows where to pay.
    let pending = get(&stack, &placed.order_id).await?;
    assert_eq!(pending.status, pb::OrderStatus::Pending as i32);
    assert_eq!(pending.payment_status, pb::PaymentStatus::Pending as i32);
    assert_eq!(pending.approval_url, placed.approval_url);
    let link = stack
        .store
        .payments()
        .link(&OrderId::parse(&placed.order_id)?)
        .await?;
    assert_eq!(
        link.map(|l| l.approval_url),
        Some(placed.approval_url.clone())
    );

    let sandbox = stack.sandbox()?;
    sandbox.approve(&placed.approval_url).await?;
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    assert_eq!(order.payment_status, pb::PaymentStatus::Captured as i32);
    assert!(order.approval_url.is_empty(), "no link once paid");
    let counts = sandbox.counts(&placed.transaction_id).await?;
    assert_eq!((counts.orders, counts.captures, counts.refunds), (1, 1, 0));
    // The update-with-start sets the same task timeout as a plain start.
    assert_eq!(
        stack.workflow_task_timeout(&placed.workflow_id).await?,
        WORKFLOW_TASK_TIMEOUT
    );
    stack
        .replay_check(&placed.workflow_id, "checkout-confirmed-local-charge")
        .await
}

#[tokio::test]
async fn buyer_cancel_fails_the_order_without_capture() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    stack.product("MUG-1", 1_250, 10).await?;
    // Over HTTP this time: the JSON answer carries the link too.
    let body = json!({"customer_id": "bob", "lines": [{"sku": "MUG-1", "quantity": 1}],
        "customer_email": "bob@example.com",
        "shipping_address": {"name": "Bob", "line1": "1 Test Street", "city": "Berlin",
                             "postal_code": "10115", "country": "DE"}});
    let placed: Value = stack
        .http
        .post(format!("{}/v1/orders", stack.http_base))
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let url = placed["approval_url"].as_str().context("approval_url")?;
    let order_id = placed["order_id"].as_str().context("order_id")?;
    let txn = placed["transaction_id"]
        .as_str()
        .context("transaction_id")?;

    stack.sandbox()?.cancel(url).await?;
    let order = stack.terminal_order(order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Failed as i32);
    assert_eq!(order.failure_code, "PAYMENT_DECLINED");
    assert_eq!(order.payment_status, pb::PaymentStatus::Voided as i32);
    let events: Vec<&str> = order.events.iter().map(|e| e.name.as_str()).collect();
    assert!(events.contains(&"PaymentProcessFailed"), "{events:?}");
    assert_eq!(stack.sandbox()?.counts(txn).await?.captures, 0);
    Ok(())
}

#[tokio::test]
async fn deadline_fails_the_order_as_expired_and_voids_the_gateway_order() -> anyhow::Result<()> {
    let stack = Stack::builder()
        .checkout(CheckoutTiming {
            deadline_secs: 2,
            poll_secs: 600,
        })
        .start()
        .await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let placed = place(&stack, "carol", &[("MUG-1", 1)]).await?;
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Failed as i32);
    assert_eq!(order.failure_code, "PAYMENT_EXPIRED");
    assert_eq!(order.payment_status, pb::PaymentStatus::Voided as i32);
    let sandbox = stack.sandbox()?;
    assert_eq!(
        sandbox.order_status(&placed.approval_url).await?,
        GatewayStatus::Voided
    );
    // Voided: a late press of Approve changes nothing.
    sandbox.approve(&placed.approval_url).await?;
    assert_eq!(
        sandbox.order_status(&placed.approval_url).await?,
        GatewayStatus::Voided
    );
    assert_eq!(sandbox.counts(&placed.transaction_id).await?.captures, 0);
    stack
        .replay_check(&placed.workflow_id, "checkout-expired")
        .await
}

#[tokio::test]
async fn out_of_stock_after_capture_refunds_exactly_once() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    let mug = stack.product("MUG-1", 1_250, 1).await?;
    let placed = place(&stack, "dave", &[("MUG-1", 3)]).await?;
    let sandbox = stack.sandbox()?;
    sandbox.approve(&placed.approval_url).await?;
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Failed as i32);
    assert_eq!(order.failure_code, "OUT_OF_STOCK");
    let order = eventually("the refund recorded", ORDER_TIMEOUT, || async {
        let o = get(&stack, &placed.order_id).await?;
        Ok((o.payment_status == pb::PaymentStatus::Refunded as i32).then_some(o))
    })
    .await?;
    let events: Vec<&str> = order.events.iter().map(|e| e.name.as_str()).collect();
    assert!(events.contains(&"PaymentRefunded"), "{events:?}");
    let counts = sandbox.counts(&placed.transaction_id).await?;
    assert_eq!((counts.captures, counts.refunds), (1, 1));
    assert_eq!(stack.on_hand(&mug).await?, 1, "nothing deducted");
    stack
        .replay_check(&placed.workflow_id, "checkout-out-of-stock-refunded")
        .await
}

/// The buyer approves while every webhook is lost: only a poll of the
/// gateway can find the approval; the order confirms with one capture.
async fn approved_with_every_webhook_lost(
    timing: CheckoutTiming,
    buyer: &str,
    history: &str,
) -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(timing).start().await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let sandbox = stack.sandbox()?;
    sandbox.controls(json!({"webhook_drop_next": 1000})).await?;
    let placed = place(&stack, buyer, &[("MUG-1", 1)]).await?;
    sandbox.approve(&placed.approval_url).await?;
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    assert_eq!(sandbox.counts(&placed.transaction_id).await?.captures, 1);
    stack.replay_check(&placed.workflow_id, history).await
}

#[tokio::test]
async fn the_poll_completes_the_order_when_every_webhook_is_lost() -> anyhow::Result<()> {
    let timing = CheckoutTiming {
        deadline_secs: 600,
        poll_secs: 1,
    };
    approved_with_every_webhook_lost(timing, "erin", "checkout-polled").await
}

#[tokio::test]
async fn duplicate_and_late_webhooks_have_no_second_effect() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let sandbox = stack.sandbox()?;
    sandbox
        .controls(json!({"webhook_duplicates": 2, "webhook_hold": true}))
        .await?;
    let placed = place(&stack, "frank", &[("MUG-1", 1)]).await?;
    sandbox.approve(&placed.approval_url).await?;
    // Held: the order waits; then three copies of the approval at once.
    assert_eq!(
        get(&stack, &placed.order_id).await?.status,
        pb::OrderStatus::Pending as i32
    );
    let release = format!("{}/sandbox/webhooks/release", sandbox.base);
    stack
        .http
        .post(&release)
        .json(&json!({"order": "reverse"}))
        .send()
        .await?
        .error_for_status()?;
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    // The capture's own events arrive after the order ended, three times.
    stack
        .http
        .post(&release)
        .json(&json!({"order": "fifo"}))
        .send()
        .await?
        .error_for_status()?;
    let counts = sandbox.counts(&placed.transaction_id).await?;
    assert_eq!(
        (counts.capture_requests, counts.captures, counts.refunds),
        (1, 1, 0)
    );
    let order = get(&stack, &placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    assert_eq!(order.payment_status, pb::PaymentStatus::Captured as i32);
    Ok(())
}

/// A PayPal-shaped approval event for `transaction_id`.
fn approval_event(transaction_id: &str) -> Vec<u8> {
    approval_event_with_id("WH-forged", transaction_id)
}

/// A PayPal-shaped approval event with the event id `event_id`.
fn approval_event_with_id(event_id: &str, transaction_id: &str) -> Vec<u8> {
    json!({"id": event_id, "event_type": "CHECKOUT.ORDER.APPROVED", "resource_type": "checkout-order",
           "resource": {"id": "ORDER-X", "status": "APPROVED",
                        "purchase_units": [{"custom_id": transaction_id}]}})
    .to_string()
    .into_bytes()
}

/// POSTs a webhook to the API as the gateway would.
async fn post_webhook(
    stack: &Stack,
    body: &[u8],
    timestamp: i64,
    signature: &str,
) -> anyhow::Result<reqwest::Response> {
    Ok(stack
        .http
        .post(format!("{}/v1/payments/webhook", stack.http_base))
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(body.to_vec())
        .send()
        .await?)
}

/// The signals in a saga's history.
async fn signals(stack: &Stack, workflow_id: &str) -> anyhow::Result<usize> {
    let history = stack
        .client
        .get_workflow_handle::<UntypedWorkflow>(workflow_id.to_string())
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .to_json()
        .await?;
    let history: Value = serde_json::from_slice(&history)?;
    Ok(history["events"]
        .as_array()
        .context("events")?
        .iter()
        .filter(|e| {
            e["attributes"]
                .get("WorkflowExecutionSignaledEventAttributes")
                .is_some()
        })
        .count())
}

/// The same signed event three times (a redelivery, or a replay inside the
/// tolerance): each is acknowledged, only the first reaches the saga.
#[tokio::test]
async fn an_identical_webhook_is_acknowledged_but_signalled_once() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let sandbox = stack.sandbox()?;
    // The sandbox's own webhooks are held: only the copies below arrive.
    sandbox.controls(json!({"webhook_hold": true})).await?;
    let placed = place(&stack, "hugo", &[("MUG-1", 1)]).await?;
    sandbox.approve(&placed.approval_url).await?;
    let body = approval_event_with_id("WH-identical-1", &placed.transaction_id);
    let now = unix_seconds(SystemTime::now());
    let signature = sign(TEST_WEBHOOK_SECRET.as_bytes(), now, &body);
    let mut acks = Vec::new();
    for _ in 0..3 {
        let r = post_webhook(&stack, &body, now, &signature).await?;
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        acks.push(r.json::<Value>().await?["status"].clone());
    }
    assert_eq!(
        acks,
        [json!("delivered"), json!("duplicate"), json!("duplicate")]
    );
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    assert_eq!(
        signals(&stack, &placed.workflow_id).await?,
        1,
        "three copies, one signal in the history"
    );
    assert_eq!(sandbox.counts(&placed.transaction_id).await?.captures, 1);
    Ok(())
}

/// Each signature value costs an HMAC before the sender is authenticated:
/// a header with more than the cap is refused before any is checked, even
/// when the genuine one is among them.
#[tokio::test]
async fn a_signature_header_with_too_many_values_is_refused_unchecked() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let placed = place(&stack, "ines", &[("MUG-1", 1)]).await?;
    let body = approval_event_with_id("WH-many-1", &placed.transaction_id);
    let now = unix_seconds(SystemTime::now());
    let genuine = sign(TEST_WEBHOOK_SECRET.as_bytes(), now, &body);
    let header = [vec!["v1=00"; MAX_SIGNATURES], vec![genuine.as_str()]]
        .concat()
        .join(",");
    let r = post_webhook(&stack, &body, now, &header).await?;
    assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST);
    let err: Value = r.json().await?;
    assert_eq!(err["error"]["code"], "INVALID_ARGUMENT");

    let order = get(&stack, &placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Pending as i32);
    assert_eq!(order.payment_status, pb::PaymentStatus::Pending as i32);
    assert_eq!(signals(&stack, &placed.workflow_id).await?, 0);
    Ok(())
}

#[tokio::test]
async fn forged_and_stale_webhooks_are_refused_and_change_nothing() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let placed = place(&stack, "grace", &[("MUG-1", 1)]).await?;
    let url = format!("{}/v1/payments/webhook", stack.http_base);
    let body = approval_event(&placed.transaction_id);
    let now = unix_seconds(SystemTime::now());
    let cases = [
        ("forged", now, sign(b"not-the-secret", now, &body)),
        (
            "stale",
            now - 3600,
            sign(TEST_WEBHOOK_SECRET.as_bytes(), now - 3600, &body),
        ),
        ("malformed", now, "v1=zz".to_string()),
    ];
    for (what, ts, signature) in cases {
        let r = stack
            .http
            .post(&url)
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body.clone())
            .send()
            .await?;
        assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED, "{what}");
        let err: Value = r.json().await?;
        assert_eq!(err["error"]["code"], "UNAUTHENTICATED", "{what}");
    }
    let unsigned = stack.http.post(&url).body(body.clone()).send().await?;
    assert_eq!(unsigned.status(), reqwest::StatusCode::UNAUTHORIZED);

    // A genuine event for a payment we do not know: acknowledged, ignored.
    let other = approval_event("00000000-0000-4000-8000-000000000000");
    let r = stack
        .http
        .post(&url)
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(
            SIGNATURE_HEADER,
            sign(TEST_WEBHOOK_SECRET.as_bytes(), now, &other),
        )
        .body(other)
        .send()
        .await?;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert_eq!(r.json::<Value>().await?["status"], "ignored");

    let order = get(&stack, &placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Pending as i32);
    assert_eq!(order.payment_status, pb::PaymentStatus::Pending as i32);
    let view = stack
        .client
        .get_workflow_handle::<ordersaga_workflows::OrderWorkflow>(placed.workflow_id.clone())
        .query(
            ordersaga_workflows::OrderWorkflow::get_status,
            (),
            temporalio_client::WorkflowQueryOptions::default(),
        )
        .await?;
    assert_eq!(view.step, "AwaitApproval", "still waiting for the buyer");
    let sandbox = stack.sandbox()?;
    assert_eq!(
        sandbox.order_status(&placed.approval_url).await?,
        GatewayStatus::Created
    );
    assert_eq!(
        sandbox
            .counts(&placed.transaction_id)
            .await?
            .capture_requests,
        0
    );
    Ok(())
}

#[tokio::test]
async fn a_lost_capture_answer_still_captures_exactly_once() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let sandbox = stack.sandbox()?;
    sandbox
        .controls(json!({"lose_capture_answer_next": 1, "hang_ms": 500}))
        .await?;
    let placed = place(&stack, "heidi", &[("MUG-1", 1)]).await?;
    sandbox.approve(&placed.approval_url).await?;
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    let counts = sandbox.counts(&placed.transaction_id).await?;
    // The retry asked first and found the capture: no second request.
    assert_eq!((counts.capture_requests, counts.captures), (1, 1));
    stack
        .replay_check(&placed.workflow_id, "checkout-capture-answer-lost")
        .await
}

#[tokio::test]
async fn cancel_before_payment_voids_and_fails_the_order() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let placed = place(&stack, "ivan", &[("MUG-1", 1)]).await?;
    let accepted = cancel(&stack, &placed.order_id).await?;
    assert_eq!(accepted.status, pb::OrderStatus::Pending as i32);
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Failed as i32);
    assert_eq!(order.failure_code, "CANCELLED");
    assert!(
        order.failure_reason.contains("changed my mind"),
        "{}",
        order.failure_reason
    );
    assert_eq!(order.payment_status, pb::PaymentStatus::Voided as i32);
    let sandbox = stack.sandbox()?;
    assert_eq!(
        sandbox.order_status(&placed.approval_url).await?,
        GatewayStatus::Voided
    );
    assert_eq!(sandbox.counts(&placed.transaction_id).await?.captures, 0);
    stack
        .replay_check(&placed.workflow_id, "checkout-cancelled-before-payment")
        .await
}

#[tokio::test]
async fn cancel_after_capture_refunds_once_over_http() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let sandbox = stack.sandbox()?;
    // The capture commits, then its answer hangs: the order is paid but not
    // confirmed for that long.
    sandbox
        .controls(json!({"lose_capture_answer_next": 1, "hang_ms": 3000}))
        .await?;
    let placed = place(&stack, "judy", &[("MUG-1", 1)]).await?;
    sandbox.approve(&placed.approval_url).await?;
    eventually("the capture at the gateway", ORDER_TIMEOUT, || async {
        Ok((sandbox.counts(&placed.transaction_id).await?.captures == 1).then_some(()))
    })
    .await?;
    let r = stack
        .http
        .post(format!(
            "{}/v1/orders/{}/cancel",
            stack.http_base, placed.order_id
        ))
        .json(&json!({"reason": "too slow"}))
        .send()
        .await?;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Failed as i32);
    assert_eq!(order.failure_code, "CANCELLED");
    let order = eventually("the refund recorded", ORDER_TIMEOUT, || async {
        let o = get(&stack, &placed.order_id).await?;
        Ok((o.payment_status == pb::PaymentStatus::Refunded as i32).then_some(o))
    })
    .await?;
    assert_eq!(order.status, pb::OrderStatus::Failed as i32);
    let counts = sandbox.counts(&placed.transaction_id).await?;
    assert_eq!((counts.captures, counts.refunds), (1, 1));
    Ok(())
}

#[tokio::test]
async fn cancel_after_confirmation_or_of_unknown_orders_is_refused() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let placed = place(&stack, "ken", &[("MUG-1", 1)]).await?;
    stack.sandbox()?.approve(&placed.approval_url).await?;
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);

    let refused = cancel(&stack, &placed.order_id)
        .await
        .err()
        .context("cancel refused")?;
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let r = stack
        .http
        .post(format!(
            "{}/v1/orders/{}/cancel",
            stack.http_base, placed.order_id
        ))
        .send()
        .await?;
    assert_eq!(r.status(), reqwest::StatusCode::CONFLICT);
    assert_eq!(
        r.json::<Value>().await?["error"]["code"],
        "FAILED_PRECONDITION"
    );

    let unknown = cancel(&stack, "00000000-0000-4000-8000-000000000000")
        .await
        .err()
        .context("unknown order")?;
    assert_eq!(unknown.code(), Code::NotFound);
    let bad = cancel(&stack, "not-an-id").await.err().context("bad id")?;
    assert_eq!(bad.code(), Code::InvalidArgument);

    let order = get(&stack, &placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    assert_eq!(
        stack
            .sandbox()?
            .counts(&placed.transaction_id)
            .await?
            .refunds,
        0
    );
    Ok(())
}

#[tokio::test]
async fn a_declined_capture_fails_the_order_without_refund() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    let mug = stack.product("MUG-1", 1_250, 10).await?;
    // The sandbox's buyer `decline…@` approves at once; the capture is declined.
    let placed = place(&stack, "decline-lisa", &[("MUG-1", 1)]).await?;
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Failed as i32);
    assert_eq!(order.failure_code, "PAYMENT_DECLINED");
    assert_eq!(order.payment_status, pb::PaymentStatus::Declined as i32);
    let counts = stack.sandbox()?.counts(&placed.transaction_id).await?;
    assert_eq!((counts.captures, counts.refunds), (0, 0));
    assert_eq!(stack.on_hand(&mug).await?, 10);
    stack
        .replay_check(&placed.workflow_id, "checkout-capture-declined")
        .await
}

#[tokio::test]
async fn a_retried_place_order_answers_the_same_link() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let mut grpc = stack.grpc.clone();
    let first = grpc
        .place_order(place_request("mia", &[("MUG-1", 1)], "cart-1"))
        .await?
        .into_inner();
    let again = grpc
        .place_order(place_request("mia", &[("MUG-1", 1)], "cart-1"))
        .await?
        .into_inner();
    assert_eq!(again.order_id, first.order_id);
    assert!(!first.approval_url.is_empty());
    assert_eq!(again.approval_url, first.approval_url);
    let counts = stack.sandbox()?.counts(&first.transaction_id).await?;
    assert_eq!(counts.orders, 1, "one gateway order");
    Ok(())
}

#[tokio::test]
async fn a_cancelled_workflow_still_voids_the_gateway_order() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let placed = place(&stack, "nina", &[("MUG-1", 1)]).await?;
    stack
        .client
        .get_workflow_handle::<ordersaga_workflows::OrderWorkflow>(placed.workflow_id.clone())
        .cancel(
            temporalio_client::WorkflowCancelOptions::builder()
                .reason("operator")
                .build(),
        )
        .await?;
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.failure_code, "CANCELLED");
    assert_eq!(order.payment_status, pb::PaymentStatus::Voided as i32);
    let sandbox = stack.sandbox()?;
    assert_eq!(
        sandbox.order_status(&placed.approval_url).await?,
        GatewayStatus::Voided
    );
    Ok(())
}

#[tokio::test]
async fn a_slow_gateway_answers_place_order_without_the_link_and_get_order_shows_it_later()
-> anyhow::Result<()> {
    let stack = Stack::builder()
        .checkout(WEBHOOKS_ONLY)
        .link_wait(std::time::Duration::from_millis(300))
        .start()
        .await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let sandbox = stack.sandbox()?;
    sandbox.controls(json!({"latency_ms": 1500})).await?;
    let placed = stack
        .grpc
        .clone()
        .place_order(place_request("olaf", &[("MUG-1", 1)], ""))
        .await?
        .into_inner();
    assert_eq!(placed.status, pb::OrderStatus::Pending as i32);
    assert!(
        placed.approval_url.is_empty(),
        "answered before the gateway"
    );
    let url = eventually("the approval link", ORDER_TIMEOUT, || async {
        let o = get(&stack, &placed.order_id).await?;
        Ok((!o.approval_url.is_empty()).then_some(o.approval_url))
    })
    .await?;
    sandbox.controls(json!({"latency_ms": 0})).await?;
    sandbox.approve(&url).await?;
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    assert_eq!(sandbox.counts(&placed.transaction_id).await?.captures, 1);
    Ok(())
}

/// The saga's live view (`GetStatus`).
async fn view(stack: &Stack, workflow_id: &str) -> anyhow::Result<ordersaga_domain::OrderView> {
    Ok(stack
        .client
        .get_workflow_handle::<ordersaga_workflows::OrderWorkflow>(workflow_id.to_string())
        .query(
            ordersaga_workflows::OrderWorkflow::get_status,
            (),
            temporalio_client::WorkflowQueryOptions::default(),
        )
        .await?)
}

/// Waits until the saga is on `step`.
async fn reaches(stack: &Stack, workflow_id: &str, step: &str) -> anyhow::Result<()> {
    eventually(&format!("the saga on {step}"), ORDER_TIMEOUT, || async {
        Ok((view(stack, workflow_id).await?.step == step).then_some(()))
    })
    .await
}

/// Releases the webhooks the sandbox held, oldest first.
async fn release_webhooks(stack: &Stack) -> anyhow::Result<()> {
    let sandbox = stack.sandbox()?;
    stack
        .http
        .post(format!("{}/sandbox/webhooks/release", sandbox.base))
        .json(&json!({"order": "fifo"}))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// A capture the gateway refused for good: the order ends FAILED with
/// `GATEWAY_REJECTED` naming the gateway's answer, the gateway order is
/// voided and nothing was taken.
async fn refused_and_voided(
    stack: &Stack,
    placed: &pb::PlaceOrderResponse,
    answer: &str,
) -> anyhow::Result<pb::Order> {
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Failed as i32);
    assert_eq!(order.failure_code, "GATEWAY_REJECTED");
    assert!(
        order.failure_reason.contains(answer),
        "{}",
        order.failure_reason
    );
    assert_eq!(order.payment_status, pb::PaymentStatus::Voided as i32);
    let sandbox = stack.sandbox()?;
    assert_eq!(
        sandbox.order_status(&placed.approval_url).await?,
        GatewayStatus::Voided
    );
    assert_eq!(sandbox.counts(&placed.transaction_id).await?.captures, 0);
    Ok(order)
}

#[tokio::test]
async fn a_buyer_who_approves_then_cancels_fails_the_order_as_gateway_rejected()
-> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    let mug = stack.product("MUG-1", 1_250, 10).await?;
    let sandbox = stack.sandbox()?;
    sandbox.controls(json!({"webhook_hold": true})).await?;
    let placed = place(&stack, "pia", &[("MUG-1", 1)]).await?;
    // Approve, then Cancel on the same page: the gateway order is voided,
    // and the saga, told of the approval first, captures a voided order.
    sandbox.approve(&placed.approval_url).await?;
    sandbox.cancel(&placed.approval_url).await?;
    release_webhooks(&stack).await?;
    refused_and_voided(&stack, &placed, "ORDER_EXPIRED").await?;
    assert_eq!(stack.on_hand(&mug).await?, 10);
    stack
        .replay_check(&placed.workflow_id, "checkout-capture-refused")
        .await
}

#[tokio::test]
async fn a_capture_refused_as_not_approved_fails_the_order() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let placed = place(&stack, "quinn", &[("MUG-1", 1)]).await?;
    // A genuine approval event for a gateway order nobody approved.
    let body = approval_event(&placed.transaction_id);
    let now = unix_seconds(SystemTime::now());
    stack
        .http
        .post(format!("{}/v1/payments/webhook", stack.http_base))
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(
            SIGNATURE_HEADER,
            sign(TEST_WEBHOOK_SECRET.as_bytes(), now, &body),
        )
        .body(body)
        .send()
        .await?
        .error_for_status()?;
    refused_and_voided(&stack, &placed, "ORDER_NOT_APPROVED").await?;
    Ok(())
}

#[tokio::test]
async fn a_capture_refused_for_payer_action_fails_the_order() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let sandbox = stack.sandbox()?;
    sandbox
        .controls(
            json!({"refuse_capture_next": 1, "refuse_capture_issue": "PAYER_ACTION_REQUIRED"}),
        )
        .await?;
    let placed = place(&stack, "ruth", &[("MUG-1", 1)]).await?;
    sandbox.approve(&placed.approval_url).await?;
    refused_and_voided(&stack, &placed, "PAYER_ACTION_REQUIRED").await?;
    Ok(())
}

#[tokio::test]
async fn a_refused_reconciliation_poll_fails_the_order() -> anyhow::Result<()> {
    let stack = Stack::builder()
        .checkout(CheckoutTiming {
            deadline_secs: 600,
            poll_secs: 1,
        })
        .start()
        .await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let sandbox = stack.sandbox()?;
    let placed = place(&stack, "sam", &[("MUG-1", 1)]).await?;
    // The next call is the poll: refused with a 400.
    sandbox
        .controls(json!({"fail_next": 1, "fail_status": 400}))
        .await?;
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.failure_code, "GATEWAY_REJECTED");
    assert!(
        order.failure_reason.contains("400"),
        "{}",
        order.failure_reason
    );
    assert_eq!(order.payment_status, pb::PaymentStatus::Voided as i32);
    Ok(())
}

/// Also the decision on a "failed" email without a "received" one: a
/// checkout order's "received" email carries the approval link, so an
/// order that fails before the link exists (no gateway here, or cancelled
/// while `CreateCheckout` runs) gets only the "failed" email, which names
/// the order, its lines and why on its own.
#[tokio::test]
async fn a_worker_without_a_checkout_gateway_fails_the_order_at_once() -> anyhow::Result<()> {
    let mut stack = Stack::builder()
        .checkout(WEBHOOKS_ONLY)
        .without_worker()
        .start()
        .await?;
    let mut settings = stack.worker_settings(ordersaga_worker::WorkerSettings::default());
    settings.paypal = None;
    stack.start_worker_as_is(settings)?;
    let mug = stack.product("MUG-1", 1_250, 10).await?;
    let placed = stack
        .grpc
        .clone()
        .place_order(place_request("tom", &[("MUG-1", 1)], ""))
        .await?
        .into_inner();
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Failed as i32);
    assert_eq!(order.failure_code, "GATEWAY_NOT_CONFIGURED");
    assert!(order.approval_url.is_empty());
    assert_eq!(stack.on_hand(&mug).await?, 10);

    let dir = stack.mailbox_dir();
    let failed = dir.join(format!("order-failed.{}.eml", placed.order_id));
    let eml = eventually("the failed email", ORDER_TIMEOUT, || async {
        Ok(std::fs::read_to_string(&failed).ok())
    })
    .await?;
    assert!(eml.contains(&placed.order_id), "{eml}");
    assert!(
        !dir.join(format!("order-received.{}.eml", placed.order_id))
            .exists(),
        "no link, no received email"
    );
    Ok(())
}

#[tokio::test]
async fn the_poll_at_the_deadline_still_finds_the_approval() -> anyhow::Result<()> {
    // No poll before the deadline: only the one at it can see the approval.
    let timing = CheckoutTiming {
        deadline_secs: 3,
        poll_secs: 600,
    };
    approved_with_every_webhook_lost(timing, "uma", "checkout-approved-at-deadline").await
}

#[tokio::test]
async fn a_gateway_outage_ends_the_wait_at_the_deadline() -> anyhow::Result<()> {
    let stack = Stack::builder()
        .checkout(CheckoutTiming {
            deadline_secs: 4,
            poll_secs: 1,
        })
        .start()
        .await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let sandbox = stack.sandbox()?;
    let placed = place(&stack, "vera", &[("MUG-1", 1)]).await?;
    // Down for good: the polls keep failing, and the wait still ends.
    sandbox
        .controls(json!({"fail_next": 1_000_000, "fail_status": 503}))
        .await?;
    reaches(&stack, &placed.workflow_id, "Compensating").await?;
    // Back: the void goes through and the order ends.
    sandbox.controls(json!({"fail_next": 0})).await?;
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.failure_code, "PAYMENT_EXPIRED");
    assert_eq!(order.payment_status, pb::PaymentStatus::Voided as i32);
    assert_eq!(sandbox.counts(&placed.transaction_id).await?.captures, 0);
    Ok(())
}

/// README: an accepted cancel ends the order `CANCELLED`, also when the
/// charge it interrupted is then declined (the decline stays on the
/// payment).
#[tokio::test]
async fn a_cancel_accepted_during_a_declined_capture_ends_cancelled() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    let mug = stack.product("MUG-1", 1_250, 10).await?;
    let sandbox = stack.sandbox()?;
    sandbox.controls(json!({"webhook_hold": true})).await?;
    // `decline…`: the buyer approves at once, the capture will be declined.
    let placed = place(&stack, "decline-wes", &[("MUG-1", 1)]).await?;
    // A slow gateway from now on: the capture takes seconds.
    sandbox.controls(json!({"latency_ms": 2000})).await?;
    release_webhooks(&stack).await?;
    reaches(&stack, &placed.workflow_id, "CapturePayment").await?;
    let accepted = cancel(&stack, &placed.order_id).await?;
    assert_eq!(accepted.status, pb::OrderStatus::Pending as i32);
    sandbox.controls(json!({"latency_ms": 0})).await?;
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Failed as i32);
    assert_eq!(order.failure_code, "CANCELLED");
    assert_eq!(order.payment_status, pb::PaymentStatus::Declined as i32);
    let counts = sandbox.counts(&placed.transaction_id).await?;
    assert_eq!((counts.captures, counts.refunds), (0, 0));
    assert_eq!(stack.on_hand(&mug).await?, 10);
    Ok(())
}

// ----- compensations the gateway refuses (issue 11, defect 1) ---------------

/// Waits until the saga waits for an operator (its `GetStatus` step).
async fn needs_attention_step(stack: &Stack, workflow_id: &str) -> anyhow::Result<()> {
    eventually(
        "the saga waiting for an operator",
        ORDER_TIMEOUT,
        || async {
            let view = stack
                .client
                .get_workflow_handle::<OrderWorkflow>(workflow_id.to_string())
                .query(
                    OrderWorkflow::get_status,
                    (),
                    temporalio_client::WorkflowQueryOptions::default(),
                )
                .await?;
            Ok((view.step == "NeedsAttention").then_some(()))
        },
    )
    .await
}

/// The orders `ListOrders` answers with `needs_attention`.
async fn needing_attention(stack: &Stack) -> anyhow::Result<Vec<pb::OrderSummary>> {
    Ok(stack
        .grpc
        .clone()
        .list_orders(pb::ListOrdersRequest {
            needs_attention: true,
            page_size: 100,
            ..Default::default()
        })
        .await?
        .into_inner()
        .orders)
}

/// The value of an unlabelled-or-labelled Prometheus sample `name`.
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits until the worker's `/metrics` at `addr` shows the needs-attention
/// gauge at `expected`.
async fn needs_attention_gauge(
    stack: &Stack,
    addr: std::net::SocketAddr,
    expected: f64,
) -> anyhow::Result<()> {
    let url = format!("http://{addr}/metrics");
    eventually("the needs-attention gauge", ORDER_TIMEOUT, || async {
        let body = stack.http.get(&url).send().await?.text().await?;
        let value = sample(&body, "ordersaga_orders_needs_attention");
        Ok((value == Some(expected)).then_some(()))
    })
    .await
}

/// Issue 11, defect 1, as observed: the gateway refuses the refund with a
/// 422. Before the fix the refusal ended the saga with the order PENDING,
/// the money captured and the stock still taken. Now the refund is parked
/// (`REFUND_FAILED`, the reason kept), the stock still comes back, the
/// order ends FAILED with its email, and it is listed and counted as
/// needing attention until an operator's retry refunds it.
#[tokio::test]
async fn a_refused_refund_is_parked_the_rest_unwinds_and_an_operators_retry_refunds_it()
-> anyhow::Result<()> {
    let mut stack = Stack::builder()
        .checkout(WEBHOOKS_ONLY)
        .without_worker()
        .start()
        .await?;
    let mug = stack.product("MUG-1", 1_250, 10).await?;
    let sandbox_base = stack.sandbox()?.base.clone();
    // Paid and stock deducted, then the worker dies before confirming; the
    // order is failed in the database as a lost cancel left it (defect 0),
    // so the next worker unwinds a refund and a release.
    let mut doomed = stack.spawn_worker_process(&[
        ("ORDERSAGA_CRASH_AFTER", "ProcessInventory"),
        ("ORDERSAGA_STICKY_TIMEOUT_MS", "1000"),
        ("ORDERSAGA_PAYPAL_BASE_URL", sandbox_base.as_str()),
    ])?;
    let placed = place(&stack, "approve-rosa", &[("MUG-1", 3)]).await?;
    let crashed = tokio::time::timeout(ORDER_TIMEOUT, doomed.wait()).await??;
    assert!(!crashed.success(), "the worker crashed after the deduction");
    assert_eq!(stack.on_hand(&mug).await?, 7);
    let order_id = OrderId::parse(&placed.order_id)?;
    let lost_cancel = FailureReason::Cancelled {
        message: "lost with its workflow task".into(),
    };
    stack
        .store
        .orders()
        .fail(&order_id, &lost_cancel, &[])
        .await?;

    stack
        .sandbox()?
        .controls(json!({"refuse_refunds": true}))
        .await?;
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    stack.start_worker(WorkerSettings {
        metrics_addr: Some(metrics),
        ..WorkerSettings::default()
    })?;
    let sandbox = stack.sandbox()?;
    needs_attention_step(&stack, &placed.workflow_id).await?;

    let order = get(&stack, &placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Failed as i32);
    assert_eq!(order.payment_status, pb::PaymentStatus::RefundFailed as i32);
    assert_eq!(order.attention.len(), 1, "{:?}", order.attention);
    let parked = &order.attention[0];
    assert_eq!(
        (parked.compensation.as_str(), parked.status.as_str()),
        ("RefundPayment", "OPEN")
    );
    assert!(
        parked.reason.contains("TRANSACTION_REFUSED"),
        "{}",
        parked.reason
    );
    let events: Vec<&str> = order.events.iter().map(|e| e.name.as_str()).collect();
    assert!(events.contains(&"PaymentRefundFailed"), "{events:?}");
    assert!(events.contains(&"InventoryReleased"), "{events:?}");
    assert_eq!(stack.on_hand(&mug).await?, 10, "the stock came back");
    let counts = sandbox.counts(&placed.transaction_id).await?;
    assert_eq!((counts.captures, counts.refunds), (1, 0));
    assert_eq!(
        stack.order_status_attribute(&placed.workflow_id).await?,
        "FAILED"
    );
    let listed = needing_attention(&stack).await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].order_id, placed.order_id);
    assert!(
        listed[0].attention.starts_with("RefundPayment: "),
        "{}",
        listed[0].attention
    );
    needs_attention_gauge(&stack, metrics, 1.0).await?;
    eventually("the failed email", ORDER_TIMEOUT, || async {
        let sent = stack
            .store
            .notifications()
            .of_subject(&placed.order_id)
            .await?
            .into_iter()
            .any(|r| r.stage == EmailStage::OrderFailed && r.status == NotificationStatus::Sent);
        Ok(sent.then_some(()))
    })
    .await?;

    // The cause is fixed at the gateway; an operator retries over HTTP.
    sandbox.controls(json!({"refuse_refunds": false})).await?;
    let r = stack
        .http
        .post(format!(
            "{}/v1/orders/{}/retry-compensation",
            stack.http_base, placed.order_id
        ))
        .json(&json!({"operator": "ops-ana", "reason": "gateway limit raised"}))
        .send()
        .await?;
    assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
    let handle = stack
        .client
        .get_workflow_handle::<UntypedWorkflow>(placed.workflow_id.clone());
    let ended = handle.get_result(WorkflowGetResultOptions::default()).await;
    assert!(ended.is_err(), "a cancelled order's saga ends cancelled");
    let order = get(&stack, &placed.order_id).await?;
    assert_eq!(order.payment_status, pb::PaymentStatus::Refunded as i32);
    assert_eq!(order.attention[0].status, "RESOLVED");
    let counts = sandbox.counts(&placed.transaction_id).await?;
    assert_eq!((counts.captures, counts.refunds), (1, 1), "refunded once");
    assert!(needing_attention(&stack).await?.is_empty());
    needs_attention_gauge(&stack, metrics, 0.0).await?;
    stack
        .replay_check(&placed.workflow_id, "compensation-parked-retried")
        .await?;
    stack.stop_workers()
}

/// An operator who settled a refused refund by hand closes it with a
/// reason: the saga records who and why and ends; the payment stays
/// `REFUND_FAILED` (the gateway never refunded it).
#[tokio::test]
async fn an_operator_closes_a_refused_refund_with_a_recorded_reason() -> anyhow::Result<()> {
    let stack = Stack::builder().checkout(WEBHOOKS_ONLY).start().await?;
    let mug = stack.product("MUG-1", 1_250, 1).await?;
    let sandbox = stack.sandbox()?;
    sandbox.controls(json!({"refuse_refunds": true})).await?;
    // Approved and captured at once, then short of stock: the refund is
    // refused.
    let placed = place(&stack, "approve-sam", &[("MUG-1", 3)]).await?;
    needs_attention_step(&stack, &placed.workflow_id).await?;
    let order = get(&stack, &placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Failed as i32);
    assert_eq!(order.failure_code, "OUT_OF_STOCK");
    assert_eq!(order.payment_status, pb::PaymentStatus::RefundFailed as i32);
    assert_eq!(
        stack.order_status_attribute(&placed.workflow_id).await?,
        "FAILED"
    );
    assert_eq!(needing_attention(&stack).await?.len(), 1);

    // Retrying an order with nothing parked, or closing without a reason,
    // is refused.
    let mut grpc = stack.grpc.clone();
    let no_reason = grpc
        .close_attention(pb::CloseAttentionRequest {
            order_id: placed.order_id.clone(),
            operator: "ops-ana".into(),
            reason: String::new(),
        })
        .await
        .err()
        .context("a close needs a reason")?;
    assert_eq!(no_reason.code(), Code::InvalidArgument);
    grpc.close_attention(pb::CloseAttentionRequest {
        order_id: placed.order_id.clone(),
        operator: "ops-ana".into(),
        reason: "refunded by bank transfer".into(),
    })
    .await?;
    let outcome = stack
        .client
        .get_workflow_handle::<OrderWorkflow>(placed.workflow_id.clone())
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    assert_eq!(outcome.status, ordersaga_domain::OrderStatus::Failed);
    assert!(!outcome.refunded);
    let order = get(&stack, &placed.order_id).await?;
    assert_eq!(order.payment_status, pb::PaymentStatus::RefundFailed as i32);
    let closed = &order.attention[0];
    assert_eq!(
        (
            closed.status.as_str(),
            closed.closed_by.as_str(),
            closed.close_reason.as_str()
        ),
        ("CLOSED", "ops-ana", "refunded by bank transfer")
    );
    let events: Vec<&str> = order.events.iter().map(|e| e.name.as_str()).collect();
    assert!(events.contains(&"AttentionClosed"), "{events:?}");
    assert!(needing_attention(&stack).await?.is_empty());
    assert_eq!(stack.on_hand(&mug).await?, 1, "nothing was deducted");
    let again = grpc
        .retry_compensation(pb::RetryCompensationRequest {
            order_id: placed.order_id.clone(),
            operator: "ops-ana".into(),
            reason: String::new(),
        })
        .await
        .err()
        .context("nothing left to retry")?;
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(sandbox.counts(&placed.transaction_id).await?.refunds, 0);
    stack
        .replay_check(&placed.workflow_id, "compensation-parked-closed")
        .await
}
