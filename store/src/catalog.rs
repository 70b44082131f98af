//! The catalog and inventory half of the store: `CreateProduct`,
//! `CreateStockReceipt`, the `MonitorLowStock` policy and
//! `SubmitReviewRating`, with their events in `catalog_events`.
//!
//! `MonitorLowStock` runs inside every transaction that changes on-hand
//! (receipts, order deductions, releases): a crossing to at-or-below the
//! threshold raises exactly one `LowStockAlertTriggered` in the same commit as
//! the stock change, so no crash can lose or duplicate it. The product's
//! `low_stock` flag remembers the alert until stock rises above the
//! threshold again, which re-arms it.

use std::collections::BTreeMap;

use ordersaga_domain::{CustomerId, Money, Notification, OrderStatus, Outgoing, Sku, notify};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{PRODUCT_SELECT, Product, Result, Store, StoreError, enqueue, id_col, now_ms};

/// Columns an `UPDATE products .. RETURNING` hands to [`monitor_low_stock`].
pub(crate) const LEVEL_COLUMNS: &str = "on_hand, low_stock_threshold, low_stock";

/// A product to create (`CreateProduct`); stock arrives by receipts.
#[derive(Debug, Clone)]
pub struct NewProduct {
    /// Stock keeping unit, unique.
    pub sku: Sku,
    /// Display name.
    pub name: String,
    /// Price.
    pub price: Money,
    /// At or below this many units on hand, the merchant is alerted.
    pub low_stock_threshold: i64,
}

/// A goods-in document to record (`CreateStockReceipt`).
#[derive(Debug, Clone)]
pub struct NewStockReceipt {
    /// The merchant's key: the same key twice records one receipt.
    pub idempotency_key: String,
    /// `(sku, units)`; every sku must exist, every quantity be > 0.
    pub lines: Vec<(Sku, i64)>,
}

/// A recorded stock receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockReceipt {
    /// The receipt's id (derived from its idempotency key).
    pub receipt_id: String,
    /// Its lines, as recorded.
    pub lines: Vec<(Sku, i64)>,
    /// When it was recorded, Unix ms.
    pub created_at_ms: i64,
    /// Whether this call recorded it (false: the key was seen before).
    pub created: bool,
}

/// A `LowStockAlertTriggered`: stock fell to or below the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowStockAlert {
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

/// Namespace of receipt ids derived from idempotency keys.
const RECEIPT_NAMESPACE: Uuid = Uuid::from_u128(0x7265_6365_6970_742d_6f72_6465_7273_6167);

