//! The reconciler's repository: the queries that look for inconsistencies
//! across orders, and the findings it keeps for operators (`OPEN` until a
//! later run no longer sees them). Orders with an open finding are in the
//! needs-attention list.

use ordersaga_domain::{Finding, FindingKind, OrderId, OrderStatus, PaymentStatus};
use sqlx::Row;

use crate::db::{now_ms, parse_col};
use crate::outbox::OutboxStatus;
use crate::{Result, Store};

const OPEN: &str = "OPEN";
const RESOLVED: &str = "RESOLVED";

/// The orders with an open finding, as a subquery: with the parked
/// compensations, the needs-attention list.
pub(crate) const OPEN_FINDING_ORDERS: &str =
    "SELECT order_id FROM reconciler_findings WHERE status = 'OPEN' AND order_id IS NOT NULL";

/// An order's first open finding (`KIND: detail`), as a correlated
/// subquery on `orders`.
pub(crate) const FIRST_OPEN_FINDING: &str = "SELECT MIN(f.kind || ': ' || f.detail) \
     FROM reconciler_findings f WHERE f.order_id = orders.order_id AND f.status = 'OPEN'";

/// An outbox message claimed by a relay whose lease ran out long ago.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckMessage {
    /// Its key.
    pub key: String,
    /// The order it is about, when its payload names one.
    pub order_id: Option<OrderId>,
    /// The slot that claimed it.
    pub claimed_by: String,
    /// When its lease ran out, Unix ms.
    pub lease_until_ms: i64,
}

/// A stored finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingRecord {
    /// What was found.
    pub finding: Finding,
    /// Whether it is still open.
    pub open: bool,
    /// When a run first saw it, Unix ms.
    pub first_seen_at_ms: i64,
    /// When a run last saw it, Unix ms.
    pub last_seen_at_ms: i64,
}

/// The reconciler's repository; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Findings<'a> {
    store: &'a Store,
}

