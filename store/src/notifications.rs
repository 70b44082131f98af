//! The notifications table: one row per (subject, stage), written
//! `PENDING` before the first send and settled `SENT` or `FAILED` once.

use ordersaga_domain::EmailStage;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, now_ms};

/// Where an email is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationStatus {
    /// Recorded, not (known to be) delivered yet.
    Pending,
    /// Accepted by the relay (or written to the mailbox).
    Sent,
    /// Given up: refused for good, or the retry horizon passed.
    Failed,
}

impl NotificationStatus {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Sent => "SENT",
            Self::Failed => "FAILED",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "PENDING" => Ok(Self::Pending),
            "SENT" => Ok(Self::Sent),
            "FAILED" => Ok(Self::Failed),
            other => Err(StoreError::Corrupt(format!(
                "notification status {other:?}"
            ))),
        }
    }
}

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

fn record_from_row(row: &AnyRow) -> Result<NotificationRecord, StoreError> {
    Ok(NotificationRecord {
        subject_id: row.try_get("subject_id")?,
        stage: row
            .try_get::<String, _>("stage")?
            .parse()
            .map_err(StoreError::Corrupt)?,
        recipient: row.try_get("recipient")?,
        subject: row.try_get("subject")?,
        message_id: row.try_get("message_id")?,
        status: NotificationStatus::parse(&row.try_get::<String, _>("status")?)?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        sent_at_ms: row.try_get("sent_at")?,
    })
}

const NOTIFICATION_SELECT: &str = "SELECT subject_id, stage, recipient, subject, message_id, \
     status, attempts, last_error, sent_at FROM notifications";

impl Store {
    /// Records the email `PENDING` unless it is recorded already, and
    /// returns the record as it stands. This is the "written before
    /// sending" half of exactly-once.
    pub async fn claim_notification(
        &self,
        subject_id: &str,
        stage: EmailStage,
        recipient: &str,
        subject: &str,
        message_id: &str,
    ) -> Result<NotificationRecord, StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO notifications (subject_id, stage, recipient, subject, message_id, status, \
             attempts, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7) \
             ON CONFLICT (subject_id, stage) DO NOTHING",
        )
        .bind(subject_id)
        .bind(stage.as_str())
        .bind(recipient)
        .bind(subject)
        .bind(message_id)
        .bind(NotificationStatus::Pending.as_str())
        .bind(now)
        .execute(self.pool())
        .await?;
        self.notification(subject_id, stage).await?.ok_or_else(|| {
            StoreError::Corrupt(format!("notification {subject_id}/{stage} vanished"))
        })
    }

    /// Counts a send attempt that is starting.
    pub async fn start_notification_attempt(
        &self,
        subject_id: &str,
        stage: EmailStage,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE notifications SET attempts = attempts + 1, updated_at = $1 \
             WHERE subject_id = $2 AND stage = $3",
        )
        .bind(now_ms())
        .bind(subject_id)
        .bind(stage.as_str())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Keeps the error of a failed attempt that will be retried.
    pub async fn note_notification_error(
        &self,
        subject_id: &str,
        stage: EmailStage,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE notifications SET last_error = $1, updated_at = $2 \
             WHERE subject_id = $3 AND stage = $4",
        )
        .bind(error)
        .bind(now_ms())
        .bind(subject_id)
        .bind(stage.as_str())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// `PENDING` -> `SENT` or `FAILED`. Returns whether this call changed it.
    pub async fn settle_notification(
        &self,
        subject_id: &str,
        stage: EmailStage,
        status: NotificationStatus,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
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
        .execute(self.pool())
        .await?
        .rows_affected()
            == 1)
    }

    /// One email's record.
    pub async fn notification(
        &self,
        subject_id: &str,
        stage: EmailStage,
    ) -> Result<Option<NotificationRecord>, StoreError> {
        sqlx::query(&format!(
            "{NOTIFICATION_SELECT} WHERE subject_id = $1 AND stage = $2"
        ))
        .bind(subject_id)
        .bind(stage.as_str())
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(record_from_row)
        .transpose()
    }

    /// Every email recorded about a subject (an order), oldest first.
    pub async fn notifications_of(
        &self,
        subject_id: &str,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        sqlx::query(&format!(
            "{NOTIFICATION_SELECT} WHERE subject_id = $1 ORDER BY created_at, stage"
        ))
        .bind(subject_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(record_from_row)
        .collect()
    }
}
