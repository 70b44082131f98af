//! What an email's delivery asks of the store, read from the store calls'
//! spans (`db`). A binary of its own: `tracing` caches process-wide
//! whether a call site is wanted when a thread first opens it, asking only
//! that thread's subscriber while a single scoped one is alive, so a test
//! thread without one would cache "never" for another's capture. Here
//! every thread that opens a store span captures it.

use std::sync::{Arc, Mutex};

use tracing::subscriber::DefaultGuard;

use ordersaga_activities::notify::AttemptOf::{self, Activity, OutboxClaim};
use ordersaga_activities::notify::{Attempted, EmailOutcome, EmailRetry, NotificationActivities};
use ordersaga_domain::EmailStage;
use ordersaga_store::{EmailAttempt, NotificationStatus, Store, StoreError};
use ordersaga_tests::fixtures::{mailbox_mailer, order_email, stored_email};

ordersaga_tests::both_backends!(
    a_first_outbox_claim_reads_no_record_where_any_other_attempt_does,
    a_relay_round_records_the_emails_it_sent_in_one_statement,
);

/// The `otel.name` of every store call's span (`db`) opened while it is
/// the thread's subscriber.
#[derive(Clone, Default)]
struct StoreCalls(Arc<Mutex<Vec<String>>>);

impl StoreCalls {
    fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StoreCalls {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Name(Option<String>);
        impl tracing::field::Visit for Name {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "otel.name" {
                    self.0 = Some(value.to_string());
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        if attrs.metadata().name() != "db" {
            return;
        }
        let mut name = Name(None);
        attrs.record(&mut name);
        if let (Some(name), Ok(mut calls)) = (name.0, self.0.lock()) {
            calls.push(name);
        }
    }
}

/// The notifications service over `store`, mailing into `dir`, and the
/// store calls it makes on this thread while the guard lives.
fn capturing(
    store: &Store,
    dir: &std::path::Path,
) -> anyhow::Result<(NotificationActivities, StoreCalls, DefaultGuard)> {
    use tracing_subscriber::layer::SubscriberExt;
    let up = NotificationActivities::new(
        store.clone(),
        mailbox_mailer(dir, None)?.into(),
        EmailRetry::default(),
    );
    let calls = StoreCalls::default();
    let guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(calls.clone()));
    Ok((up, calls, guard))
}

/// An outbox message is its email's only way out, so its first claim
/// sends and writes the record without reading it first (one statement
/// per email on the hot path, not two); a later claim, and any attempt of
/// a `SendEmail` activity (a reset workflow starts again at 1), reads it.
async fn a_first_outbox_claim_reads_no_record_where_any_other_attempt_does(
    store: Store,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (up, calls, _guard) = capturing(&store, dir.path())?;
    let now = ordersaga_store::now_ms();
    // Each attempt's outcome (whether it sent now) and its store calls.
    let attempt = |stage: EmailStage, of: AttemptOf| {
        let (up, calls) = (&up, &calls);
        async move {
            let sent_now = match up
                .deliver(&order_email(stage, None, false)?, now, of)
                .await?
            {
                EmailOutcome::Sent(receipt) => !receipt.already_sent,
                other => anyhow::bail!("not sent: {other:?}"),
            };
            anyhow::Ok((sent_now, calls.take()))
        }
    };
    let recorded = "notifications.record_unclaimed".to_string();
    let read = "notifications.get".to_string();
    assert_eq!(
        attempt(EmailStage::OrderReceived, OutboxClaim(1)).await?,
        (true, vec![recorded.clone()])
    );
    assert_eq!(
        attempt(EmailStage::OrderConfirmed, OutboxClaim(2)).await?,
        (true, vec![read.clone(), recorded])
    );
    // A reset `SendEmail` workflow's first attempt finds the email sent.
    let claimed = "notifications.claim".to_string();
    assert_eq!(
        attempt(EmailStage::OrderReceived, Activity(1)).await?,
        (false, vec![read, claimed])
    );
    let received = order_email(EmailStage::OrderReceived, None, false)?;
    let row = stored_email(&store, &received).await?;
    assert_eq!((row.status, row.attempts), (NotificationStatus::Sent, 1));
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 2);
    Ok(())
}

/// The relay's attempts leave the emails they sent after finding no
/// record unrecorded, and the round records them all in one statement:
/// each `SENT` with its attempt's number, and one that another attempt
/// claimed meanwhile counted as a second attempt and settled `SENT`.
async fn a_relay_round_records_the_emails_it_sent_in_one_statement(
    store: Store,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (up, calls, _guard) = capturing(&store, dir.path())?;
    let now = ordersaga_store::now_ms();
    let emails = [
        (order_email(EmailStage::OrderReceived, None, false)?, 1),
        (order_email(EmailStage::OrderConfirmed, None, false)?, 1),
        // A third claim whose earlier attempts died before writing.
        (order_email(EmailStage::OrderFailed, None, true)?, 3),
    ];
    let mut sent = Vec::new();
    for (email, claim) in &emails {
        match up.attempt(email, now, OutboxClaim(*claim)).await? {
            Attempted::SentUnrecorded(s) => sent.push(s),
            other => anyhow::bail!("not left to the round: {other:?}"),
        }
    }
    assert_eq!(
        calls.take(),
        ["notifications.get"],
        "only the third claim reads"
    );
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 3);
    // Another attempt claimed the confirmation while this one was sending.
    let confirmed = &emails[1].0;
    store
        .notifications()
        .claim(
            &confirmed.subject_id(),
            confirmed.stage(),
            "alice@example.com",
            "R",
            &confirmed.message_id(),
            true,
        )
        .await?;
    calls.take();
    // The same email twice is refused before anything is written.
    let received = &emails[0].0;
    let (subject_id, message_id) = (received.subject_id(), received.message_id());
    let once = EmailAttempt {
        subject_id: &subject_id,
        stage: received.stage(),
        recipient: "alice@example.com",
        subject: "R",
        message_id: &message_id,
        attempt: 1,
    };
    let err = store
        .notifications()
        .record_unclaimed(&[once, once], NotificationStatus::Sent, None)
        .await;
    assert!(matches!(err, Err(StoreError::EmailTwice { .. })), "{err:?}");
    let notifications = store.notifications();
    assert!(
        notifications
            .get(&subject_id, received.stage())
            .await?
            .is_none()
    );
    calls.take();
    up.record_sent(&sent).await?;
    assert_eq!(calls.take(), ["notifications.record_unclaimed"]);
    let mut rows = Vec::new();
    for (email, _) in &emails {
        let row = stored_email(&store, email).await?;
        rows.push((row.status, row.attempts, row.sent_at_ms.is_some()));
    }
    assert_eq!(
        rows,
        [
            (NotificationStatus::Sent, 1, true),
            (NotificationStatus::Sent, 2, true),
            (NotificationStatus::Sent, 3, true),
        ]
    );
    Ok(())
}
