//! The transactional outbox (`outbox` table): what the saga's steps tell
//! the notifications and shipping services.
//!
//! Steps insert their messages with [`enqueue`] inside their own write
//! transaction; each service's relay then [`Outbox::claim`]s a batch of its
//! topic under a lease, delivers it and settles every message
//! ([`Outbox::complete`], [`Outbox::retry`], [`Outbox::fail`]). A relay slot that died mid-batch gets its rows
//! back at once when it restarts (the rows name their slot); rows of a slot
//! that never comes back return when the lease runs out.

use std::time::Duration;

use ordersaga_domain::{Outgoing, Topic};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Tx, corrupt, now_ms, parse_col};
use crate::{Result, Store};

ordersaga_domain::text_enum!(
    /// Where a message is.
    OutboxStatus {
        /// Waiting for (another) delivery attempt.
        Pending => "PENDING",
        /// Delivered.
        Done => "DONE",
        /// Given up: refused, or not delivered within the horizon.
        Failed => "FAILED",
    }
);

/// One claimed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Its idempotency key.
    pub key: String,
    /// The message.
    pub message: Outgoing,
    /// Delivery attempts, this one included.
    pub attempts: i64,
    /// When the step that caused it committed, Unix ms (retry horizons
    /// count from here).
    pub created_at_ms: i64,
}

/// Where a message is, as tests and operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxState {
    /// Where it is.
    pub status: OutboxStatus,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// The last delivery error, if any.
    pub last_error: Option<String>,
}

/// Inserts `messages` in the caller's transaction, skipping any already
/// there (a retried step).
pub(crate) async fn enqueue(tx: &mut Tx, messages: &[Outgoing], now: i64) -> Result<()> {
    for message in messages {
        let payload = serde_json::to_string(message).map_err(corrupt)?;
        sqlx::query(
            "INSERT INTO outbox (message_key, topic, payload, status, available_at, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $5, $5) ON CONFLICT (message_key) DO NOTHING",
        )
        .bind(message.key())
        .bind(message.topic().as_str())
        .bind(payload)
        .bind(OutboxStatus::Pending.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn entry_from_row(row: &AnyRow) -> Result<OutboxEntry> {
    let payload: String = row.try_get("payload")?;
    Ok(OutboxEntry {
        key: row.try_get("message_key")?,
        message: serde_json::from_str(&payload).map_err(corrupt)?,
        attempts: row.try_get("attempts")?,
        created_at_ms: row.try_get("created_at")?,
    })
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The outbox repository; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Outbox<'a> {
    store: &'a Store,
}

impl<'a> Outbox<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Claims up to `limit` deliverable messages of `topic` for `slot`
    /// until `lease` has passed: first the slot's own unsettled rows (its
    /// previous attempt died), then free ones, oldest first.
    pub async fn claim(
        self,
        topic: Topic,
        slot: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<OutboxEntry>> {
        let now = now_ms();
        // The guards are repeated outside the subquery: on PostgreSQL a
        // concurrent relay's claim makes them re-checked on the row's
        // newest version, so two relays never hold the same row.
        let claimable =
            "status = $4 AND available_at <= $3 AND (lease_until <= $3 OR claimed_by = $1)";
        let mut rows = sqlx::query(&format!(
            "UPDATE outbox SET claimed_by = $1, lease_until = $2, attempts = attempts + 1, \
             updated_at = $3 WHERE message_key IN (SELECT message_key FROM outbox \
             WHERE topic = $5 AND {claimable} ORDER BY available_at, message_key LIMIT $6) \
             AND {claimable} \
             RETURNING message_key, payload, attempts, created_at"
        ))
        .bind(slot)
        .bind(now.saturating_add(millis(lease)))
        .bind(now)
        .bind(OutboxStatus::Pending.as_str())
        .bind(topic.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(entry_from_row)
        .collect::<Result<Vec<_>>>()?;
        rows.sort_by_key(|e| e.created_at_ms);
        Ok(rows)
    }

    /// The message was delivered (or found delivered): done, whoever
    /// holds it now.
    pub async fn complete(self, key: &str) -> Result<()> {
        self.settle(key, None, OutboxStatus::Done, 0, None).await
    }

    /// `slot`'s delivery failed for now: try again from `after` on.
    pub async fn retry(self, key: &str, slot: &str, after: Duration, error: &str) -> Result<()> {
        let at = now_ms().saturating_add(millis(after));
        self.settle(key, Some(slot), OutboxStatus::Pending, at, Some(error))
            .await
    }

    /// `slot` gives up for good (refused, or not delivered within the
    /// horizon).
    pub async fn fail(self, key: &str, slot: &str, error: &str) -> Result<()> {
        self.settle(key, Some(slot), OutboxStatus::Failed, 0, Some(error))
            .await
    }

    /// Releases the claim. Only a pending row changes, and a failure only
    /// while `slot` still holds it: a slot whose lease ran out must not
    /// undo what another slot did meanwhile.
    async fn settle(
        self,
        key: &str,
        slot: Option<&str>,
        status: OutboxStatus,
        available_at: i64,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET status = $1, available_at = $2, last_error = COALESCE($3, \
             last_error), claimed_by = NULL, lease_until = 0, updated_at = $4 \
             WHERE message_key = $5 AND status = $6 AND ($7 IS NULL OR claimed_by = $7)",
        )
        .bind(status.as_str())
        .bind(available_at)
        .bind(error)
        .bind(now_ms())
        .bind(key)
        .bind(OutboxStatus::Pending.as_str())
        .bind(slot)
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// Messages of `topic` not delivered yet: the relay's backlog.
    pub async fn backlog(self, topic: Topic) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE topic = $1 AND status = $2")
            .bind(topic.as_str())
            .bind(OutboxStatus::Pending.as_str())
            .fetch_one(&self.store.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// One message's state, by key.
    pub async fn state(self, key: &str) -> Result<Option<OutboxState>> {
        sqlx::query("SELECT status, attempts, last_error FROM outbox WHERE message_key = $1")
            .bind(key)
            .fetch_optional(&self.store.pool)
            .await?
            .map(|row| {
                Ok(OutboxState {
                    status: parse_col(&row, "status")?,
                    attempts: row.try_get("attempts")?,
                    last_error: row.try_get("last_error")?,
                })
            })
            .transpose()
    }
}
