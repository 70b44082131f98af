//! The notifications and shipping services below Temporal: templates,
//! the local mailbox, the backoff, and the store's once-only records on
//! both backends (SQLite and PostgreSQL, as in `store.rs`).

// Fixture builders take literals that are valid by construction.
#![allow(clippy::expect_used)]

use std::time::Duration;

use anyhow::Context;
use ordersaga_activities::mail::{Delivery, MailError, MailSettings, Mailer};
use ordersaga_activities::mail::{SmtpSettings, SmtpTls};
use ordersaga_activities::notify::AttemptOf::OutboxClaim;
use ordersaga_activities::notify::{EmailOutcome, EmailRetry, NotificationActivities};
use ordersaga_domain::{
    CustomerId, DEFAULT_WAREHOUSE, EmailStage, FailureReason, LowStockAlert, Notification, OrderId,
    ShipmentLine, ShipmentRequest, ShipmentStatus, Sku,
};
use ordersaga_store::Store;
use ordersaga_store::{EmailAttempt, NotificationStatus};
use ordersaga_tests::fixtures::{mailbox_mailer, order_email, shipping_address, stored_email};

#[test]
fn every_stage_renders_its_subject_text_and_html() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let m = mailbox_mailer(dir.path(), None)?;
    let id = "00000000-0000-0000-0000-00000000002a";

    let received = m.render(&order_email(EmailStage::OrderReceived, None, false)?)?;
    assert_eq!(received.to, "alice@example.com");
    assert_eq!(received.subject, format!("We received your order {id}"));
    assert!(received.text.contains("payment is\nbeing processed"));
    assert!(
        received
            .text
            .contains(&format!("https://shop.example/v1/orders/{id}"))
    );
    assert_eq!(
        received.message_id,
        format!("<order-received.{id}@ordersaga>")
    );
    assert!(!received.html.contains("Pay now"), "{}", received.html);

    // While the payment waits for the buyer at the gateway, the email
    // carries the approval link.
    let mut awaiting = order_email(EmailStage::OrderReceived, None, false)?;
    if let Notification::Order(e) = &mut awaiting {
        e.payment_url = Some("https://pay.example/checkoutnow?token=T-1".into());
    }
    let awaiting = m.render(&awaiting)?;
    // (HTML escapes `/` in attributes as `&#x2f;`, which browsers decode.)
    for part in [awaiting.text.clone(), awaiting.html.replace("&#x2f;", "/")] {
        assert!(
            part.contains("https://pay.example/checkoutnow?token=T-1"),
            "{part}"
        );
        assert!(!part.contains("being processed"), "{part}");
    }
    assert!(
        awaiting.text.contains("approve the payment of 25.00 EUR"),
        "{}",
        awaiting.text
    );

    let confirmed = m.render(&order_email(EmailStage::OrderConfirmed, None, false)?)?;
    assert_eq!(confirmed.subject, format!("Your order {id} is confirmed"));
    for want in [
        "2 x MUG-1 at 12.50 EUR = 25.00 EUR",
        "Total: 25.00 EUR",
        "OX1 1AA Oxford",
    ] {
        assert!(
            confirmed.text.contains(want),
            "{want:?} in {}",
            confirmed.text
        );
    }
    assert!(
        confirmed.html.contains("<td>MUG-1</td>"),
        "{}",
        confirmed.html
    );

    let short = FailureReason::OutOfStock {
        sku: Sku::parse("MUG-1")?,
        requested: 2,
        available: 1,
    };
    let refunded = m.render(&order_email(EmailStage::OrderFailed, Some(short), true)?)?;
    assert!(
        refunded
            .text
            .contains("Why: out of stock: MUG-1 (ordered 2, 1 available)")
    );
    assert!(refunded.text.contains("You have been refunded"));
    assert!(refunded.html.contains("You have been refunded"));

    let declined = FailureReason::PaymentDeclined {
        message: "card <expired>".into(),
    };
    let not_charged = m.render(&order_email(
        EmailStage::OrderFailed,
        Some(declined),
        false,
    )?)?;
    assert!(not_charged.text.contains("No money was taken"));
    assert!(!not_charged.text.contains("refunded"));
    // HTML escapes what came from outside; the text part does not need to.
    assert!(
        not_charged.html.contains("card &lt;expired&gt;"),
        "{}",
        not_charged.html
    );
    assert!(not_charged.text.contains("card <expired>"));
    Ok(())
}

