//! The notifications service's delivery: one email's attempt
//! ([`NotificationActivities::deliver`] for the `SendEmail` activity of
//! older sagas; [`NotificationActivities::attempt`] for the outbox relay,
//! which records a round's sent emails together) and its records in the
//! `notifications` table (one row per (subject, stage)).
//!
//! Never twice, never lost: the row is `SENT` once the relay accepted the
//! message (an attempt that finds no row writes it then, with its outcome;
//! one that finds it `PENDING` claims it before sending), and a retried or
//! replayed step that finds it `SENT` sends nothing. Every send of the
//! same (subject, stage) carries the same `Message-ID`. SMTP outages are
//! retried with this worker's backoff until the retry horizon has passed;
//! the order saga never waits for any of it. See `docs/notifications.md`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ordersaga_domain::contracts::notification::{self as contract, EmailReceipt, SendEmailInput};
use ordersaga_domain::names::failure;
use ordersaga_domain::{EmailStage, Notification};
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use crate::activities::with_heartbeats;
use crate::mail::Mailer;
use ordersaga_store::{EmailAttempt, NotificationStatus, Store, StoreError};

/// How long and how often the notifications service retries delivery.
/// This is the service's own policy, so it is worker configuration, not
/// part of the order saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmailRetry {
    /// Wait before the second attempt; doubles per attempt.
    pub initial: Duration,
    /// Longest wait between attempts.
    pub max: Duration,
    /// Give up this long after the email was requested.
    pub horizon: Duration,
}

impl Default for EmailRetry {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            horizon: Duration::from_secs(24 * 3600),
        }
    }
}

impl EmailRetry {
    /// The wait after failed attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// The notifications service's activities.
pub struct NotificationActivities {
    store: Store,
    mailer: Arc<Mailer>,
    retry: EmailRetry,
}

impl NotificationActivities {
    /// Activities over this store and mailer, retrying as `retry` says.
    pub fn new(store: Store, mailer: Arc<Mailer>, retry: EmailRetry) -> Self {
        Self {
            store,
            mailer,
            retry,
        }
    }
}

fn undeliverable(message: String) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(message)
            .type_name(failure::EMAIL_UNDELIVERABLE.to_string())
            .non_retryable(true)
            .build(),
    )
}

/// An SMTP server's answer may quote the recipient ("550 <a@b> unknown");
/// the error is logged and stored, so the address is masked.
fn without_recipient(error: &str, to: &str) -> String {
    if to.is_empty() {
        return error.to_string();
    }
    error.replace(to, "<recipient>")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        // Some errors repeat their source in their own message.
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// How one delivery attempt of an email ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailOutcome {
    /// Delivered now, or found delivered by an earlier attempt.
    Sent(EmailReceipt),
    /// Not delivered; worth another attempt after `after`.
    Retry {
        /// Why it failed.
        why: String,
        /// This service's backoff for the attempt that failed.
        after: Duration,
    },
    /// Refused for good, or not delivered within the horizon.
    GiveUp(String),
}

/// How [`NotificationActivities::attempt`] ended.
#[derive(Debug)]
pub enum Attempted {
    /// Recorded, or nothing to record.
    Settled(EmailOutcome),
    /// Sent by an attempt that found no record, which is still to be
    /// written ([`NotificationActivities::record_sent`]).
    SentUnrecorded(SentUnrecorded),
}

/// An email sent by an attempt that found no record of it.
#[derive(Debug)]
pub struct SentUnrecorded {
    subject_id: String,
    stage: EmailStage,
    recipient: String,
    subject: String,
    message_id: String,
    attempt: u32,
}

impl SentUnrecorded {
    fn as_attempt(&self) -> EmailAttempt<'_> {
        EmailAttempt {
            subject_id: &self.subject_id,
            stage: self.stage,
            recipient: &self.recipient,
            subject: &self.subject,
            message_id: &self.message_id,
            attempt: self.attempt,
        }
    }

    /// What the attempt tells its caller once the record is written.
    fn receipt(&self) -> EmailReceipt {
        EmailReceipt {
            message_id: self.message_id.clone(),
            already_sent: false,
        }
    }

    /// Logs the send once it is recorded, in the caller's span (the
    /// relay's for this message, which names the order).
    pub(crate) fn log_sent(&self) {
        // No recipient: an email address is personal data, kept out of logs.
        tracing::info!(subject_id = %self.subject_id, stage = %self.stage, message_id = %self.message_id, "email sent");
    }
}

