//! The notifications repository: one row per email (subject, stage),
//! settled `SENT` or `FAILED` once. An attempt that finds no row writes
//! it after its send, with the outcome ([`Notifications::record_unclaimed`],
//! which writes a relay round's emails in one statement);
//! one that finds it `PENDING` claims it before sending and settles it
//! after.

use ordersaga_domain::EmailStage;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{now_ms, parse_col};
use crate::page::Placeholders;
use crate::{Result, Store, StoreError};

ordersaga_domain::text_enum!(
    /// Where an email is.
    NotificationStatus {
        /// Recorded, not (known to be) delivered yet.
        Pending => "PENDING",
        /// Accepted by the relay (or written to the mailbox).
        Sent => "SENT",
        /// Given up: refused for good, or the retry horizon passed.
        Failed => "FAILED",
    }
);

/// One email's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRecord {
    /// The order id (customer emails) or the alert id (merchant alerts).
    pub subject_id: String,
    /// The stage.
    pub stage: EmailStage,
    /// Recipient.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// The deterministic `Message-ID`.
    pub message_id: String,
    /// Where it is.
    pub status: NotificationStatus,
    /// Send attempts made so far.
    pub attempts: i64,
    /// The last delivery error, if any.
    pub last_error: Option<String>,
    /// When it was accepted, Unix ms.
    pub sent_at_ms: Option<i64>,
}

/// The email an attempt sent (or tried to), for
/// [`Notifications::record_unclaimed`].
#[derive(Debug, Clone, Copy)]
pub struct EmailAttempt<'a> {
    /// The order id (customer emails) or the alert id (merchant alerts).
    pub subject_id: &'a str,
    /// The stage.
    pub stage: EmailStage,
    /// Recipient.
    pub recipient: &'a str,
    /// Subject line.
    pub subject: &'a str,
    /// The deterministic `Message-ID`.
    pub message_id: &'a str,
    /// Which attempt this is, 1-based.
    pub attempt: u32,
}

fn record_from_row(row: &AnyRow) -> Result<NotificationRecord> {
    Ok(NotificationRecord {
        subject_id: row.try_get("subject_id")?,
        stage: parse_col(row, "stage")?,
        recipient: row.try_get("recipient")?,
        subject: row.try_get("subject")?,
        message_id: row.try_get("message_id")?,
        status: parse_col(row, "status")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        sent_at_ms: row.try_get("sent_at")?,
    })
}

const NOTIFICATION_SELECT: &str = "SELECT subject_id, stage, recipient, subject, message_id, \
     status, attempts, last_error, sent_at FROM notifications";

/// The notifications repository; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Notifications<'a> {
    store: &'a Store,
}

