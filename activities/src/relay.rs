//! The outbox relay: the `RelayOutbox` activity that delivers one topic's
//! outbox messages on its service's task queue (emails on `notifications`,
//! shipping requests on `shipping`).
//!
//! The saga commits its messages with its own steps (see
//! [`ordersaga_store::OutboxEntry`]), so it starts nothing per order; each
//! service drains its topic in batches. A relay *slot* is one long-running,
//! heartbeating activity of the `OutboxRelayWorkflow`: it claims a batch
//! under a lease, delivers it concurrently, settles every message and polls
//! again, returning after [`RelaySettings::run_for`] so the workflow's
//! history stays short. Slots are spread over every worker that polls the
//! queue; a slot whose worker died is retried elsewhere after the heartbeat
//! timeout.
//!
//! Each attempt claims under a token of its own, so a retried slot never
//! takes back rows its previous attempt may still be sending: they return
//! when their lease runs out. A delivery is abandoned (and retried later)
//! once it has used the claim's [`RelaySettings::delivery_budget`], so it
//! never outlasts its lease; the SMTP timeouts are checked against that
//! budget when the settings load ([`RelaySettings::check_delivery`]). A row
//! whose payload cannot be read is quarantined by the claim and counted
//! (`ordersaga_outbox_quarantined`); the rest keeps flowing.
//!
//! The shipping relay stores each shipping request (the warehouse's list)
//! and starts nothing: a shipment's `ShippingWorkflow` starts with the
//! courier's dispatch. While it waits for the courier, the relay is what
//! notices a shipment left too long ([`RelaySettings::dispatch_alert`]):
//! every round it flags those requested longer ago, once each.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use ordersaga_domain::contracts::relay::{self as contract, RelayInput, RelayReport};
use ordersaga_domain::names::failure;
use ordersaga_domain::{Notification, Outgoing, ShipmentRequest, Topic};
use ordersaga_store::now_ms;
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use tokio::time::Instant;
use tracing::Instrument;

use crate::activities::with_heartbeats;
use crate::mail::Delivery;
use crate::metrics::BusinessMetrics;
use crate::notify::{
    AttemptOf, Attempted, EmailOutcome, EmailRetry, NotificationActivities, SentUnrecorded,
};
use ordersaga_store::{OutboxEntry, Store, StoreError};

/// How a relay slot works. Worker configuration, not part of any workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelaySettings {
    /// Messages claimed (and delivered concurrently) at once.
    pub batch: u32,
    /// Wait between polls of an empty outbox: the added latency of a message.
    pub poll: Duration,
    /// A slot returns after running this long (the workflow then starts
    /// the next round), so one activity never holds a worker forever.
    pub run_for: Duration,
    /// How long a claim lasts before another slot may take the message.
    pub lease: Duration,
    /// Backoff and horizon for shipping requests that fail to be stored
    /// (emails follow the notifications service's own [`EmailRetry`]).
    pub retry: EmailRetry,
    /// How long a shipment may wait for the courier before the shipping
    /// relay flags it (`ORDERSAGA_DISPATCH_ALERT_SECS`, default a day);
    /// `None`: never. Checked every quarter of it, at most every minute.
    pub dispatch_alert: Option<Duration>,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch: 32,
            poll: Duration::from_millis(100),
            run_for: Duration::from_secs(60),
            lease: Duration::from_secs(60),
            retry: EmailRetry {
                initial: Duration::from_millis(200),
                max: Duration::from_secs(60),
                horizon: Duration::from_secs(24 * 3600),
            },
            dispatch_alert: Some(Duration::from_secs(24 * 3600)),
        }
    }
}