/// Which attempt of an email's delivery a call is, and who counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOf {
    /// The outbox message's claims, this one included. The outbox holds one
    /// message per email (its key is the email's (subject, stage)) and only
    /// its claims send it, so a first claim is the email's first attempt
    /// ever: it finds no record and reads none.
    OutboxClaim(u32),
    /// A `SendEmail` activity's attempts. A reset workflow starts again at
    /// 1, so every attempt reads the record first.
    Activity(u32),
}

impl AttemptOf {
    /// The attempt's number, 1-based.
    fn number(self) -> u32 {
        match self {
            Self::OutboxClaim(n) | Self::Activity(n) => n,
        }
    }

    /// Whether an earlier attempt may have sent or recorded the email.
    fn may_follow_another(self) -> bool {
        !matches!(self, Self::OutboxClaim(1))
    }
}

impl NotificationActivities {
    /// One delivery attempt (`of`: its number, and who counts them) of `notification`,
    /// requested at `requested_at_ms`: sends it unless an earlier attempt
    /// did and records the outcome (an attempt that finds the email's row
    /// claims it before sending; one that finds none writes it once,
    /// after). Errors are the store's (the attempt may be repeated).
    pub async fn deliver(
        &self,
        notification: &Notification,
        requested_at_ms: i64,
        of: AttemptOf,
    ) -> Result<EmailOutcome, StoreError> {
        match self.attempt(notification, requested_at_ms, of).await? {
            Attempted::Settled(outcome) => Ok(outcome),
            Attempted::SentUnrecorded(sent) => {
                self.record_sent(std::slice::from_ref(&sent)).await?;
                sent.log_sent();
                Ok(EmailOutcome::Sent(sent.receipt()))
            }
        }
    }

    /// [`Self::deliver`], except that an email sent by an attempt that
    /// found no record comes back unrecorded, for [`Self::record_sent`] to
    /// write with others: the outbox relay records a round's emails in one
    /// statement.
    pub async fn attempt(
        &self,
        notification: &Notification,
        requested_at_ms: i64,
        of: AttemptOf,
    ) -> Result<Attempted, StoreError> {
        let attempt = of.number();
        let (subject_id, stage) = (notification.subject_id(), notification.stage());
        let email = match self.mailer.render(notification) {
            Ok(email) => email,
            Err(e) => {
                tracing::error!(%subject_id, %stage, error = error_chain(&e), "email cannot be rendered");
                return Ok(Attempted::Settled(EmailOutcome::GiveUp(error_chain(&e))));
            }
        };
        let requested = std::time::UNIX_EPOCH
            + Duration::from_millis(u64::try_from(requested_at_ms).unwrap_or(0));
        let waited = SystemTime::now()
            .duration_since(requested)
            .unwrap_or_default();
        let too_late = waited > self.retry.horizon;
        let notifications = self.store.notifications();
        let tried = EmailAttempt {
            subject_id: &subject_id,
            stage,
            recipient: &email.to,
            subject: &email.subject,
            message_id: &email.message_id,
            attempt,
        };
        // An attempt that finds no row (the first, or one after an attempt
        // that died mid-send) sends and then writes the row once, with its
        // outcome: writing it `PENDING` first would cost a commit and close
        // no window (an attempt that dies after the send leaves no `SENT`
        // either way, and the email goes again). A first outbox claim
        // knows there is none without asking.
        let unrecorded = !too_late
            && (!of.may_follow_another() || notifications.get(&subject_id, stage).await?.is_none());
        let claimed = if unrecorded {
            false
        } else {
            // Within the horizon the claim also counts the attempt that
            // starts here: one statement instead of two.
            let record = notifications
                .claim(
                    &subject_id,
                    stage,
                    &email.to,
                    &email.subject,
                    &email.message_id,
                    !too_late,
                )
                .await?;
            match record.status {
                NotificationStatus::Sent => {
                    tracing::info!(%subject_id, %stage, "email already sent");
                    return Ok(Attempted::Settled(EmailOutcome::Sent(EmailReceipt {
                        message_id: record.message_id,
                        already_sent: true,
                    })));
                }
                NotificationStatus::Failed => {
                    return Ok(Attempted::Settled(EmailOutcome::GiveUp(
                        record
                            .last_error
                            .unwrap_or_else(|| "given up earlier".into()),
                    )));
                }
                NotificationStatus::Pending => {}
            }
            if too_late {
                let why = format!(
                    "not delivered within {}s; last error: {}",
                    self.retry.horizon.as_secs(),
                    record.last_error.as_deref().unwrap_or("none")
                );
                notifications
                    .settle(&subject_id, stage, NotificationStatus::Failed, Some(&why))
                    .await?;
                tracing::error!(%subject_id, %stage, "{why}");
                return Ok(Attempted::Settled(EmailOutcome::GiveUp(why)));
            }
            true
        };
        match self.mailer.send(&email).await {
            // The crash window: the server stored the message at the end
            // of DATA, before its 250; a worker dying from then until the
            // record is written sends the email again when the claim lapses
            // (same Message-ID). See docs/notifications.md.
            Ok(()) if !claimed => Ok(Attempted::SentUnrecorded(SentUnrecorded {
                subject_id,
                stage,
                recipient: email.to,
                subject: email.subject,
                message_id: email.message_id,
                attempt,
            })),
            Ok(()) => {
                notifications
                    .settle(&subject_id, stage, NotificationStatus::Sent, None)
                    .await?;
                // No recipient: an email address is personal data, kept out of logs.
                tracing::info!(%subject_id, %stage, message_id = %email.message_id, "email sent");
                Ok(Attempted::Settled(EmailOutcome::Sent(EmailReceipt {
                    message_id: email.message_id,
                    already_sent: false,
                })))
            }
            Err(e) if e.is_permanent() => {
                let why = without_recipient(&error_chain(&e), &email.to);
                self.record(tried, claimed, NotificationStatus::Failed, Some(&why))
                    .await?;
                tracing::error!(%subject_id, %stage, error = %why, "email refused for good");
                Ok(Attempted::Settled(EmailOutcome::GiveUp(why)))
            }
            Err(e) => {
                let why = without_recipient(&error_chain(&e), &email.to);
                self.record(tried, claimed, NotificationStatus::Pending, Some(&why))
                    .await?;
                let after = self.retry.delay(attempt);
                tracing::warn!(%subject_id, %stage, attempt, retry_in_ms = after.as_millis(), error = %why, "email not delivered, will retry");
                Ok(Attempted::Settled(EmailOutcome::Retry { why, after }))
            }
        }
    }