#[test]
fn low_stock_alerts_go_to_the_configured_merchant() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let alert = Notification::LowStock(LowStockAlert {
        alert_id: uuid::Uuid::from_u128(7),
        sku: Sku::parse("MUG-1")?,
        product_name: "Ordersaga mug".into(),
        on_hand: 2,
        threshold: 5,
    });
    let err = mailbox_mailer(dir.path(), None)?
        .render(&alert)
        .unwrap_err();
    assert!(matches!(err, MailError::NoMerchant) && err.is_permanent());
    let rendered = mailbox_mailer(dir.path(), Some("merchant@example.com"))?.render(&alert)?;
    assert_eq!(rendered.to, "merchant@example.com");
    assert_eq!(rendered.subject, "Low stock: MUG-1 (2 left)");
    assert!(rendered.text.contains("threshold of 5"));
    Ok(())
}

#[tokio::test]
async fn the_local_mailbox_holds_one_eml_per_email_however_often_it_is_sent() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let m = mailbox_mailer(dir.path(), None)?;
    let rendered = m.render(&order_email(EmailStage::OrderConfirmed, None, false)?)?;
    m.send(&rendered).await?;
    m.send(&rendered).await?;
    let files: Vec<String> = std::fs::read_dir(dir.path())?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(
        files,
        ["order-confirmed.00000000-0000-0000-0000-00000000002a.eml"]
    );
    let eml = std::fs::read_to_string(dir.path().join(&files[0]))?;
    for want in [
        "Message-ID: <order-confirmed.00000000-0000-0000-0000-00000000002a@ordersaga>",
        "To: alice@example.com",
        "multipart/alternative",
        "Content-Type: text/plain",
        "Content-Type: text/html",
    ] {
        assert!(eml.contains(want), "{want:?} in {eml}");
    }
    Ok(())
}

#[test]
fn backoff_doubles_up_to_its_maximum() {
    let r = EmailRetry {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
        horizon: Duration::from_secs(60),
    };
    let delays: Vec<u128> = (1..=6).map(|a| r.delay(a).as_millis()).collect();
    assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    assert_eq!(r.delay(u32::MAX), Duration::from_secs(1));
    assert_eq!(
        EmailRetry::default().horizon,
        Duration::from_secs(24 * 3600)
    );
}

// ----- store records, on both backends -----------------------------------

ordersaga_tests::both_backends!(
    an_email_is_recorded_once_and_sent_once,
    an_attempt_that_finds_no_row_records_its_email_once_after_sending,
    a_late_unclaimed_record_leaves_a_settled_email_settled,
    a_shipping_request_is_created_once_per_order,
);