/// SMTP timeouts that let one send outlast its claim's lease, so another
/// slot could claim and send the message while this one still does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "an SMTP connect and one command ({} ms, twice the {timeout_ms} ms timeout) must \
     fit in the relay's delivery budget ({budget_ms} ms, three quarters of the {lease_ms} \
     ms lease): lower the SMTP timeout or raise the relay lease",
    .timeout_ms.saturating_mul(2)
)]
pub struct LeaseTooShort {
    /// The SMTP timeout (connect, and each command).
    pub timeout_ms: u64,
    /// The relay's lease.
    pub lease_ms: u64,
    /// The part of the lease a delivery may use.
    pub budget_ms: u64,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RelaySettings {
    /// How long the deliveries of one claimed batch may run: three quarters
    /// of the lease, so the settling write lands while the claim is still
    /// ours. A delivery still running then is abandoned and retried.
    pub fn delivery_budget(&self) -> Duration {
        self.lease.saturating_sub(self.lease / 4)
    }

    /// How often a shipping relay slot looks for shipments waiting longer
    /// than `alert`: a quarter of it, between one poll and a minute, so a
    /// flag comes at most a quarter late.
    fn overdue_check(&self, alert: Duration) -> Duration {
        (alert / 4).clamp(self.poll, Duration::from_secs(60).max(self.poll))
    }

    /// Checks that an SMTP send can finish within the delivery budget: at
    /// least a connect and one command. (Longer sessions are cut off by the
    /// budget itself; this refuses settings under which none could finish.)
    pub fn check_delivery(&self, delivery: &Delivery) -> Result<(), LeaseTooShort> {
        let Delivery::Smtp(smtp) = delivery else {
            return Ok(());
        };
        if smtp.timeout.saturating_mul(2) < self.delivery_budget() {
            return Ok(());
        }
        Err(LeaseTooShort {
            timeout_ms: ms(smtp.timeout),
            lease_ms: ms(self.lease),
            budget_ms: ms(self.delivery_budget()),
        })
    }
}

/// How one delivery attempt of a message ended.
enum Outcome {
    Done,
    /// An email sent with its record still to write (with the round's).
    Sent(SentUnrecorded),
    Retry {
        why: String,
        after: Duration,
    },
    GiveUp(String),
}

impl From<Attempted> for Outcome {
    fn from(a: Attempted) -> Self {
        match a {
            Attempted::Settled(EmailOutcome::Sent(_)) => Self::Done,
            Attempted::SentUnrecorded(sent) => Self::Sent(sent),
            Attempted::Settled(EmailOutcome::Retry { why, after }) => Self::Retry { why, after },
            Attempted::Settled(EmailOutcome::GiveUp(why)) => Self::GiveUp(why),
        }
    }
}

/// How one message ended up after its attempt.
enum Settled {
    /// Delivered, to be completed with the round's other deliveries.
    Delivered,
    /// Sent, to be recorded and completed with the round's other emails.
    Sent(SentUnrecorded),
    Retry(String),
    Failed,
    /// The claim had passed to another relay attempt: this one's outcome
    /// was not recorded (that attempt settles the message).
    Lost,
}

/// The relay's activities: a worker registers one per service it runs,
/// with the delivery of that service's topics.
pub struct RelayActivities {
    store: Store,
    email: Option<Arc<NotificationActivities>>,
    shipping: bool,
    settings: RelaySettings,
    metrics: BusinessMetrics,
}

impl RelayActivities {
    /// A relay over `store` delivering nothing yet; add topics with
    /// [`Self::with_email`] and [`Self::with_shipping`].
    pub fn new(store: Store, settings: RelaySettings) -> Self {
        Self {
            store,
            email: None,
            shipping: false,
            settings,
            metrics: BusinessMetrics::noop(),
        }
    }

    /// Delivers the `email` topic through `notifications`.
    pub fn with_email(mut self, notifications: Arc<NotificationActivities>) -> Self {
        self.email = Some(notifications);
        self
    }

    /// Delivers the `shipment` topic into the warehouse's list, and flags
    /// shipments the courier leaves waiting.
    pub fn with_shipping(mut self) -> Self {
        self.shipping = true;
        self
    }