impl<'a> Notifications<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Records the email `PENDING` unless it is recorded already, and
    /// returns the record as it stands. This is the "written before
    /// sending" half of exactly-once. With `starts_attempt` it also counts
    /// the send attempt that is starting, unless the email is settled.
    /// One statement: the conflict's update (a no-op without an attempt
    /// to count) lets `RETURNING` give the stored row, where `DO NOTHING`
    /// would return none and need a second read.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "notifications.claim", otel.kind = "client"))]
    pub async fn claim(
        self,
        subject_id: &str,
        stage: EmailStage,
        recipient: &str,
        subject: &str,
        message_id: &str,
        starts_attempt: bool,
    ) -> Result<NotificationRecord> {
        let row = sqlx::query(
            "INSERT INTO notifications (subject_id, stage, recipient, subject, message_id, status, \
             attempts, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (subject_id, stage) DO UPDATE SET \
             attempts = notifications.attempts \
             + CASE WHEN notifications.status = $6 THEN $7 ELSE 0 END, \
             updated_at = CASE WHEN notifications.status = $6 AND $7 > 0 THEN $8 \
             ELSE notifications.updated_at END \
             RETURNING subject_id, stage, recipient, subject, message_id, status, attempts, \
             last_error, sent_at",
        )
        .bind(subject_id)
        .bind(stage.as_str())
        .bind(recipient)
        .bind(subject)
        .bind(message_id)
        .bind(NotificationStatus::Pending.as_str())
        .bind(i64::from(starts_attempt))
        .bind(now_ms())
        .fetch_one(&self.store.writer)
        .await?;
        record_from_row(&row)
    }

    /// The outcome of attempts that found no row, written after their
    /// sends: each row as [`Self::claim`] and then [`Self::settle`]
    /// (`SENT`, `FAILED`) or [`Self::note_error`] (`PENDING`, to be
    /// retried) would leave it, in one statement and one commit for all of
    /// `emails` (each email at most once: a row cannot change twice in one
    /// statement), with `attempts` the attempt's number (earlier ones died
    /// before writing). Where another attempt wrote a row meanwhile, this
    /// one is counted and the row changes as `settle` or `note_error` would
    /// change it: a settled email stays settled.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "notifications.record_unclaimed", otel.kind = "client", emails = emails.len()))]
    pub async fn record_unclaimed(
        self,
        emails: &[EmailAttempt<'_>],
        status: NotificationStatus,
        error: Option<&str>,
    ) -> Result<()> {
        if emails.is_empty() {
            return Ok(());
        }
        // Checked here: PostgreSQL refuses a row changed twice in one
        // statement, where SQLite would count the second as an attempt.
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = emails
            .iter()
            .find(|e| !seen.insert((e.subject_id, e.stage)))
        {
            return Err(StoreError::EmailTwice {
                subject_id: twice.subject_id.to_string(),
                stage: twice.stage,
            });
        }
        let now = now_ms();
        let sent_at = (status == NotificationStatus::Sent).then_some(now);
        let mut p = Placeholders::default();
        let (status_p, error_p, sent_at_p, now_p, pending_p) =
            (p.next(), p.next(), p.next(), p.next(), p.next());
        let rows = (0..emails.len())
            .map(|_| {
                let [subject_id, stage, recipient, subject, message_id, attempts] =
                    [(); 6].map(|()| p.next());
                format!(
                    "({subject_id}, {stage}, {recipient}, {subject}, {message_id}, {status_p}, \
                     {attempts}, {error_p}, {sent_at_p}, {now_p}, {now_p})"
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO notifications (subject_id, stage, recipient, subject, message_id, status, \
             attempts, last_error, sent_at, created_at, updated_at) VALUES {rows} \
             ON CONFLICT (subject_id, stage) DO UPDATE SET \
             attempts = notifications.attempts + 1, \
             status = CASE WHEN notifications.status = {pending_p} THEN excluded.status \
             ELSE notifications.status END, \
             sent_at = CASE WHEN notifications.status = {pending_p} THEN excluded.sent_at \
             ELSE notifications.sent_at END, \
             last_error = CASE WHEN notifications.status = {pending_p} \
             OR excluded.status = {pending_p} \
             THEN excluded.last_error ELSE notifications.last_error END, \
             updated_at = excluded.updated_at"
        );
        let mut query = sqlx::query(&sql)
            .bind(status.as_str())
            .bind(error)
            .bind(sent_at)
            .bind(now)
            .bind(NotificationStatus::Pending.as_str());
        for email in emails {
            query = query
                .bind(email.subject_id)
                .bind(email.stage.as_str())
                .bind(email.recipient)
                .bind(email.subject)
                .bind(email.message_id)
                .bind(i64::from(email.attempt.max(1)));
        }
        query.execute(&self.store.writer).await?;
        Ok(())
    }

    /// Keeps the error of a failed attempt that will be retried, whatever
    /// the status.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "notifications.note_error", otel.kind = "client"))]
    pub async fn note_error(self, subject_id: &str, stage: EmailStage, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE notifications SET last_error = $1, updated_at = $2 \
             WHERE subject_id = $3 AND stage = $4",
        )
        .bind(error)
        .bind(now_ms())
        .bind(subject_id)
        .bind(stage.as_str())
        .execute(&self.store.writer)
        .await?;
        Ok(())
    }

    /// `PENDING` -> `SENT` or `FAILED`. Returns whether this call changed it.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "notifications.settle", otel.kind = "client"))]
    pub async fn settle(
        self,
        subject_id: &str,
        stage: EmailStage,
        status: NotificationStatus,
        error: Option<&str>,
    ) -> Result<bool> {
        let now = now_ms();
        let sent_at = (status == NotificationStatus::Sent).then_some(now);
        Ok(sqlx::query(
            "UPDATE notifications SET status = $1, sent_at = $2, last_error = $3, updated_at = $4 \
             WHERE subject_id = $5 AND stage = $6 AND status = $7",
        )
        .bind(status.as_str())
        .bind(sent_at)
        .bind(error)
        .bind(now)
        .bind(subject_id)
        .bind(stage.as_str())
        .bind(NotificationStatus::Pending.as_str())
        .execute(&self.store.writer)
        .await?
        .rows_affected()
            == 1)
    }

    /// One email's record.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "notifications.get", otel.kind = "client"))]
    pub async fn get(
        self,
        subject_id: &str,
        stage: EmailStage,
    ) -> Result<Option<NotificationRecord>> {
        sqlx::query(&format!(
            "{NOTIFICATION_SELECT} WHERE subject_id = $1 AND stage = $2"
        ))
        .bind(subject_id)
        .bind(stage.as_str())
        .fetch_optional(&self.store.pool)
        .await?
        .as_ref()
        .map(record_from_row)
        .transpose()
    }

    /// Every email recorded about a subject (an order), oldest first.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "notifications.of_subject", otel.kind = "client"))]
    pub async fn of_subject(self, subject_id: &str) -> Result<Vec<NotificationRecord>> {
        sqlx::query(&format!(
            "{NOTIFICATION_SELECT} WHERE subject_id = $1 ORDER BY created_at, stage"
        ))
        .bind(subject_id)
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(record_from_row)
        .collect()
    }
}
