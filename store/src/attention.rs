//! The attention repository: compensations the saga parked because the
//! other side refused them for good, one row per order and compensation,
//! `OPEN` until an operator's retry succeeds (`RESOLVED`) or an operator
//! closes them with a reason (`CLOSED`). Parking a refused refund also
//! moves the payment to `REFUND_FAILED` in the same transaction.

use ordersaga_domain::{
    AttentionStatus, Compensation, OperatorNote, OrderEvent, OrderId, PaymentStatus,
};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Tx, change_status, now_ms, parse_col};
use crate::findings::OPEN_FINDING_ORDERS;
use crate::orders::insert_event;
use crate::{Result, Store};

/// One parked compensation of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttentionRecord {
    /// The compensation.
    pub compensation: Compensation,
    /// Where it stands.
    pub status: AttentionStatus,
    /// Why it was parked: the last refusal.
    pub reason: String,
    /// Parked at, Unix ms.
    pub parked_at_ms: i64,
    /// Resolved or closed at, Unix ms.
    pub resolved_at_ms: Option<i64>,
    /// Who closed it, and why.
    pub closed: Option<OperatorNote>,
}

/// The attention repository; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Attention<'a> {
    store: &'a Store,
}

impl<'a> Attention<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Parks `compensation` of the order with `reason` (the latest refusal
    /// wins on a repeat). A refused refund moves the payment to
    /// `REFUND_FAILED` with the reason, once (`PaymentRefundFailed`).
    /// Returns whether this call opened it (it was not open before).
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "attention.park", otel.kind = "client"))]
    pub async fn park(
        self,
        order_id: &OrderId,
        compensation: Compensation,
        reason: &str,
    ) -> Result<bool> {
        let now = now_ms();
        let id = order_id.to_string();
        let mut tx = self.store.begin_write().await?;
        let before: Option<AttentionStatus> = sqlx::query(
            "SELECT status FROM compensation_attention WHERE order_id = $1 AND compensation = $2",
        )
        .bind(&id)
        .bind(compensation.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| parse_col(&r, "status"))
        .transpose()?;
        sqlx::query(
            "INSERT INTO compensation_attention (order_id, compensation, status, reason, parked_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (order_id, compensation) DO UPDATE SET status = excluded.status, \
             reason = excluded.reason, resolved_at = NULL, closed_by = NULL, close_reason = NULL",
        )
        .bind(&id)
        .bind(compensation.as_str())
        .bind(AttentionStatus::Open.as_str())
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if compensation == Compensation::RefundPayment {
            let columns = [("decline_reason", Some(reason))];
            let to = PaymentStatus::RefundFailed;
            if change_status(&mut tx, "payments", &id, to, &columns, now).await? {
                insert_event(
                    &mut tx,
                    self.store.events,
                    &id,
                    OrderEvent::PaymentRefundFailed,
                    Some(reason),
                    now,
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(before != Some(AttentionStatus::Open))
    }

    /// The operator's retry of `compensation` succeeded: it is resolved.
    /// (The compensation's own step recorded its effect, e.g. the refund.)
    /// Returns whether this call resolved it.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "attention.resolve", otel.kind = "client"))]
    pub async fn resolve(self, order_id: &OrderId, compensation: Compensation) -> Result<bool> {
        let mut tx = self.store.begin_write().await?;
        let resolved = settle_open(
            &mut tx,
            order_id,
            Some(compensation),
            AttentionStatus::Resolved,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(resolved > 0)
    }

    /// An operator closes every open compensation of the order with `note`
    /// (`AttentionClosed`, once). Returns how many this call closed.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "attention.close", otel.kind = "client"))]
    pub async fn close(self, order_id: &OrderId, note: &OperatorNote) -> Result<u64> {
        let now = now_ms();
        let mut tx = self.store.begin_write().await?;
        let closed =
            settle_open(&mut tx, order_id, None, AttentionStatus::Closed, Some(note)).await?;
        if closed > 0 {
            let detail = format!("closed {note}");
            let id = order_id.to_string();
            insert_event(
                &mut tx,
                self.store.events,
                &id,
                OrderEvent::AttentionClosed,
                Some(&detail),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(closed)
    }

    /// Every parked compensation of the order, in any status.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "attention.of_order", otel.kind = "client"))]
    pub async fn of_order(self, order_id: &OrderId) -> Result<Vec<AttentionRecord>> {
        sqlx::query(
            "SELECT compensation, status, reason, parked_at, resolved_at, closed_by, close_reason \
             FROM compensation_attention WHERE order_id = $1 ORDER BY parked_at, compensation",
        )
        .bind(order_id.to_string())
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(record_from_row)
        .collect()
    }

    /// How many orders need an operator: an open compensation or an open
    /// reconciler finding (the needs-attention gauge).
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "attention.orders_open", otel.kind = "client"))]
    pub async fn orders_open(self) -> Result<i64> {
        let row = sqlx::query(&format!(
            "SELECT COUNT(DISTINCT order_id) AS n FROM (SELECT order_id FROM \
             compensation_attention WHERE status = $1 UNION {OPEN_FINDING_ORDERS}) AS attention"
        ))
        .bind(AttentionStatus::Open.as_str())
        .fetch_one(&self.store.pool)
        .await?;
        Ok(row.try_get("n")?)
    }
}

/// Moves the order's open rows (or its one of `compensation`) to `to`,
/// with who closed them and why. Returns how many moved.
async fn settle_open(
    tx: &mut Tx,
    order_id: &OrderId,
    compensation: Option<Compensation>,
    to: AttentionStatus,
    note: Option<&OperatorNote>,
) -> Result<u64> {
    let mut sql = "UPDATE compensation_attention SET status = $1, resolved_at = $2, \
                   closed_by = $3, close_reason = $4 WHERE order_id = $5 AND status = $6"
        .to_string();
    if compensation.is_some() {
        sql += " AND compensation = $7";
    }
    let mut update = sqlx::query(&sql)
        .bind(to.as_str())
        .bind(now_ms())
        .bind(note.map(|n| n.operator.clone()))
        .bind(note.map(|n| n.reason.clone()))
        .bind(order_id.to_string())
        .bind(AttentionStatus::Open.as_str());
    if let Some(c) = compensation {
        update = update.bind(c.as_str());
    }
    Ok(update.execute(&mut **tx).await?.rows_affected())
}

fn record_from_row(row: &AnyRow) -> Result<AttentionRecord> {
    let closed_by: Option<String> = row.try_get("closed_by")?;
    let close_reason: Option<String> = row.try_get("close_reason")?;
    Ok(AttentionRecord {
        compensation: parse_col(row, "compensation")?,
        status: parse_col(row, "status")?,
        reason: row.try_get("reason")?,
        parked_at_ms: row.try_get("parked_at")?,
        resolved_at_ms: row.try_get("resolved_at")?,
        closed: closed_by.map(|operator| OperatorNote {
            operator,
            reason: close_reason.unwrap_or_default(),
        }),
    })
}