async fn an_email_is_recorded_once_and_sent_once(store: Store) -> anyhow::Result<()> {
    let n = order_email(EmailStage::OrderConfirmed, None, false)?;
    let (subject, stage, mid) = (n.subject_id(), n.stage(), n.message_id());
    let first = store
        .notifications()
        .claim(&subject, stage, "alice@example.com", "Hi", &mid, false)
        .await?;
    assert_eq!(
        (first.status, first.attempts),
        (NotificationStatus::Pending, 0)
    );
    // An attempt's claim counts it, in the record it returns.
    let attempt = store
        .notifications()
        .claim(&subject, stage, "alice@example.com", "Hi", &mid, true)
        .await?;
    assert_eq!(
        (
            attempt.status,
            attempt.attempts,
            attempt.message_id.as_str()
        ),
        (NotificationStatus::Pending, 1, mid.as_str())
    );
    store
        .notifications()
        .note_error(&subject, stage, "relay down")
        .await?;
    // A retry claims again: same row, nothing reset, the first recipient
    // and subject kept.
    let again = store
        .notifications()
        .claim(&subject, stage, "other@example.com", "Other", &mid, false)
        .await?;
    assert_eq!(again.attempts, 1);
    assert_eq!(again.last_error.as_deref(), Some("relay down"));
    assert_eq!(
        (again.recipient.as_str(), again.subject.as_str()),
        ("alice@example.com", "Hi")
    );
    assert!(
        store
            .notifications()
            .settle(&subject, stage, NotificationStatus::Sent, None)
            .await?
    );
    assert!(
        !store
            .notifications()
            .settle(&subject, stage, NotificationStatus::Failed, Some("late"))
            .await?,
        "a sent email stays sent"
    );
    // A settled email counts no further attempt.
    let sent = store
        .notifications()
        .claim(&subject, stage, "alice@example.com", "Hi", &mid, true)
        .await?;
    assert_eq!((sent.status, sent.attempts), (NotificationStatus::Sent, 1));
    assert!(sent.sent_at_ms.is_some());
    // Another stage of the same order is its own email.
    store
        .notifications()
        .claim(
            &subject,
            EmailStage::OrderReceived,
            "a@example.com",
            "R",
            "<r@x>",
            false,
        )
        .await?;
    assert_eq!(store.notifications().of_subject(&subject).await?.len(), 2);
    Ok(())
}

/// A mailer whose SMTP relay refuses connections: every send fails and
/// is worth retrying.
fn unreachable_smtp() -> anyhow::Result<Mailer> {
    // A port that was free a moment ago and is held from other pickers:
    // nothing listens there.
    let port = ordersaga_tests::free_port()?;
    Ok(Mailer::new(MailSettings {
        delivery: Delivery::Smtp(SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            username: None,
            password: None,
            timeout: Duration::from_secs(5),
        }),
        ..MailSettings::default()
    })?)
}

async fn an_attempt_that_finds_no_row_records_its_email_once_after_sending(
    store: Store,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let retry = EmailRetry::default();
    let down = NotificationActivities::new(store.clone(), unreachable_smtp()?.into(), retry);
    let up = NotificationActivities::new(
        store.clone(),
        mailbox_mailer(dir.path(), None)?.into(),
        retry,
    );
    let now = ordersaga_store::now_ms();
    let n = order_email(EmailStage::OrderConfirmed, None, false)?;
    let record = || stored_email(&store, &n);

    // A first attempt that fails writes the row once, after: PENDING with
    // its error, counted.
    let failed = down.deliver(&n, now, OutboxClaim(1)).await?;
    assert!(matches!(failed, EmailOutcome::Retry { .. }), "{failed:?}");
    let row = record().await?;
    assert_eq!((row.status, row.attempts), (NotificationStatus::Pending, 1));
    assert!(row.last_error.is_some());
    assert_eq!(row.recipient, "alice@example.com");
    // A retry claims the row before sending and counts itself.
    down.deliver(&n, now, OutboxClaim(2)).await?;
    assert_eq!(record().await?.attempts, 2);
    // The send that gets through settles it; one after that sends nothing.
    let sent = up.deliver(&n, now, OutboxClaim(3)).await?;
    assert!(
        matches!(&sent, EmailOutcome::Sent(r) if !r.already_sent),
        "{sent:?}"
    );
    let row = record().await?;
    assert_eq!((row.status, row.attempts), (NotificationStatus::Sent, 3));
    assert_eq!(row.last_error, None);
    assert!(row.sent_at_ms.is_some());
    let again = up.deliver(&n, now, OutboxClaim(4)).await?;
    assert!(
        matches!(&again, EmailOutcome::Sent(r) if r.already_sent),
        "{again:?}"
    );
    assert_eq!(record().await?.attempts, 3);

    // An attempt that finds no row and gets through writes it SENT at
    // once, counting the attempts before it (they died before writing).
    let received = order_email(EmailStage::OrderReceived, None, false)?;
    let done = up.deliver(&received, now, OutboxClaim(3)).await?;
    assert!(
        matches!(&done, EmailOutcome::Sent(r) if !r.already_sent),
        "{done:?}"
    );
    let row = stored_email(&store, &received).await?;
    assert_eq!((row.status, row.attempts), (NotificationStatus::Sent, 3));
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 2);
    Ok(())
}

