//! The `MonitorLowStock` policy and its alerts (`low_stock_alerts`).
//!
//! The policy runs inside every transaction that changes on-hand (receipts,
//! order deductions, releases): a crossing to at-or-below the threshold
//! ([`StockLevel::crossing`]) raises exactly one `LowStockAlertTriggered`
//! and commits the merchant's email to the outbox in the same commit as the
//! stock change, so no crash can lose or duplicate it. The product's
//! `low_stock` flag remembers the alert until stock rises above the
//! threshold again, which re-arms it.

use ordersaga_domain::{
    CatalogEvent, LowStockCrossing, Notification, Outgoing, Sku, StockLevel, notify,
};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use ordersaga_domain::events::CatalogEventData;

use crate::catalog::{CatalogEventRecord, record_event};
use crate::db::{Tx, parse_col};
use crate::outbox::enqueue;
use crate::page::{AlertCursor, Page, Placeholders};
use crate::{Result, Stock};

/// Columns an `UPDATE products .. RETURNING` hands to [`monitor_low_stock`].
pub(crate) const LEVEL_COLUMNS: &str = "on_hand, low_stock_threshold, low_stock";

/// A stored `LowStockAlertTriggered`: stock fell to or below the threshold.
/// (The merchant's email about it is [`notify::LowStockAlert`].)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowStockAlertRecord {
    /// The alert's id: `{cause}/{sku}`.
    pub alert_id: String,
    /// The product.
    pub sku: Sku,
    /// Units on hand right after the crossing.
    pub on_hand: i64,
    /// The product's threshold then.
    pub threshold: i64,
    /// What moved stock: `order:<id>`, `receipt:<id>`.
    pub cause: String,
    /// When, Unix ms.
    pub created_at_ms: i64,
}

/// Namespace of the email ids of low-stock alerts.
const ALERT_NAMESPACE: Uuid = Uuid::from_u128(0x6c6f_772d_7374_6f63_6b2d_616c_6572_7473);

/// The email id of an alert: stable, so the merchant gets one email per
/// alert however often it is handed over.
fn alert_uuid(alert_id: &str) -> Uuid {
    Uuid::new_v5(&ALERT_NAMESPACE, alert_id.as_bytes())
}

