//! The PayPal adapter against the payments sandbox, both in this process on
//! port 0: the checkout flow through the approval page, idempotency, lost
//! answers resolved by asking, injected failures classified, and signed
//! webhooks arriving (retried, duplicated, reordered) at a test receiver.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use ordersaga_activities::gateway::checkout::{
    CaptureOutcome, CaptureStatus, CheckoutError, CheckoutGateway, CheckoutRequest,
    CheckoutStatus as OrderStatus, RefundOutcome, VoidOutcome,
};
use ordersaga_activities::gateway::webhook::{
    DEFAULT_TOLERANCE, PaymentEvent, PaymentEventKind, SIGNATURE_HEADER, TIMESTAMP_HEADER,
    WebhookError, verify,
};
use ordersaga_domain::{Currency, Money, TransactionId};
use ordersaga_tests::{Sandbox, TEST_WEBHOOK_SECRET, eventually};
use serde_json::{Value, json};

fn checkout(amount_cents: i64) -> anyhow::Result<CheckoutRequest> {
    Ok(CheckoutRequest {
        transaction_id: TransactionId::from_uuid(uuid::Uuid::new_v4()),
        amount: Money::new(amount_cents, Currency::parse("EUR")?),
        return_url: None,
        cancel_url: None,
        description: Some("Order of 2 mugs".to_string()),
        payer_email: None,
    })
}

#[tokio::test]
async fn approve_on_the_page_then_capture_and_refund_once() -> anyhow::Result<()> {
    let sandbox = Sandbox::standalone().await?;
    let gateway = sandbox.gateway_with_timeout(Duration::from_secs(5))?;
    let request = checkout(1234)?;
    let txn = request.transaction_id;

    let order = gateway.create_order(&request).await?;
    assert_eq!(order.status, OrderStatus::Created);
    assert!(
        order
            .approve_url
            .starts_with(&format!("{}/checkoutnow?token=", sandbox.base))
    );
    // A retried create (same transaction, same PayPal-Request-Id) is the same order.
    assert_eq!(gateway.create_order(&request).await?.id, order.id);

    let not_yet = gateway.capture(&order.id, &txn).await.unwrap_err();
    assert_eq!(not_yet.issue(), Some("ORDER_NOT_APPROVED"));
    assert!(!not_yet.is_retryable());

    let confirmation = sandbox.press_on_page(&order.approve_url, "approve").await?;
    assert!(confirmation.contains("Payment approved"), "{confirmation}");
    let snapshot = gateway.get_order(&order.id).await?;
    assert_eq!(snapshot.status, OrderStatus::Approved);
    assert_eq!(snapshot.custom_id, Some(txn.to_string()));

    let CaptureOutcome::Completed { capture_id } = gateway.capture(&order.id, &txn).await? else {
        panic!("capture was not completed");
    };
    // The same capture again is answered from the idempotency cache.
    assert_eq!(
        gateway.capture(&order.id, &txn).await?,
        CaptureOutcome::Completed {
            capture_id: capture_id.clone()
        }
    );
    // Under another key the gateway refuses (ORDER_ALREADY_CAPTURED); the
    // adapter reads back and reports the capture that exists.
    let other_key = TransactionId::from_uuid(uuid::Uuid::new_v4());
    assert_eq!(
        gateway.capture(&order.id, &other_key).await?,
        CaptureOutcome::Completed {
            capture_id: capture_id.clone()
        }
    );
    let counts = sandbox.counts(&txn).await?;
    assert_eq!(counts.orders, 1);
    assert_eq!(counts.captures, 1);
    assert_eq!(counts.capture_requests, 4);

    let RefundOutcome::Refunded { refund_id } = gateway.refund(&capture_id, &txn).await? else {
        panic!("not refunded");
    };
    assert_eq!(
        gateway.refund(&capture_id, &txn).await?,
        RefundOutcome::Refunded { refund_id }
    );
    assert_eq!(
        gateway.ensure_refunded(&order.id, &txn).await?,
        RefundOutcome::AlreadyRefunded
    );
    let snapshot = gateway.get_order(&order.id).await?;
    assert_eq!(snapshot.status, OrderStatus::Completed);
    assert_eq!(
        snapshot.capture.map(|c| c.status),
        Some(CaptureStatus::Refunded)
    );
    let counts = sandbox.counts(&txn).await?;
    assert_eq!(counts.refunds, 1);
    assert_eq!(counts.refund_requests, 2);
    Ok(())
}