impl<'a> Findings<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Orders still `PENDING` that were placed before `placed_before_ms`,
    /// oldest first.
    pub async fn pending_orders(self, placed_before_ms: i64, limit: u32) -> Result<Vec<OrderId>> {
        sqlx::query(
            "SELECT order_id FROM orders WHERE status = $1 AND created_at < $2 \
             ORDER BY created_at, order_id LIMIT $3",
        )
        .bind(OrderStatus::Pending.as_str())
        .bind(placed_before_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(|r| parse_col(r, "order_id"))
        .collect()
    }

    /// `FAILED` orders whose payment is `CAPTURED`: money kept for a failed
    /// order, unless a compensation is still on its way.
    pub async fn failed_with_capture(self, limit: u32) -> Result<Vec<OrderId>> {
        self.failed_with_payment(PaymentStatus::Captured, limit, false)
            .await
    }

    /// `FAILED` orders whose checkout payment is still `PENDING` in the
    /// shop's books (neither captured nor voided).
    pub async fn failed_with_open_checkout(self, limit: u32) -> Result<Vec<OrderId>> {
        self.failed_with_payment(PaymentStatus::Pending, limit, true)
            .await
    }

    async fn failed_with_payment(
        self,
        payment: PaymentStatus,
        limit: u32,
        checkout_only: bool,
    ) -> Result<Vec<OrderId>> {
        let checkout = if checkout_only {
            " AND p.gateway_order_id IS NOT NULL"
        } else {
            ""
        };
        sqlx::query(&format!(
            "SELECT o.order_id FROM orders o JOIN payments p ON p.order_id = o.order_id \
             WHERE o.status = $1 AND p.status = $2{checkout} \
             ORDER BY o.created_at, o.order_id LIMIT $3"
        ))
        .bind(OrderStatus::Failed.as_str())
        .bind(payment.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(|r| parse_col(r, "order_id"))
        .collect()
    }

    /// Pending outbox messages still claimed by a relay whose lease ran out
    /// before `lease_ended_before_ms`: no relay took them back.
    pub async fn stuck_messages(
        self,
        lease_ended_before_ms: i64,
        limit: u32,
    ) -> Result<Vec<StuckMessage>> {
        sqlx::query(
            "SELECT message_key, payload, claimed_by, lease_until FROM outbox \
             WHERE status = $1 AND claimed_by IS NOT NULL AND lease_until < $2 \
             ORDER BY lease_until, message_key LIMIT $3",
        )
        .bind(OutboxStatus::Pending.as_str())
        .bind(lease_ended_before_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(|r| {
            let payload: String = r.try_get("payload")?;
            // An undecodable payload is still stuck; it just names no order.
            let order_id = serde_json::from_str::<ordersaga_domain::Outgoing>(&payload)
                .ok()
                .and_then(|m| m.order_id());
            Ok(StuckMessage {
                key: r.try_get("message_key")?,
                order_id,
                claimed_by: r.try_get("claimed_by")?,
                lease_until_ms: r.try_get("lease_until")?,
            })
        })
        .collect()
    }

    /// Records `finding` as open (again), with what this run saw. Returns
    /// whether it is new: not open before.
    pub async fn open(self, finding: &Finding) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.store.begin_write().await?;
        let was_open =
            sqlx::query("SELECT status FROM reconciler_findings WHERE kind = $1 AND subject = $2")
                .bind(finding.kind.as_str())
                .bind(&finding.subject)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get::<String, _>("status"))
                .transpose()?
                .is_some_and(|s| s == OPEN);
        sqlx::query(
            "INSERT INTO reconciler_findings (kind, subject, order_id, detail, status, \
             first_seen_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (kind, subject) DO UPDATE SET order_id = excluded.order_id, \
             detail = excluded.detail, last_seen_at = excluded.last_seen_at, \
             first_seen_at = CASE WHEN reconciler_findings.status = $5 \
                 THEN reconciler_findings.first_seen_at ELSE excluded.first_seen_at END, \
             status = excluded.status, resolved_at = NULL",
        )
        .bind(finding.kind.as_str())
        .bind(&finding.subject)
        .bind(finding.order_id.map(|o| o.to_string()))
        .bind(&finding.detail)
        .bind(OPEN)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(!was_open)
    }

    /// Resolves every open finding not in `seen` (a run no longer saw it);
    /// returns how many.
    pub async fn resolve_unseen(self, seen: &[(FindingKind, String)]) -> Result<u64> {
        let now = now_ms();
        let mut resolved = 0;
        for record in self.open_findings().await? {
            let key = (record.finding.kind, record.finding.subject.clone());
            if seen.contains(&key) {
                continue;
            }
            resolved += sqlx::query(
                "UPDATE reconciler_findings SET status = $1, resolved_at = $2 \
                 WHERE kind = $3 AND subject = $4 AND status = $5",
            )
            .bind(RESOLVED)
            .bind(now)
            .bind(record.finding.kind.as_str())
            .bind(&record.finding.subject)
            .bind(OPEN)
            .execute(&self.store.writer)
            .await?
            .rows_affected();
        }
        Ok(resolved)
    }

    /// Every open finding, oldest first.
    pub async fn open_findings(self) -> Result<Vec<FindingRecord>> {
        self.select("WHERE status = $1", Some(OPEN)).await
    }

    /// Every finding about one order, open or resolved.
    pub async fn of_order(self, order_id: &OrderId) -> Result<Vec<FindingRecord>> {
        self.select("WHERE order_id = $1", Some(&order_id.to_string()))
            .await
    }

    async fn select(self, filter: &str, arg: Option<&str>) -> Result<Vec<FindingRecord>> {
        sqlx::query(&format!(
            "SELECT kind, subject, order_id, detail, status, first_seen_at, last_seen_at \
             FROM reconciler_findings {filter} ORDER BY first_seen_at, kind, subject"
        ))
        .bind(arg)
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(|r| {
            let order_id: Option<String> = r.try_get("order_id")?;
            let order_id = order_id
                .map(|o| o.parse::<OrderId>())
                .transpose()
                .map_err(|e| crate::db::corrupt(format!("order_id: {e}")))?;
            Ok(FindingRecord {
                finding: Finding {
                    kind: parse_col(r, "kind")?,
                    subject: r.try_get("subject")?,
                    order_id,
                    detail: r.try_get("detail")?,
                },
                open: r.try_get::<String, _>("status")? == OPEN,
                first_seen_at_ms: r.try_get("first_seen_at")?,
                last_seen_at_ms: r.try_get("last_seen_at")?,
            })
        })
        .collect()
    }
}