async fn a_late_unclaimed_record_leaves_a_settled_email_settled(
    store: Store,
) -> anyhow::Result<()> {
    let n = order_email(EmailStage::OrderFailed, None, true)?;
    let (subject, stage, mid) = (n.subject_id(), n.stage(), n.message_id());
    let first = EmailAttempt {
        subject_id: &subject,
        stage,
        recipient: "alice@example.com",
        subject: "Hi",
        message_id: &mid,
        attempt: 1,
    };
    let notifications = store.notifications();
    // Another attempt claimed the row while this one was sending: this
    // one settles it as `settle` would, and is counted.
    notifications
        .claim(&subject, stage, "alice@example.com", "Hi", &mid, true)
        .await?;
    notifications
        .record_unclaimed(&[first], NotificationStatus::Sent, None)
        .await?;
    let row = notifications.get(&subject, stage).await?.context("row")?;
    assert_eq!((row.status, row.attempts), (NotificationStatus::Sent, 2));
    let sent_at = row.sent_at_ms;
    assert!(sent_at.is_some());
    // A failure recorded after that keeps its error but not its status.
    notifications
        .record_unclaimed(&[first], NotificationStatus::Pending, Some("timeout"))
        .await?;
    notifications
        .record_unclaimed(&[first], NotificationStatus::Failed, Some("refused"))
        .await?;
    let row = notifications.get(&subject, stage).await?.context("row")?;
    assert_eq!(
        (row.status, row.sent_at_ms),
        (NotificationStatus::Sent, sent_at)
    );
    assert_eq!(row.last_error.as_deref(), Some("timeout"));
    Ok(())
}

async fn a_shipping_request_is_created_once_per_order(store: Store) -> anyhow::Result<()> {
    let mut ids = Vec::new();
    for n in 0..3u128 {
        let request = ShipmentRequest {
            order_id: OrderId::from_uuid(uuid::Uuid::from_u128(100 + n)),
            customer_id: CustomerId::parse("alice")?,
            lines: vec![
                ShipmentLine {
                    sku: Sku::parse("MUG-1")?,
                    quantity: 2,
                },
                ShipmentLine {
                    sku: Sku::parse("TEE-1")?,
                    quantity: 1,
                },
            ],
            address: shipping_address(),
            warehouse: DEFAULT_WAREHOUSE.to_string(),
            customer_email: None,
            dispatch_alert_secs: None,
        };
        assert!(store.shipments().request(&request).await?);
        assert!(
            !store.shipments().request(&request).await?,
            "retried: no second"
        );
        let stored = store
            .shipments()
            .of(&request.order_id, DEFAULT_WAREHOUSE)
            .await?
            .context("shipment")?;
        assert_eq!(stored.request, request);
        assert_eq!(stored.status, ShipmentStatus::Requested);
        ids.push(request.order_id);
    }
    let (first, next) = store.shipments().list(2, None).await?;
    assert_eq!(first.len(), 2);
    let (rest, end) = store.shipments().list(2, next).await?;
    assert_eq!(rest.len(), 1);
    assert!(end.is_none());
    let mut seen: Vec<OrderId> = first
        .iter()
        .chain(&rest)
        .map(|s| s.request.order_id)
        .collect();
    seen.sort();
    assert_eq!(seen, ids);
    Ok(())
}