#[tokio::test]
async fn a_lost_capture_answer_is_unknown_and_found_by_asking() -> anyhow::Result<()> {
    let sandbox = Sandbox::standalone().await?;
    let gateway = sandbox.gateway_with_timeout(Duration::from_millis(500))?;
    let request = checkout(999)?;
    let txn = request.transaction_id;
    let order = gateway.create_order(&request).await?;
    sandbox.press_on_page(&order.approve_url, "approve").await?;

    // The sandbox commits the capture, then answers nothing for 3 s: the
    // adapter's 500 ms timeout fires first.
    sandbox
        .controls(json!({"lose_capture_answer_next": 1, "hang_ms": 3000}))
        .await?;
    let lost = gateway.capture(&order.id, &txn).await.unwrap_err();
    assert!(
        matches!(lost, CheckoutError::OutcomeUnknown { .. }),
        "{lost:?}"
    );
    assert!(lost.is_retryable());

    // The next attempt asks first and finds the capture.
    let snapshot = gateway.get_order(&order.id).await?;
    assert_eq!(snapshot.status, OrderStatus::Completed);
    let outcome = gateway.ensure_captured(&order.id, &txn).await?;
    let CaptureOutcome::Completed { capture_id } = outcome else {
        panic!("not completed: {outcome:?}");
    };
    assert_eq!(snapshot.capture.map(|c| c.id), Some(capture_id));
    let counts = sandbox.counts(&txn).await?;
    assert_eq!(counts.captures, 1);
    assert_eq!(
        counts.capture_requests, 1,
        "ensure_captured must not capture again"
    );
    Ok(())
}

#[tokio::test]
async fn state_survives_a_restart_and_a_refused_token_is_replaced() -> anyhow::Result<()> {
    let mut sandbox = Sandbox::standalone().await?;
    let gateway = sandbox.gateway_with_timeout(Duration::from_secs(5))?;
    let request = checkout(4200)?;
    let txn = request.transaction_id;
    let order = gateway.create_order(&request).await?;
    sandbox.press_on_page(&order.approve_url, "approve").await?;

    sandbox.restart().await?;
    // Access tokens live in the sandbox's memory: the adapter's cached one
    // is refused once (nothing happened, retry) and then replaced.
    let refused = gateway.get_order(&order.id).await.unwrap_err();
    assert!(
        matches!(refused, CheckoutError::Transient { .. }),
        "{refused:?}"
    );
    // Orders and the idempotency cache are on disk.
    assert_eq!(
        gateway.get_order(&order.id).await?.status,
        OrderStatus::Approved
    );
    assert_eq!(gateway.create_order(&request).await?.id, order.id);
    assert!(matches!(
        gateway.ensure_captured(&order.id, &txn).await?,
        CaptureOutcome::Completed { .. }
    ));
    let counts = sandbox.counts(&txn).await?;
    assert_eq!(counts.orders, 1);
    assert_eq!(counts.captures, 1);
    Ok(())
}

#[tokio::test]
async fn injected_failures_are_transient_on_reads_and_unknown_on_writes() -> anyhow::Result<()> {
    let sandbox = Sandbox::standalone().await?;
    let gateway = sandbox.gateway_with_timeout(Duration::from_secs(5))?;
    let request = checkout(500)?;
    let txn = request.transaction_id;
    let order = gateway.create_order(&request).await?;
    sandbox.press_on_page(&order.approve_url, "approve").await?;

    sandbox
        .controls(json!({"fail_next": 1, "fail_status": 503}))
        .await?;
    let read = gateway.get_order(&order.id).await.unwrap_err();
    assert!(matches!(read, CheckoutError::Transient { .. }), "{read:?}");

    sandbox.controls(json!({"fail_next": 1})).await?;
    let write = gateway.capture(&order.id, &txn).await.unwrap_err();
    assert!(
        matches!(write, CheckoutError::OutcomeUnknown { .. }),
        "{write:?}"
    );
    // The failure was injected before the handler: nothing happened, and
    // the resolving retry captures exactly once.
    // (The counts of a transaction the sandbox never saw are zeros too:
    // its order must be there.)
    let counts = sandbox.counts(&txn).await?;
    assert_eq!((counts.orders, counts.capture_requests), (1, 0));
    assert!(matches!(
        gateway.ensure_captured(&order.id, &txn).await?,
        CaptureOutcome::Completed { .. }
    ));

    // A timeout injected on a write is an unknown outcome too. (Faults hit
    // the token endpoint as well, so this adapter gets its token first.)
    let short = sandbox.gateway_with_timeout(Duration::from_millis(300))?;
    short.get_order(&order.id).await?;
    sandbox
        .controls(json!({"timeout_next": 1, "hang_ms": 2000}))
        .await?;
    let timeout = short.create_order(&checkout(100)?).await.unwrap_err();
    assert!(
        matches!(timeout, CheckoutError::OutcomeUnknown { .. }),
        "{timeout:?}"
    );
    assert_eq!(sandbox.counts(&txn).await?.captures, 1);
    Ok(())
}

