//! The transactional outbox (`outbox` table): what the saga's steps tell
//! the notifications and shipping services.
//!
//! Steps insert their messages with [`enqueue`] inside their own write
//! transaction; each service's relay then [`Outbox::claim`]s a batch of its
//! topic under a lease, delivers it and settles every message
//! ([`Outbox::retry`], [`Outbox::fail`] each, [`Outbox::complete`] the
//! delivered ones together).
//!
//! A claim is named by its claimant, one token per relay attempt, and a
//! leased row is nobody else's until the lease runs out, not even a retry of
//! the same slot: the attempt it replaces may still be sending (a zombie).
//! Settling changes a row only while the settling claimant still holds it,
//! so a zombie whose lease ran out changes nothing. A row whose payload
//! does not decode is quarantined by the claim itself (`FAILED` with the
//! reason) instead of failing the batch, so one bad row cannot stop a topic.

use std::collections::HashSet;
use std::time::Duration;

use ordersaga_domain::{Outgoing, Topic};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Tx, corrupt, now_ms, parse_col};
use crate::page::Placeholders;
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
    /// The W3C `traceparent` of the step that wrote it, when traces were
    /// on: its delivery continues that trace.
    pub traceparent: Option<String>,
}

/// The current span's W3C `traceparent` through the global propagator the
/// process's telemetry installed; none with traces off (the default
/// propagator injects nothing).
fn current_traceparent() -> Option<String> {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let mut carrier = std::collections::HashMap::new();
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
    carrier.remove("traceparent")
}

/// A claimed row whose payload does not decode (written by a newer or
/// broken writer): [`Outbox::claim`] has already marked it `FAILED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Its idempotency key.
    pub key: String,
    /// Why it cannot be read (no payload content: it may hold personal data).
    pub reason: String,
}

/// What one [`Outbox::claim`] took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxClaim {
    /// The messages to deliver, oldest step first.
    pub entries: Vec<OutboxEntry>,
    /// Rows set aside as undeliverable by this claim.
    pub quarantined: Vec<Quarantined>,
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
/// there (a retried step): one statement for all of them.
pub(crate) async fn enqueue(tx: &mut Tx, messages: &[Outgoing], now: i64) -> Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let traceparent = current_traceparent();
    let mut p = Placeholders::default();
    let rows = messages
        .iter()
        .map(|_| {
            let (key, topic, payload, status, at, trace) =
                (p.next(), p.next(), p.next(), p.next(), p.next(), p.next());
            format!("({key}, {topic}, {payload}, {status}, {at}, {at}, {at}, {trace})")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO outbox (message_key, topic, payload, status, available_at, created_at, \
         updated_at, trace_context) VALUES {rows} ON CONFLICT (message_key) DO NOTHING"
    );
    let mut insert = sqlx::query(&sql);
    for message in messages {
        insert = insert
            .bind(message.key())
            .bind(message.topic().as_str())
            .bind(serde_json::to_string(message).map_err(corrupt)?)
            .bind(OutboxStatus::Pending.as_str())
            .bind(now)
            .bind(traceparent.clone());
    }
    insert.execute(&mut **tx).await?;
    Ok(())
}

