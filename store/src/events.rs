//! The event outbox (`event_outbox`): the shop's domain events waiting to
//! be published to NATS JetStream (docs/events.md).
//!
//! The repositories call [`order_event`] and [`catalog_event`] in the
//! transaction that makes an event true, right after recording it in the
//! order's or product's history, and only when the store was told to
//! publish ([`Store::with_events`]). The relay reads [`EventOutbox::pending`]
//! in `seq` (commit) order under a lease ([`EventOutbox::take_lease`]), and
//! marks what the stream acknowledged ([`EventOutbox::published`]).

use std::ops::RangeInclusive;

use ordersaga_domain::events::{DomainEvent, EventLine, OrderEventData};
use ordersaga_domain::{CatalogEvent, OrderEvent, OrderId, Sku};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;

use crate::db::{Tx, corrupt, money, now_ms, parse_col};
use crate::page::Placeholders;
use crate::{Backend, Result, Store};

/// One event waiting in (or read back from) the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Commit order.
    pub seq: i64,
    /// Stable id.
    pub event_id: String,
    /// CloudEvents `type`.
    pub event_type: String,
    /// CloudEvents `source`.
    pub source: String,
    /// CloudEvents `subject`.
    pub subject: String,
    /// Where it is published.
    pub nats_subject: String,
    /// The `data`, JSON.
    pub data: String,
    /// When it happened, Unix ms.
    pub occurred_at_ms: i64,
}

/// An event appended in a transaction, written by [`write_numbered`] when
/// the transaction commits.
pub(crate) struct PendingEvent {
    event: DomainEvent,
    /// The `data`, JSON.
    data: String,
    occurred_at: i64,
}

/// Queues `event` with `data` for the caller's transaction's commit.
fn append(tx: &mut Tx, event: DomainEvent, data: &impl Serialize, now: i64) -> Result<()> {
    tx.push_event(PendingEvent {
        event,
        data: serde_json::to_string(data).map_err(corrupt)?,
        occurred_at: now,
    });
    Ok(())
}