    /// Records what an attempt found out: a claimed row is settled (or
    /// keeps the error, `PENDING`); an unclaimed attempt writes the row.
    async fn record(
        &self,
        email: EmailAttempt<'_>,
        claimed: bool,
        status: NotificationStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let notifications = self.store.notifications();
        match (claimed, status) {
            (false, _) => {
                notifications
                    .record_unclaimed(&[email], status, error)
                    .await
            }
            (true, NotificationStatus::Pending) => {
                notifications
                    .note_error(email.subject_id, email.stage, error.unwrap_or_default())
                    .await
            }
            (true, _) => notifications
                .settle(email.subject_id, email.stage, status, error)
                .await
                .map(drop),
        }
    }

    /// Records emails that attempts sent after finding no record, all in
    /// one statement (each email once).
    pub async fn record_sent(&self, sent: &[SentUnrecorded]) -> Result<(), StoreError> {
        let attempts: Vec<EmailAttempt<'_>> = sent.iter().map(SentUnrecorded::as_attempt).collect();
        self.store
            .notifications()
            .record_unclaimed(&attempts, NotificationStatus::Sent, None)
            .await
    }
}

#[activities]
impl NotificationActivities {
    /// `SendEmail`: one email's delivery, for the per-email
    /// `NotificationWorkflow` of sagas started before the outbox. Transient delivery errors are
    /// retried with this worker's backoff until the horizon has passed.
    #[activity(definition = contract::SendEmail)]
    pub async fn send_email(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: SendEmailInput,
    ) -> Result<EmailReceipt, ActivityError> {
        let attempt = ctx.info().attempt;
        let delivered = with_heartbeats(
            &ctx,
            self.deliver(
                &input.notification,
                input.requested_at_ms,
                AttemptOf::Activity(attempt),
            ),
        )
        .await?;
        match delivered {
            EmailOutcome::Sent(receipt) => Ok(receipt),
            EmailOutcome::GiveUp(why) => Err(undeliverable(why)),
            EmailOutcome::Retry { why, after } => Err(ActivityError::application(
                ApplicationFailure::builder(why)
                    .type_name(failure::EMAIL_DELIVERY_FAILED.to_string())
                    .next_retry_delay(after)
                    .build(),
            )),
        }
    }
}