/// The `MonitorLowStock` policy for one product whose on-hand just changed
/// (`level` holds [`LEVEL_COLUMNS`] after the change), in the transaction
/// that changed it: on a crossing into low stock, the alert, its event and
/// the merchant's email; on a recovery, the re-armed flag. Returns the
/// notice of the alert it raised, if any.
pub(crate) async fn monitor_low_stock(
    tx: &mut Tx,
    publish: bool,
    sku: &Sku,
    level: &AnyRow,
    cause: &str,
    now: i64,
) -> Result<Option<notify::LowStockAlert>> {
    let level = StockLevel {
        on_hand: level.try_get("on_hand")?,
        threshold: level.try_get("low_stock_threshold")?,
        alerted: level.try_get::<i64, _>("low_stock")? != 0,
    };
    let crossing = level.crossing();
    if crossing == LowStockCrossing::Unchanged {
        return Ok(None);
    }
    sqlx::query("UPDATE products SET low_stock = $1 WHERE sku = $2")
        .bind(i64::from(crossing == LowStockCrossing::Fell))
        .bind(sku.as_str())
        .execute(&mut **tx)
        .await?;
    if crossing == LowStockCrossing::Recovered {
        return Ok(None);
    }
    let StockLevel {
        on_hand, threshold, ..
    } = level;
    let alert_id = format!("{cause}/{sku}");
    sqlx::query(
        "INSERT INTO low_stock_alerts (alert_id, sku, on_hand, threshold, cause, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&alert_id)
    .bind(sku.as_str())
    .bind(on_hand)
    .bind(threshold)
    .bind(cause)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let event = CatalogEventRecord {
        event: CatalogEvent::LowStockAlertTriggered,
        detail: Some(format!("{on_hand} on hand, threshold {threshold}")),
    };
    let data = CatalogEventData {
        sku: Some(sku.clone()),
        on_hand: Some(on_hand),
        low_stock_threshold: Some(threshold),
        alert_id: Some(alert_id.clone()),
        cause: Some(cause.to_string()),
        ..CatalogEventData::default()
    };
    let event_id = format!("low-stock/{alert_id}");
    record_event(tx, publish, &event_id, sku, &event, &data, now).await?;
    // The merchant's email, committed with the alert.
    let product_name: String = sqlx::query("SELECT name FROM products WHERE sku = $1")
        .bind(sku.as_str())
        .fetch_one(&mut **tx)
        .await?
        .try_get("name")?;
    let notice = notify::LowStockAlert {
        alert_id: alert_uuid(&alert_id),
        sku: sku.clone(),
        product_name,
        on_hand,
        threshold,
    };
    enqueue(
        tx,
        &[Outgoing::Email(Notification::LowStock(notice.clone()))],
        now,
    )
    .await?;
    tracing::info!(%sku, on_hand, threshold, cause, "LowStockAlertTriggered");
    Ok(Some(notice))
}

const ALERT_COLUMNS: &str = "alert_id, sku, on_hand, threshold, cause, created_at";

fn alert_from_row(row: &AnyRow) -> Result<LowStockAlertRecord> {
    Ok(LowStockAlertRecord {
        alert_id: row.try_get("alert_id")?,
        sku: parse_col(row, "sku")?,
        on_hand: row.try_get("on_hand")?,
        threshold: row.try_get("threshold")?,
        cause: row.try_get("cause")?,
        created_at_ms: row.try_get("created_at")?,
    })
}

impl Stock<'_> {
    /// Low-stock alerts, newest first, optionally for one sku, one page
    /// (`limit` clamped to 1..=100) at a time, with the cursor of the next
    /// page if any.
    pub async fn low_stock_alerts(
        self,
        sku: Option<&Sku>,
        limit: u32,
        after: Option<AlertCursor>,
    ) -> Result<(Vec<LowStockAlertRecord>, Option<AlertCursor>)> {
        let page = Page::new(limit);
        let mut p = Placeholders::default();
        let mut sql = format!("SELECT {ALERT_COLUMNS} FROM low_stock_alerts WHERE 1 = 1");
        if sku.is_some() {
            sql += &format!(" AND sku = {}", p.next());
        }
        if after.is_some() {
            sql += &format!(" AND {}", p.older_than("alert_id"));
        }
        sql += &format!(
            " ORDER BY created_at DESC, alert_id DESC LIMIT {}",
            p.next()
        );
        let mut q = sqlx::query(&sql);
        if let Some(sku) = sku {
            q = q.bind(sku.as_str());
        }
        if let Some(c) = &after {
            q = c.bind(q);
        }
        let rows = q
            .bind(page.fetch_limit())
            .fetch_all(&self.store.pool)
            .await?
            .iter()
            .map(alert_from_row)
            .collect::<Result<Vec<_>>>()?;
        let (alerts, more) = page.cut(rows);
        let cursor = more
            .then(|| alerts.last())
            .flatten()
            .map(|a| AlertCursor::after(a.created_at_ms, a.alert_id.clone()));
        Ok((alerts, cursor))
    }
}

/// The low-stock alerts one stock movement raised (`cause` as in
/// [`LowStockAlertRecord::cause`]), as notices for the merchant's email.
pub(crate) async fn low_stock_notices(
    conn: &mut sqlx::AnyConnection,
    cause: &str,
) -> Result<Vec<notify::LowStockAlert>> {
    sqlx::query(
        "SELECT a.alert_id, a.sku, a.on_hand, a.threshold, a.cause, a.created_at, \
         p.name FROM low_stock_alerts a JOIN products p ON p.sku = a.sku \
         WHERE a.cause = $1 ORDER BY a.alert_id",
    )
    .bind(cause)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| {
        let alert = alert_from_row(row)?;
        Ok(notify::LowStockAlert {
            alert_id: alert_uuid(&alert.alert_id),
            sku: alert.sku,
            product_name: row.try_get("name")?,
            on_hand: alert.on_hand,
            threshold: alert.threshold,
        })
    })
    .collect()
}