/// A claimed row: its entry, or why its payload does not decode.
fn entry_from_row(row: &AnyRow) -> Result<std::result::Result<OutboxEntry, Quarantined>> {
    let key: String = row.try_get("message_key")?;
    let payload: String = row.try_get("payload")?;
    let message = match serde_json::from_str::<Outgoing>(&payload) {
        Ok(message) => message,
        // serde's message may quote the payload; where the error is does not.
        Err(e) => {
            let reason = format!(
                "undecodable payload ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            );
            return Ok(Err(Quarantined { key, reason }));
        }
    };
    Ok(Ok(OutboxEntry {
        key,
        message,
        attempts: row.try_get("attempts")?,
        created_at_ms: row.try_get("created_at")?,
        traceparent: row.try_get("trace_context")?,
    }))
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

    /// Claims up to `limit` deliverable messages of `topic` for
    /// `claimant` (unique per relay attempt) until `lease` has passed:
    /// pending rows that are due and not leased, oldest first. A row still
    /// leased is never taken, whoever holds it. Rows whose payload does not
    /// decode are marked `FAILED` here and reported, not delivered.
    pub async fn claim(
        self,
        topic: Topic,
        claimant: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<OutboxClaim> {
        let now = now_ms();
        // The guards are repeated outside the subquery: on PostgreSQL a
        // concurrent relay's claim makes them re-checked on the row's
        // newest version, so two relays never hold the same row.
        let claimable = "status = $4 AND available_at <= $3 AND lease_until <= $3";
        let rows = sqlx::query(&format!(
            "UPDATE outbox SET claimed_by = $1, lease_until = $2, attempts = attempts + 1, \
             updated_at = $3 WHERE message_key IN (SELECT message_key FROM outbox \
             WHERE topic = $5 AND {claimable} ORDER BY available_at, message_key LIMIT $6) \
             AND {claimable} \
             RETURNING message_key, payload, attempts, created_at, trace_context"
        ))
        .bind(claimant)
        .bind(now.saturating_add(millis(lease)))
        .bind(now)
        .bind(OutboxStatus::Pending.as_str())
        .bind(topic.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.store.writer)
        .await?;
        let mut claimed = OutboxClaim::default();
        for row in &rows {
            match entry_from_row(row)? {
                Ok(entry) => claimed.entries.push(entry),
                Err(bad) => {
                    self.settle(
                        &bad.key,
                        claimant,
                        OutboxStatus::Failed,
                        0,
                        Some(&bad.reason),
                    )
                    .await?;
                    claimed.quarantined.push(bad);
                }
            }
        }
        claimed.entries.sort_by_key(|e| e.created_at_ms);
        Ok(claimed)
    }

    /// `claimant` delivered these messages (or found them delivered): one
    /// statement for a relay round's batch. Returns the keys it completed;
    /// a key missing there was no longer `claimant`'s and did not change.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "outbox.complete", otel.kind = "client", messages = keys.len()))]
    pub async fn complete(self, keys: &[&str], claimant: &str) -> Result<HashSet<String>> {
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        let mut at = Placeholders::default();
        let (done, now, pending, by) = (at.next(), at.next(), at.next(), at.next());
        let sql = format!(
            "UPDATE outbox SET status = {done}, available_at = 0, claimed_by = NULL, \
             lease_until = 0, updated_at = {now} \
             WHERE status = {pending} AND claimed_by = {by} AND message_key IN ({}) \
             RETURNING message_key",
            at.list(keys.len())
        );
        let mut query = sqlx::query(&sql)
            .bind(OutboxStatus::Done.as_str())
            .bind(now_ms())
            .bind(OutboxStatus::Pending.as_str())
            .bind(claimant);
        for key in keys {
            query = query.bind(*key);
        }
        query
            .fetch_all(&self.store.writer)
            .await?
            .iter()
            .map(|row| Ok(row.try_get("message_key")?))
            .collect()
    }

    /// `claimant`'s delivery failed for now: try again from `after` on.
    /// `false`: the claim was no longer `claimant`'s and nothing changed.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "outbox.retry", otel.kind = "client"))]
    pub async fn retry(
        self,
        key: &str,
        claimant: &str,
        after: Duration,
        error: &str,
    ) -> Result<bool> {
        let at = now_ms().saturating_add(millis(after));
        self.settle(key, claimant, OutboxStatus::Pending, at, Some(error))
            .await
    }

    /// `claimant` gives up for good (refused, or not delivered within the
    /// horizon). `false`: the claim was no longer `claimant`'s and nothing
    /// changed.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "outbox.fail", otel.kind = "client"))]
    pub async fn fail(self, key: &str, claimant: &str, error: &str) -> Result<bool> {
        self.settle(key, claimant, OutboxStatus::Failed, 0, Some(error))
            .await
    }

    /// Releases the claim, only while `claimant` still holds it on a
    /// pending row: a claimant whose lease ran out (another may have taken
    /// the row meanwhile) must not undo or redo what that other one does.
    async fn settle(
        self,
        key: &str,
        claimant: &str,
        status: OutboxStatus,
        available_at: i64,
        error: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET status = $1, available_at = $2, last_error = COALESCE($3, \
             last_error), claimed_by = NULL, lease_until = 0, updated_at = $4 \
             WHERE message_key = $5 AND status = $6 AND claimed_by = $7",
        )
        .bind(status.as_str())
        .bind(available_at)
        .bind(error)
        .bind(now_ms())
        .bind(key)
        .bind(OutboxStatus::Pending.as_str())
        .bind(claimant)
        .execute(&self.store.writer)
        .await?;
        Ok(done.rows_affected() == 1)
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