/// Numbers `events` and writes them, as a transaction's last statements
/// before its commit. The sequence row stays locked until the commit, so
/// `seq` order is commit order; taken last, the lock is held for these
/// few statements only, and while holding it a transaction waits for no
/// other row, so it cannot deadlock with one that holds product rows.
pub(crate) async fn write_numbered(tx: &mut Tx, events: Vec<PendingEvent>) -> Result<()> {
    let Ok(count) = i64::try_from(events.len()) else {
        return Err(corrupt("too many events in one transaction"));
    };
    if count == 0 {
        return Ok(());
    }
    let columns = "seq, event_id, event_type, source, subject, nats_subject, data, occurred_at";
    let bump = "UPDATE event_sequence SET last_seq = last_seq + $1 WHERE name = 'events' \
                RETURNING last_seq";
    match tx.backend() {
        // One round trip: the numbering and the rows in one statement (a
        // data-modifying CTE). A missing sequence row returns no row.
        Backend::Postgres => {
            let mut p = Placeholders::default();
            p.next(); // $1: the count
            let values = (1..=count)
                .map(|n| format!("({n}, {})", p.list(7)))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "WITH s AS ({bump}), \
                 v (n, event_id, event_type, source, subject, nats_subject, data, occurred_at) \
                 AS (VALUES {values}), \
                 i AS (INSERT INTO event_outbox ({columns}) \
                 SELECT s.last_seq - $1 + v.n, v.event_id, v.event_type, v.source, v.subject, \
                 v.nats_subject, v.data, v.occurred_at FROM s CROSS JOIN v \
                 ON CONFLICT (event_id) DO NOTHING) \
                 SELECT last_seq FROM s"
            );
            let mut numbered = sqlx::query(&sql).bind(count);
            for e in events {
                numbered = bind_event(numbered, e);
            }
            numbered.fetch_one(&mut **tx).await?;
        }
        // In-process, and without data-modifying CTEs: the number, then
        // the rows in one insert.
        Backend::Sqlite => {
            let last: i64 = sqlx::query(bump)
                .bind(count)
                .fetch_one(&mut **tx)
                .await?
                .try_get("last_seq")?;
            // The seqs are bound, not written in: the statement's text
            // depends on the count only, so it stays prepared.
            let values = Placeholders::default().rows(events.len(), 8);
            let sql = format!(
                "INSERT INTO event_outbox ({columns}) VALUES {values} \
                 ON CONFLICT (event_id) DO NOTHING"
            );
            let mut insert = sqlx::query(&sql);
            for (seq, e) in (last - count + 1..).zip(events) {
                insert = bind_event(insert.bind(seq), e);
            }
            insert.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// Binds an event's columns after its seq.
fn bind_event<'q>(
    query: Query<'q, sqlx::Any, AnyArguments<'q>>,
    e: PendingEvent,
) -> Query<'q, sqlx::Any, AnyArguments<'q>> {
    query
        .bind(e.event.id.to_string())
        .bind(e.event.event_type)
        .bind(e.event.source)
        .bind(e.event.subject)
        .bind(e.event.nats_subject)
        .bind(e.data)
        .bind(e.occurred_at)
}

/// The columns an order's event is built from, read from
/// [`ORDER_EVENT_FROM`]: a row per line, the order's columns repeated on
/// each; `sequence` counts the order's history rows.
pub(crate) const ORDER_EVENT_COLUMNS: &str = "o.customer_id, o.transaction_id, o.status, o.total_minor, o.currency, \
     o.failure_code, p.status AS payment_status, \
     (SELECT COUNT(*) FROM order_events e WHERE e.order_id = o.order_id) AS sequence, \
     l.sku, l.quantity, l.unit_price_minor";

/// Where [`ORDER_EVENT_COLUMNS`] come from; the caller adds the order's
/// `WHERE` and `ORDER BY l.line_no`.
pub(crate) const ORDER_EVENT_FROM: &str = "orders o LEFT JOIN payments p ON p.order_id = o.order_id \
     LEFT JOIN order_lines l ON l.order_id = o.order_id";

/// Writes the order's `event` (just recorded in its history) with the
/// order as it now stands, read in the caller's transaction. `detail` is
/// the history's detail: published as `reason` only where it is the shop's
/// or gateway's words.
pub(crate) async fn order_event(
    tx: &mut Tx,
    order_id: &str,
    event: (OrderEvent, Option<&str>),
    detail: Option<&str>,
    now: i64,
) -> Result<()> {
    let rows = sqlx::query(&format!(
        "SELECT {ORDER_EVENT_COLUMNS} FROM {ORDER_EVENT_FROM} \
         WHERE o.order_id = $1 ORDER BY l.line_no"
    ))
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?;
    order_event_of(tx, order_id, &rows, 0, event, detail, now)
}

/// Writes the order's `event` from `rows` ([`ORDER_EVENT_COLUMNS`], read
/// in the caller's transaction), whose `sequence` misses `unseen` history
/// rows (written by the same statement, so not in its snapshot).
pub(crate) fn order_event_of(
    tx: &mut Tx,
    order_id: &str,
    rows: &[AnyRow],
    unseen: i64,
    (event, warehouse): (OrderEvent, Option<&str>),
    detail: Option<&str>,
    now: i64,
) -> Result<()> {
    let id: OrderId = order_id.parse().map_err(corrupt)?;
    let Some(row) = rows.first() else {
        return Err(sqlx::Error::RowNotFound.into());
    };
    let mut lines = Vec::with_capacity(rows.len());
    for l in rows {
        if l.try_get::<Option<String>, _>("sku")?.is_some() {
            lines.push(EventLine {
                sku: parse_col(l, "sku")?,
                quantity: l.try_get("quantity")?,
                unit_price_minor: l.try_get("unit_price_minor")?,
            });
        }
    }
    let failure_code: Option<String> = row.try_get("failure_code")?;
    let payment_status: Option<String> = row.try_get("payment_status")?;
    let cancelled = failure_code.as_deref() == Some("CANCELLED");
    // A cancellation's reason, an operator's note and a void's reason may
    // hold what a person typed; those stay in the shop database.
    let reason = match event {
        OrderEvent::InventoryProcessFailed | OrderEvent::PaymentRefundFailed => detail,
        OrderEvent::PaymentProcessFailed if payment_status.as_deref() == Some("DECLINED") => detail,
        OrderEvent::OrderFailed if !cancelled => detail,
        _ => None,
    };
    let is_payment = matches!(
        event,
        OrderEvent::PaymentProcessed
            | OrderEvent::PaymentProcessFailed
            | OrderEvent::PaymentRefunded
            | OrderEvent::PaymentRefundFailed
    );
    let data = OrderEventData {
        order_id: id,
        customer_id: parse_col(row, "customer_id")?,
        transaction_id: parse_col(row, "transaction_id")?,
        sequence: row.try_get::<i64, _>("sequence")? + unseen,
        total: money(row, "total_minor")?,
        lines,
        status: row.try_get("status")?,
        payment_status: payment_status.filter(|_| is_payment),
        failure_code: failure_code.filter(|_| event == OrderEvent::OrderFailed),
        reason: reason.map(str::to_string),
        warehouse: warehouse.map(str::to_string),
    };
    let domain_event = match warehouse {
        Some(w) => DomainEvent::order_shipment(&id, event, w),
        None => DomainEvent::order(&id, event),
    };
    append(tx, domain_event, &data, now)
}

/// Writes a catalog event of `sku` (`key`: its unique key in the product's
/// history) in the caller's transaction.
pub(crate) fn catalog_event(
    tx: &mut Tx,
    sku: &Sku,
    event: CatalogEvent,
    key: &str,
    data: &ordersaga_domain::events::CatalogEventData,
    now: i64,
) -> Result<()> {
    append(tx, DomainEvent::catalog(sku, event, key), data, now)
}

/// The event outbox repository; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct EventOutbox<'a> {
    store: &'a Store,
}