async fn record_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    event_id: &str,
    sku: &Sku,
    event: &str,
    detail: Option<&str>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO catalog_events (event_id, sku, event, detail, occurred_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(sku.as_str())
    .bind(event)
    .bind(detail)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The `MonitorLowStock` policy for one product whose on-hand just changed
/// (`level` holds [`LEVEL_COLUMNS`] after the change). Raises an alert on a
/// crossing into low stock; re-arms once stock is above the threshold.
pub(crate) async fn monitor_low_stock(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    sku: &Sku,
    level: &AnyRow,
    cause: &str,
    now: i64,
) -> Result<Option<LowStockAlert>> {
    let on_hand: i64 = level.try_get("on_hand")?;
    let threshold: i64 = level.try_get("low_stock_threshold")?;
    let alerted = level.try_get::<i64, _>("low_stock")? != 0;
    let low = on_hand <= threshold;
    if low == alerted {
        return Ok(None);
    }
    sqlx::query("UPDATE products SET low_stock = $1 WHERE sku = $2")
        .bind(i64::from(low))
        .bind(sku.as_str())
        .execute(&mut **tx)
        .await?;
    if !low {
        return Ok(None);
    }
    let alert = LowStockAlert {
        alert_id: format!("{cause}/{sku}"),
        sku: sku.clone(),
        on_hand,
        threshold,
        cause: cause.to_string(),
        created_at_ms: now,
    };
    sqlx::query(
        "INSERT INTO low_stock_alerts (alert_id, sku, on_hand, threshold, cause, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&alert.alert_id)
    .bind(sku.as_str())
    .bind(on_hand)
    .bind(threshold)
    .bind(cause)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let detail = format!("{on_hand} on hand, threshold {threshold}");
    record_event(
        tx,
        &format!("low-stock/{}", alert.alert_id),
        sku,
        "LowStockAlertTriggered",
        Some(&detail),
        now,
    )
    .await?;
    // The merchant's email, committed with the alert.
    let product_name: String = sqlx::query("SELECT name FROM products WHERE sku = $1")
        .bind(sku.as_str())
        .fetch_one(&mut **tx)
        .await?
        .try_get("name")?;
    let notice = notify::LowStockAlert {
        alert_id: alert_uuid(&alert.alert_id),
        sku: sku.clone(),
        product_name,
        on_hand,
        threshold,
    };
    enqueue(tx, &[Outgoing::Email(Notification::LowStock(notice))], now).await?;
    tracing::info!(%sku, on_hand, threshold, cause, "LowStockAlertTriggered");
    Ok(Some(alert))
}

fn alert_from_row(row: &AnyRow) -> Result<LowStockAlert> {
    Ok(LowStockAlert {
        alert_id: row.try_get("alert_id")?,
        sku: id_col(row, "sku")?,
        on_hand: row.try_get("on_hand")?,
        threshold: row.try_get("threshold")?,
        cause: row.try_get("cause")?,
        created_at_ms: row.try_get("created_at")?,
    })
}

impl Store {
    /// `CreateProduct`: a new product with no stock; `ProductCreated`.
    /// A taken sku is [`StoreError::ProductExists`].
    pub async fn create_product(&self, p: &NewProduct) -> Result<Product> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let created = sqlx::query(
            "INSERT INTO products (sku, name, price_minor, currency, on_hand, \
             low_stock_threshold, created_at) VALUES ($1, $2, $3, $4, 0, $5, $6) \
             ON CONFLICT (sku) DO NOTHING",
        )
        .bind(p.sku.as_str())
        .bind(&p.name)
        .bind(p.price.minor)
        .bind(p.price.currency.as_str())
        .bind(p.low_stock_threshold)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !created {
            return Err(StoreError::ProductExists(p.sku.clone()));
        }
        let detail = format!("{} at {}", p.name, p.price);
        record_event(
            &mut tx,
            &format!("product-created/{}", p.sku),
            &p.sku,
            "ProductCreated",
            Some(&detail),
            now,
        )
        .await?;
        tx.commit().await?;
        self.product(&p.sku)
            .await?
            .ok_or_else(|| StoreError::UnknownProduct(p.sku.clone()))
    }

    /// `CreateStockReceipt`: records the receipt, raises on-hand for each
    /// line in the same transaction (ledger entries `receipt/<id>/<sku>`),
    /// applies `MonitorLowStock`; `StockReceiptCreated`. The same
    /// idempotency key again returns the first receipt and changes nothing.
    /// An unknown sku stores nothing ([`StoreError::UnknownProduct`]).
    pub async fn receive_stock(&self, r: &NewStockReceipt) -> Result<StockReceipt> {
        let now = now_ms();
        let receipt_id = format!(
            "rcpt-{}",
            Uuid::new_v5(&RECEIPT_NAMESPACE, r.idempotency_key.as_bytes())
        );
        let mut tx = self.begin_write().await?;
        let created = sqlx::query(
            "INSERT INTO stock_receipts (receipt_id, idempotency_key, created_at) \
             VALUES ($1, $2, $3) ON CONFLICT (receipt_id) DO NOTHING",
        )
        .bind(&receipt_id)
        .bind(&r.idempotency_key)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !created {
            tx.rollback().await?;
            return self.stock_receipt(&receipt_id).await;
        }
        for (n, (sku, qty)) in r.lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO stock_receipt_lines (receipt_id, line_no, sku, quantity) \
                 SELECT $1, $2, sku, $3 FROM products WHERE sku = $4",
            )
            .bind(&receipt_id)
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .bind(*qty)
            .bind(sku.as_str())
            .execute(&mut *tx)
            .await?;
        }
        let mut per_sku: BTreeMap<&Sku, i64> = BTreeMap::new();
        for (sku, qty) in &r.lines {
            *per_sku.entry(sku).or_insert(0) += qty;
        }
        let cause = format!("receipt:{receipt_id}");
        for (sku, qty) in per_sku {
            let Some(level) = sqlx::query(&format!(
                "UPDATE products SET on_hand = on_hand + $1 WHERE sku = $2 RETURNING {LEVEL_COLUMNS}"
            ))
            .bind(qty)
            .bind(sku.as_str())
            .fetch_optional(&mut *tx)
            .await?
            else {
                // Dropping the transaction rolls everything back.
                return Err(StoreError::UnknownProduct(sku.clone()));
            };
            sqlx::query(
                "INSERT INTO stock_movements (movement_id, sku, delta, reason, order_id, created_at) \
                 VALUES ($1, $2, $3, 'receipt', NULL, $4)",
            )
            .bind(format!("receipt/{receipt_id}/{sku}"))
            .bind(sku.as_str())
            .bind(qty)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let detail = format!("+{qty} ({receipt_id})");
            record_event(
                &mut tx,
                &format!("receipt/{receipt_id}/{sku}"),
                sku,
                "StockReceiptCreated",
                Some(&detail),
                now,
            )
            .await?;
            monitor_low_stock(&mut tx, sku, &level, &cause, now).await?;
        }
        tx.commit().await?;
        let mut receipt = self.stock_receipt(&receipt_id).await?;
        receipt.created = true;
        Ok(receipt)
    }

    async fn stock_receipt(&self, receipt_id: &str) -> Result<StockReceipt> {
        let header = sqlx::query("SELECT created_at FROM stock_receipts WHERE receipt_id = $1")
            .bind(receipt_id)
            .fetch_one(&self.pool)
            .await?;
        let lines = sqlx::query(
            "SELECT sku, quantity FROM stock_receipt_lines WHERE receipt_id = $1 ORDER BY line_no",
        )
        .bind(receipt_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| Ok((id_col(row, "sku")?, row.try_get("quantity")?)))
        .collect::<Result<Vec<_>>>()?;
        Ok(StockReceipt {
            receipt_id: receipt_id.to_string(),
            lines,
            created_at_ms: header.try_get("created_at")?,
            created: false,
        })
    }

    /// Low-stock alerts, newest first, optionally for one sku. `after` is
    /// the last alert of the previous page (its `created_at_ms`, `alert_id`).
    pub async fn list_low_stock_alerts(
        &self,
        sku: Option<&Sku>,
        limit: u32,
        after: Option<(i64, String)>,
    ) -> Result<(Vec<LowStockAlert>, bool)> {
        let limit = i64::from(limit.clamp(1, 100));
        let mut sql = String::from(
            "SELECT alert_id, sku, on_hand, threshold, cause, created_at \
             FROM low_stock_alerts WHERE 1 = 1",
        );
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if sku.is_some() {
            sql += &format!(" AND sku = {}", next());
        }
        if after.is_some() {
            let (a, b) = (next(), next());
            sql += &format!(" AND (created_at < {a} OR (created_at = {a} AND alert_id < {b}))");
        }
        sql += &format!(" ORDER BY created_at DESC, alert_id DESC LIMIT {}", next());
        let mut q = sqlx::query(&sql);
        if let Some(sku) = sku {
            q = q.bind(sku.as_str());
        }
        if let Some((ms, id)) = after {
            q = q.bind(ms).bind(id);
        }
        let rows = q.bind(limit + 1).fetch_all(&self.pool).await?;
        let mut alerts = rows
            .iter()
            .map(alert_from_row)
            .collect::<Result<Vec<_>>>()?;
        let more = alerts.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        alerts.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok((alerts, more))
    }

    /// The low-stock alerts one stock movement raised (`cause` as in
    /// [`LowStockAlert::cause`]), as notices for the merchant's email.
    pub async fn low_stock_notices(&self, cause: &str) -> Result<Vec<notify::LowStockAlert>> {
        sqlx::query(
            "SELECT a.alert_id, a.sku, a.on_hand, a.threshold, a.cause, a.created_at, \
             p.name FROM low_stock_alerts a JOIN products p ON p.sku = a.sku \
             WHERE a.cause = $1 ORDER BY a.alert_id",
        )
        .bind(cause)
        .fetch_all(&self.pool)
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

    /// `SubmitReviewRating`: `stars` (validated 1..=5 by the caller) from a
    /// customer with a confirmed order for the product; a second rating
    /// replaces the first. The product's sum and count change in the same
    /// transaction; `ReviewRatingSubmitted`, `ProductRatingUpdated`.
    pub async fn submit_rating(
        &self,
        customer: &CustomerId,
        sku: &Sku,
        stars: i64,
    ) -> Result<Product> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        // Touch the product first: it locks the row (PostgreSQL), so two
        // ratings of one product cannot interleave their sum updates.
        let exists = sqlx::query("UPDATE products SET rating_count = rating_count WHERE sku = $1")
            .bind(sku.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !exists {
            return Err(StoreError::UnknownProduct(sku.clone()));
        }
        let bought = sqlx::query(
            "SELECT 1 AS one FROM orders o JOIN order_lines l ON l.order_id = o.order_id \
             WHERE o.customer_id = $1 AND o.status = $2 AND l.sku = $3 LIMIT 1",
        )
        .bind(customer.as_str())
        .bind(OrderStatus::Confirmed.as_str())
        .bind(sku.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if !bought {
            return Err(StoreError::NotABuyer {
                customer: customer.clone(),
                sku: sku.clone(),
            });
        }
        let previous: Option<i64> =
            sqlx::query("SELECT stars FROM product_ratings WHERE sku = $1 AND customer_id = $2")
                .bind(sku.as_str())
                .bind(customer.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("stars"))
                .transpose()?;
        sqlx::query(
            "INSERT INTO product_ratings (sku, customer_id, stars, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (sku, customer_id) \
             DO UPDATE SET stars = excluded.stars, updated_at = excluded.updated_at",
        )
        .bind(sku.as_str())
        .bind(customer.as_str())
        .bind(stars)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE products SET rating_sum = rating_sum + $1, rating_count = rating_count + $2 \
             WHERE sku = $3",
        )
        .bind(stars - previous.unwrap_or(0))
        .bind(i64::from(previous.is_none()))
        .bind(sku.as_str())
        .execute(&mut *tx)
        .await?;
        let submission = Uuid::new_v4();
        let detail = format!("{customer}: {stars} stars");
        record_event(
            &mut tx,
            &format!("rating/{submission}"),
            sku,
            "ReviewRatingSubmitted",
            Some(&detail),
            now,
        )
        .await?;
        let row = sqlx::query(&format!("{PRODUCT_SELECT} WHERE sku = $1"))
            .bind(sku.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let product = Store::product_from_row(&row)?;
        let detail = format!(
            "average {:.2} of {}",
            product.rating_average().unwrap_or(0.0),
            product.rating_count
        );
        record_event(
            &mut tx,
            &format!("rating-updated/{submission}"),
            sku,
            "ProductRatingUpdated",
            Some(&detail),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(product)
    }

    /// The catalog's events for one product, oldest first: `(event, detail)`.
    pub async fn catalog_events(&self, sku: &Sku) -> Result<Vec<(String, Option<String>)>> {
        sqlx::query(
            "SELECT event, detail FROM catalog_events WHERE sku = $1 ORDER BY occurred_at, event_id",
        )
        .bind(sku.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("event")?, r.try_get("detail")?)))
        .collect()
    }
}