    /// Records delivery counters and the backlog on `metrics`.
    pub fn with_metrics(mut self, metrics: BusinessMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    fn serves(&self, topic: Topic) -> bool {
        match topic {
            Topic::Email => self.email.is_some(),
            Topic::Shipment => self.shipping,
        }
    }

    /// Delivers one claimed message, giving up on the attempt at `deadline`
    /// (the claim's delivery budget), and settles it as `claimant`, unless
    /// it was delivered: the round records its sent emails and completes
    /// those together.
    async fn deliver(
        &self,
        claimant: &str,
        entry: &OutboxEntry,
        deadline: Instant,
    ) -> Result<Settled, StoreError> {
        let outcome = match tokio::time::timeout_at(deadline, self.attempt(entry)).await {
            Ok(outcome) => outcome?,
            // Cut off mid-send: SMTP may already have taken the message
            // (the same window as a crash), so this is a retry, not a loss.
            Err(_) => Outcome::Retry {
                why: "delivery did not finish within the relay's lease budget".into(),
                after: self.settings.retry.delay(attempt_of(entry)),
            },
        };
        let outbox = self.store.outbox();
        let (kept, settled) = match outcome {
            // Completed with the rest of the round's deliveries, in one
            // statement ([`Self::complete`]).
            Outcome::Done => return Ok(Settled::Delivered),
            Outcome::Sent(sent) => return Ok(Settled::Sent(sent)),
            Outcome::Retry { why, after } => (
                outbox.retry(&entry.key, claimant, after, &why).await?,
                Settled::Retry(why),
            ),
            Outcome::GiveUp(why) => {
                tracing::error!(key = %entry.key, error = %why, "outbox message given up");
                (
                    outbox.fail(&entry.key, claimant, &why).await?,
                    Settled::Failed,
                )
            }
        };
        if kept {
            Ok(settled)
        } else {
            tracing::warn!(key = %entry.key, "claim lost before settling: another relay attempt holds the message");
            Ok(Settled::Lost)
        }
    }

    /// Marks a round's delivered messages done, all in one statement
    /// (also before another message's error fails the round: what was
    /// delivered is not delivered again); returns how many were still this
    /// attempt's to complete.
    async fn complete(&self, claimant: &str, keys: &[&str]) -> Result<u64, StoreError> {
        let completed = self.store.outbox().complete(keys, claimant).await?;
        for key in keys.iter().filter(|key| !completed.contains(**key)) {
            tracing::warn!(%key, "claim lost before settling: another relay attempt holds the message");
        }
        Ok(u64::try_from(completed.len()).unwrap_or(u64::MAX))
    }

    /// One delivery attempt of a message, not settled yet.
    async fn attempt(&self, entry: &OutboxEntry) -> Result<Outcome, StoreError> {
        Ok(match (&entry.message, &self.email) {
            (Outgoing::Email(n), Some(email)) => email
                .attempt(
                    n,
                    entry.created_at_ms,
                    AttemptOf::OutboxClaim(attempt_of(entry)),
                )
                .await?
                .into(),
            (Outgoing::Shipment(request), _) if self.shipping => self.ship(entry, request).await,
            _ => Outcome::GiveUp(format!("no delivery for {}", entry.message.topic())),
        })
    }

    /// Stores the shipping request: the warehouse's list shows it at once,
    /// and the courier's dispatch starts the shipment's workflow from it.
    /// Idempotent, so a retried message creates nothing twice.
    async fn ship(&self, entry: &OutboxEntry, request: &ShipmentRequest) -> Outcome {
        match self.store.shipments().request(request).await {
            Ok(created) => {
                tracing::info!(order_id = %request.order_id, warehouse = %request.warehouse, created, "shipping requested");
                Outcome::Done
            }
            Err(e) => self.shipment_retry(entry, &e.to_string()),
        }
    }

    /// The alert for shipments the courier has not picked up within
    /// `alert` of their request: each flagged on the shipment, counted and
    /// logged once, whichever slot or worker gets there first.
    async fn flag_overdue(&self, alert: Duration) -> Result<(), StoreError> {
        let cutoff = now_ms().saturating_sub(i64::try_from(alert.as_millis()).unwrap_or(i64::MAX));
        for (order_id, warehouse) in self.store.shipments().flag_waiting_since(cutoff).await? {
            self.metrics.shipment_overdue();
            tracing::warn!(%order_id, %warehouse, "shipment not dispatched in time");
        }
        Ok(())
    }

    fn shipment_retry(&self, entry: &OutboxEntry, why: &str) -> Outcome {
        let retry = self.settings.retry;
        let age = ordersaga_store::now_ms().saturating_sub(entry.created_at_ms);
        if u128::try_from(age).unwrap_or(0) > retry.horizon.as_millis() {
            return Outcome::GiveUp(format!("not stored within the horizon: {why}"));
        }
        Outcome::Retry {
            why: why.to_string(),
            after: retry.delay(attempt_of(entry)),
        }
    }
}

/// How often a busy slot counts its topic's backlog for the gauge.
const BACKLOG_EVERY: Duration = Duration::from_secs(1);

/// The message's delivery attempt, 1-based (this one included).
fn attempt_of(entry: &OutboxEntry) -> u32 {
    u32::try_from(entry.attempts).unwrap_or(u32::MAX)
}

#[activities]
impl RelayActivities {
    /// `RelayOutbox`: delivers `topic`'s messages until `run_for` has
    /// passed (or the worker shuts down). Fails, retryably, when every
    /// delivery of a batch failed, so an outage shows in the Temporal UI as
    /// the relay's last failure while the messages wait for their retry.
    #[activity(definition = contract::RelayOutbox)]
    pub async fn relay_outbox(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: RelayInput,
    ) -> Result<RelayReport, ActivityError> {
        if !self.serves(input.topic) {
            return Err(ActivityError::application(
                ApplicationFailure::builder(format!(
                    "this worker does not deliver {}",
                    input.topic
                ))
                .type_name(failure::RELAY_MISCONFIGURED.to_string())
                .non_retryable(true)
                .build(),
            ));
        }
        let slot = format!("{}#{}", input.topic, input.slot);
        // A claimant per attempt: a retry of this slot must not take back
        // rows the attempt it replaces may still be sending.
        let claimant = format!("{slot}/{}", uuid::Uuid::new_v4().simple());
        let started = Instant::now();
        let mut report = RelayReport::default();
        let overdue_alert = self
            .settings
            .dispatch_alert
            .filter(|_| input.topic == Topic::Shipment);
        let mut overdue_checked: Option<Instant> = None;
        let mut backlog_counted: Option<Instant> = None;
        while !ctx.is_cancelled() && started.elapsed() < self.settings.run_for {
            if let Some(alert) = overdue_alert
                && overdue_checked
                    .is_none_or(|at| at.elapsed() >= self.settings.overdue_check(alert))
            {
                self.flag_overdue(alert).await?;
                overdue_checked = Some(Instant::now());
            }
            // Taken before the claim, so the budget ends before the lease.
            let deadline = Instant::now() + self.settings.delivery_budget();
            let claimed = self
                .store
                .outbox()
                .claim(
                    input.topic,
                    &claimant,
                    self.settings.batch,
                    self.settings.lease,
                )
                .await?;
            for bad in &claimed.quarantined {
                tracing::error!(%slot, key = %bad.key, reason = %bad.reason, "outbox message quarantined");
            }
            let quarantined = u64::try_from(claimed.quarantined.len()).unwrap_or(u64::MAX);
            self.metrics.outbox_quarantined(input.topic, quarantined);
            report.failed += quarantined;
            // Quarantined rows count: a claim that filled up may have more.
            let full =
                claimed.entries.len() + claimed.quarantined.len() >= self.settings.batch as usize;
            let batch = claimed.entries;
            if batch.is_empty() {
                if quarantined > 0 {
                    continue;
                }
                self.metrics.outbox_backlog(input.topic, 0);
                // A heartbeat that cannot be encoded is not worth stopping for.
                let _ = ctx.record_heartbeat(report).await;
                tokio::select! {
                    () = ctx.cancelled() => break,
                    () = tokio::time::sleep(self.settings.poll) => continue,
                }
            }
            // Kept for the round: a recorded email's "email sent" line is
            // logged in its message's span.
            let spans: Vec<tracing::Span> = batch.iter().map(message_span).collect();
            let settled = with_heartbeats(
                &ctx,
                join_all(batch.iter().zip(&spans).map(|(entry, span)| {
                    self.deliver(&claimant, entry, deadline)
                        .instrument(span.clone())
                })),
            )
            .await;
            // The emails sent after finding no record are recorded in one
            // statement; completed only once recorded, they are sent again
            // (same Message-ID) if that fails, as after a crash.
            let (mut delivered_keys, mut sent, mut sent_entries) =
                (Vec::new(), Vec::new(), Vec::new());
            let (mut retried, mut failed) = (0, 0);
            let (mut last_error, mut store_error) = (None, None);
            for ((entry, span), s) in batch.iter().zip(&spans).zip(settled) {
                match s {
                    Ok(Settled::Delivered) => delivered_keys.push(entry.key.as_str()),
                    Ok(Settled::Sent(email)) => {
                        sent.push(email);
                        sent_entries.push((entry, span));
                    }
                    Ok(Settled::Lost) => {}
                    Ok(Settled::Retry(why)) => {
                        retried += 1;
                        last_error = Some(why);
                    }
                    Ok(Settled::Failed) => failed += 1,
                    Err(e) => {
                        store_error.get_or_insert(e);
                    }
                }
            }
            let recorded = match &self.email {
                Some(email) if !sent.is_empty() => email.record_sent(&sent).await,
                _ => Ok(()),
            };
            if recorded.is_ok() {
                for ((entry, span), email) in sent_entries.iter().zip(&sent) {
                    span.in_scope(|| email.log_sent());
                    delivered_keys.push(entry.key.as_str());
                }
            }
            let delivered = self.complete(&claimant, &delivered_keys).await?;
            recorded?;
            if let Some(e) = store_error {
                return Err(e.into());
            }
            self.metrics
                .outbox_settled(input.topic, delivered, retried, failed);
            report.delivered += delivered;
            report.retried += retried;
            report.failed += failed;
            // Counted at most once a second: under load a slot takes a
            // batch every poll, and the gauge needs no more.
            if backlog_counted.is_none_or(|at| at.elapsed() >= BACKLOG_EVERY)
                && let Ok(waiting) = self.store.outbox().backlog(input.topic).await
            {
                self.metrics.outbox_backlog(input.topic, waiting);
                backlog_counted = Some(Instant::now());
            }
            if let (0, Some(why)) = (delivered + failed, last_error) {
                return Err(ActivityError::application(
                    ApplicationFailure::builder(format!(
                        "{retried} {} message(s) not delivered: {why}",
                        input.topic
                    ))
                    .type_name(failure::RELAY_DELIVERY_FAILED.to_string())
                    .build(),
                ));
            }
            // A partial claim emptied the topic: wait as for an empty one,
            // so that under load a claim takes many messages, not one each.
            if !full {
                tokio::select! {
                    () = ctx.cancelled() => break,
                    () = tokio::time::sleep(self.settings.poll) => {}
                }
            }
        }
        tracing::debug!(%slot, ?report, "relay round done");
        Ok(report)
    }
}

/// The span of one message's delivery: one relay activity serves many
/// orders, so the activity's own span cannot name them; this one does,
/// for every line logged while delivering an order's email or shipment.
fn message_span(entry: &OutboxEntry) -> tracing::Span {
    let order_id = match &entry.message {
        Outgoing::Email(Notification::Order(email)) => Some(&email.order_id),
        Outgoing::Shipment(request) => Some(&request.order_id),
        Outgoing::Email(Notification::LowStock(_)) => None,
    };
    let span = tracing::info_span!(
        "outbox_message",
        key = %entry.key,
        order_id = tracing::field::Empty,
    );
    if let Some(order_id) = order_id {
        span.record("order_id", tracing::field::display(order_id));
    }
    // The delivery belongs to the trace of the step that wrote the message.
    ordersaga_runtime::telemetry::follow(&span, entry.traceparent.as_deref());
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A late courier is noticed at most a quarter of the alert late, but
    /// the relay neither scans on every poll nor waits over a minute.
    #[test]
    fn the_overdue_check_runs_every_quarter_of_the_alert_within_a_poll_and_a_minute() {
        let settings = RelaySettings::default();
        let check = |alert| settings.overdue_check(alert);
        assert_eq!(check(Duration::from_secs(1)), Duration::from_millis(250));
        assert_eq!(
            check(Duration::from_secs(24 * 3600)),
            Duration::from_secs(60)
        );
        assert_eq!(check(Duration::from_millis(200)), settings.poll);
        let slow = RelaySettings {
            poll: Duration::from_secs(120),
            ..settings
        };
        assert_eq!(slow.overdue_check(Duration::from_secs(3600)), slow.poll);
    }
}