impl<'a> EventOutbox<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Takes or renews the relay's lease for `holder` until `until_ms`,
    /// unless another holder's lease is still running. Returns whether
    /// `holder` holds it now.
    pub async fn take_lease(self, holder: &str, until_ms: i64) -> Result<bool> {
        let taken = sqlx::query(
            "UPDATE event_relay_lease SET holder = $1, lease_until = $2 \
             WHERE name = 'relay' AND (holder = $1 OR holder IS NULL OR lease_until < $3)",
        )
        .bind(holder)
        .bind(until_ms)
        .bind(now_ms())
        .execute(&self.store.writer)
        .await?
        .rows_affected()
            == 1;
        Ok(taken)
    }

    /// Lets the lease go (a relay shutting down), if `holder` has it.
    pub async fn release_lease(self, holder: &str) -> Result<()> {
        sqlx::query(
            "UPDATE event_relay_lease SET holder = NULL, lease_until = 0 \
             WHERE name = 'relay' AND holder = $1",
        )
        .bind(holder)
        .execute(&self.store.writer)
        .await?;
        Ok(())
    }

    /// Up to `limit` unpublished events, oldest commit first.
    pub async fn pending(self, limit: u32) -> Result<Vec<StoredEvent>> {
        sqlx::query(
            "SELECT seq, event_id, event_type, source, subject, nats_subject, data, occurred_at \
             FROM event_outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(StoredEvent {
                seq: r.try_get("seq")?,
                event_id: r.try_get("event_id")?,
                event_type: r.try_get("event_type")?,
                source: r.try_get("source")?,
                subject: r.try_get("subject")?,
                nats_subject: r.try_get("nats_subject")?,
                data: r.try_get("data")?,
                occurred_at_ms: r.try_get("occurred_at")?,
            })
        })
        .collect()
    }

    /// The stream acknowledged the events with these seqs, a prefix of
    /// one [`Self::pending`] batch: marks them published, in one statement
    /// whatever their number. Every unpublished event in the range is in
    /// that batch: an event takes its seq at its commit, under the
    /// sequence row's lock, so none can become visible later inside a
    /// range already read.
    pub async fn published(self, seqs: RangeInclusive<i64>) -> Result<()> {
        sqlx::query(
            "UPDATE event_outbox SET published_at = $1 \
             WHERE seq >= $2 AND seq <= $3 AND published_at IS NULL",
        )
        .bind(now_ms())
        .bind(*seqs.start())
        .bind(*seqs.end())
        .execute(&self.store.writer)
        .await?;
        Ok(())
    }

    /// Deletes events published before `before_ms` (the stream keeps them).
    pub async fn prune(self, before_ms: i64) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM event_outbox WHERE published_at IS NOT NULL AND published_at < $1",
        )
        .bind(before_ms)
        .execute(&self.store.writer)
        .await?
        .rows_affected())
    }

    /// Events not published yet: the relay's backlog.
    pub async fn backlog(self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM event_outbox WHERE published_at IS NULL")
            .fetch_one(&self.store.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Every event row, published or not (tests and operators).
    pub async fn count(self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM event_outbox")
            .fetch_one(&self.store.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}