#[tokio::test]
async fn simulated_buyers_decline_cancel_and_voids_hold() -> anyhow::Result<()> {
    let sandbox = Sandbox::standalone().await?;
    let gateway = sandbox.gateway_with_timeout(Duration::from_secs(5))?;

    // A buyer whose capture the processor declines, chosen by email.
    let declined = CheckoutRequest {
        payer_email: Some("decline+1@buyer.test".to_string()),
        ..checkout(2500)?
    };
    let order = gateway.create_order(&declined).await?;
    eventually("auto-approval", Duration::from_secs(10), || async {
        Ok((gateway.get_order(&order.id).await?.status == OrderStatus::Approved).then_some(()))
    })
    .await?;
    let outcome = gateway.capture(&order.id, &declined.transaction_id).await?;
    assert!(
        matches!(outcome, CaptureOutcome::Declined { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        gateway
            .ensure_refunded(&order.id, &declined.transaction_id)
            .await?,
        RefundOutcome::NothingCaptured
    );
    let counts = sandbox.counts(&declined.transaction_id).await?;
    assert_eq!((counts.orders, counts.captures), (1, 0));

    // A buyer who cancels (every buyer, by the sandbox's default): the order
    // is voided and cannot be captured.
    sandbox
        .controls(json!({"default_behavior": "cancel"}))
        .await?;
    let cancelled = checkout(700)?;
    let order = gateway.create_order(&cancelled).await?;
    eventually("auto-cancel", Duration::from_secs(10), || async {
        Ok((gateway.get_order(&order.id).await?.status == OrderStatus::Voided).then_some(()))
    })
    .await?;
    let refused = gateway
        .capture(&order.id, &cancelled.transaction_id)
        .await
        .unwrap_err();
    assert_eq!(refused.issue(), Some("ORDER_EXPIRED"));
    assert_eq!(
        gateway.void(&order.id, &cancelled.transaction_id).await?,
        VoidOutcome::Voided
    );

    // The shop voids an unpaid order; a captured one cannot be voided.
    sandbox
        .controls(json!({"default_behavior": "manual"}))
        .await?;
    let unpaid = checkout(800)?;
    let order = gateway.create_order(&unpaid).await?;
    assert_eq!(
        gateway.void(&order.id, &unpaid.transaction_id).await?,
        VoidOutcome::Voided
    );
    let page = sandbox
        .http()
        .get(&order.approve_url)
        .send()
        .await?
        .text()
        .await?;
    assert!(page.contains("data-status=\"VOIDED\""), "{page}");

    let paid = checkout(900)?;
    let order = gateway.create_order(&paid).await?;
    sandbox.press_on_page(&order.approve_url, "approve").await?;
    gateway
        .ensure_captured(&order.id, &paid.transaction_id)
        .await?;
    let too_late = gateway
        .void(&order.id, &paid.transaction_id)
        .await
        .unwrap_err();
    assert_eq!(too_late.issue(), Some("ORDER_ALREADY_CAPTURED"));
    Ok(())
}

/// One webhook as the receiver got it.
#[derive(Debug, Clone)]
struct Delivery {
    timestamp: String,
    signature: String,
    body: Bytes,
}

/// A stand-in for the API's webhook endpoint: records every delivery and
/// refuses the first `refuse_first` with a 503.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
}

async fn start_receiver(refuse_first: u32) -> anyhow::Result<Receiver> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let refuse = Arc::new(AtomicU32::new(refuse_first));
    let (sink, refusals) = (got.clone(), refuse.clone());
    let app = axum::Router::new().route(
        "/v1/payments/webhook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (sink, refusals) = (sink.clone(), refusals.clone());
            async move {
                let refused = refusals
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if refused {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Delivery {
                        timestamp: header(TIMESTAMP_HEADER),
                        signature: header(SIGNATURE_HEADER),
                        body,
                    });
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/payments/webhook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Receiver { url, got })
}

impl Receiver {
    fn deliveries(&self) -> Vec<Delivery> {
        self.got
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn events(&self) -> anyhow::Result<Vec<PaymentEvent>> {
        self.deliveries()
            .iter()
            .map(|d| Ok(PaymentEvent::parse(&d.body)?))
            .collect()
    }

    async fn wait_for(&self, n: usize) -> anyhow::Result<Vec<PaymentEvent>> {
        eventually(
            &format!("{n} webhooks"),
            Duration::from_secs(15),
            || async {
                let events = self.events()?;
                Ok((events.len() >= n).then_some(events))
            },
        )
        .await
    }
}

#[tokio::test]
async fn webhooks_are_signed_retried_and_duplicated() -> anyhow::Result<()> {
    // The first two deliveries are refused: the sandbox retries.
    let receiver = start_receiver(2).await?;
    let sandbox = Sandbox::sending_webhooks_to(receiver.url.clone()).await?;
    sandbox.controls(json!({"webhook_duplicates": 1})).await?;
    let gateway = sandbox.gateway_with_timeout(Duration::from_secs(5))?;
    let request = checkout(1500)?;
    let txn = request.transaction_id;
    let order = gateway.create_order(&request).await?;
    sandbox.press_on_page(&order.approve_url, "approve").await?;

    // One event, delivered twice (same event id).
    let events = receiver.wait_for(2).await?;
    assert_eq!(events[0].kind, PaymentEventKind::OrderApproved);
    assert_eq!(events[0].event_id, events[1].event_id);
    assert_eq!(
        events[0].gateway_order_id.as_deref(),
        Some(order.id.as_str())
    );
    assert_eq!(events[0].custom_id, Some(txn.to_string()));

    let CaptureOutcome::Completed { capture_id } = gateway.capture(&order.id, &txn).await? else {
        panic!("not captured");
    };
    let events = receiver.wait_for(4).await?;
    let captured: Vec<_> = events
        .iter()
        .filter(|e| e.kind == PaymentEventKind::CaptureCompleted)
        .collect();
    assert_eq!(captured.len(), 2);
    assert_eq!(captured[0].capture_id.as_deref(), Some(capture_id.as_str()));

    // Every delivery verifies; a forged body or a stale replay does not.
    let now = SystemTime::now();
    for d in receiver.deliveries() {
        verify(
            TEST_WEBHOOK_SECRET.as_bytes(),
            &d.timestamp,
            &d.body,
            &d.signature,
            now,
            DEFAULT_TOLERANCE,
        )?;
    }
    let d = &receiver.deliveries()[0];
    let forged = String::from_utf8_lossy(&d.body).replace("APPROVED", "COMPLETED");
    assert_eq!(
        verify(
            TEST_WEBHOOK_SECRET.as_bytes(),
            &d.timestamp,
            forged.as_bytes(),
            &d.signature,
            now,
            DEFAULT_TOLERANCE
        ),
        Err(WebhookError::BadSignature)
    );
    assert_eq!(
        verify(
            b"not-the-secret",
            &d.timestamp,
            &d.body,
            &d.signature,
            now,
            DEFAULT_TOLERANCE
        ),
        Err(WebhookError::BadSignature)
    );
    let an_hour_later = now + Duration::from_secs(3600);
    assert!(matches!(
        verify(
            TEST_WEBHOOK_SECRET.as_bytes(),
            &d.timestamp,
            &d.body,
            &d.signature,
            an_hour_later,
            DEFAULT_TOLERANCE
        ),
        Err(WebhookError::Stale { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn held_webhooks_arrive_out_of_order_and_dropped_ones_never() -> anyhow::Result<()> {
    let receiver = start_receiver(0).await?;
    let sandbox = Sandbox::sending_webhooks_to(receiver.url.clone()).await?;
    let gateway = sandbox.gateway_with_timeout(Duration::from_secs(5))?;
    let request = checkout(2000)?;
    let txn = request.transaction_id;
    let order = gateway.create_order(&request).await?;

    sandbox.controls(json!({"webhook_hold": true})).await?;
    sandbox.press_on_page(&order.approve_url, "approve").await?;
    let capture = gateway.ensure_captured(&order.id, &txn).await?;
    let CaptureOutcome::Completed { capture_id } = capture else {
        panic!("not captured: {capture:?}");
    };
    gateway.refund(&capture_id, &txn).await?;
    assert!(
        receiver.events()?.is_empty(),
        "held webhooks were delivered"
    );

    let released: Value = sandbox
        .http()
        .post(format!("{}/sandbox/webhooks/release", sandbox.base))
        .json(&json!({"order": "reverse"}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(released["released"], 3);
    let kinds: Vec<_> = receiver.wait_for(3).await?.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            PaymentEventKind::CaptureRefunded,
            PaymentEventKind::CaptureCompleted,
            PaymentEventKind::OrderApproved
        ]
    );

    // A lost webhook: the next order's approval is dropped, its void is not.
    sandbox
        .controls(json!({"webhook_hold": false, "webhook_drop_next": 1}))
        .await?;
    let next = checkout(300)?;
    let order = gateway.create_order(&next).await?;
    sandbox.press_on_page(&order.approve_url, "approve").await?;
    gateway.void(&order.id, &next.transaction_id).await?;
    let events = receiver.wait_for(4).await?;
    assert_eq!(events.len(), 4);
    assert_eq!(events[3].kind, PaymentEventKind::OrderVoided);
    Ok(())
}

/// A partial refund through the adapter: once per key, at most what is
/// left, and the full refund after it gives back the rest.
#[tokio::test]
async fn partial_refunds_once_per_key_and_the_rest_in_full() -> anyhow::Result<()> {
    let sandbox = Sandbox::standalone().await?;
    let gateway = sandbox.gateway_with_timeout(Duration::from_secs(5))?;
    let request = checkout(1234)?;
    let txn = request.transaction_id;
    let order = gateway.create_order(&request).await?;
    sandbox.press_on_page(&order.approve_url, "approve").await?;
    let CaptureOutcome::Completed { capture_id } = gateway.capture(&order.id, &txn).await? else {
        panic!("capture was not completed");
    };
    let eur = |minor| -> anyhow::Result<Money> { Ok(Money::new(minor, Currency::parse("EUR")?)) };

    let RefundOutcome::Refunded { refund_id } = gateway
        .refund_part(&capture_id, &txn, &eur(250)?, "amendment-1")
        .await?
    else {
        panic!("not refunded");
    };
    assert_eq!(
        gateway
            .refund_part(&capture_id, &txn, &eur(250)?, "amendment-1")
            .await?,
        RefundOutcome::Refunded { refund_id },
        "a retry is the same refund"
    );
    let snapshot = gateway.get_order(&order.id).await?;
    assert_eq!(
        snapshot.capture.map(|c| c.status),
        Some(CaptureStatus::PartiallyRefunded)
    );
    let too_much = gateway
        .refund_part(&capture_id, &txn, &eur(985)?, "amendment-2")
        .await
        .unwrap_err();
    assert_eq!(too_much.issue(), Some("REFUND_AMOUNT_EXCEEDED"));
    assert!(!too_much.is_retryable());

    // The full refund gives back what is left.
    assert!(matches!(
        gateway.refund(&capture_id, &txn).await?,
        RefundOutcome::Refunded { .. }
    ));
    let snapshot = gateway.get_order(&order.id).await?;
    assert_eq!(
        snapshot.capture.map(|c| c.status),
        Some(CaptureStatus::Refunded)
    );
    assert_eq!(
        gateway
            .refund_part(&capture_id, &txn, &eur(1)?, "amendment-3")
            .await?,
        RefundOutcome::AlreadyRefunded
    );
    let counts = sandbox.counts(&txn).await?;
    assert_eq!(counts.refunds, 2, "2.50, then the 9.84 left");
    Ok(())
}
