//! The stock repository: the ledger of every change of on-hand
//! (`stock_movements`) and the three things that change it, each in one
//! transaction with its ledger entries and the `MonitorLowStock` policy
//! ([`crate::low_stock`]): goods in (`CreateStockReceipt`), an order's
//! deduction (`ProcessInventory`) and its compensation (the release).
//!
//! A product's `on_hand` is kept beside the ledger so a deduction is one
//! guarded `UPDATE`; it always equals the sum of the product's movements.

use std::collections::BTreeMap;

use ordersaga_domain::events::CatalogEventData;
use ordersaga_domain::{CatalogEvent, FailureReason, OrderEvent, OrderId, OrderStatus, Sku};
use sqlx::Row;
use uuid::Uuid;

use crate::catalog::{CatalogEventRecord, record_event};
use crate::db::{Tx, corrupt, now_ms, parse_col};
use crate::low_stock::{LEVEL_COLUMNS, monitor_low_stock};
use crate::orders::{LineRecord, insert_event, lines_of};
use crate::{Result, Store, StoreError};

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

/// Why stock could not be deducted: the first line that was short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    /// The product that was short.
    pub sku: Sku,
    /// Units the order needs (all its lines of that sku).
    pub requested: i64,
    /// Units on hand when checked.
    pub available: i64,
}

impl From<Shortage> for FailureReason {
    fn from(s: Shortage) -> Self {
        FailureReason::OutOfStock {
            sku: s.sku,
            requested: s.requested,
            available: s.available,
        }
    }
}

/// Namespace of receipt ids derived from idempotency keys.
const RECEIPT_NAMESPACE: Uuid = Uuid::from_u128(0x7265_6365_6970_742d_6f72_6465_7273_6167);

/// The stock repository; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Stock<'a> {
    pub(crate) store: &'a Store,
}

impl<'a> Stock<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// `CreateStockReceipt`: records the receipt, raises on-hand for each
    /// line in the same transaction (ledger entries `receipt/<id>/<sku>`),
    /// applies `MonitorLowStock`; `StockReceiptCreated`. The same
    /// idempotency key again with the same lines returns the first receipt
    /// and changes nothing; with other lines it is
    /// [`StoreError::KeyReused`].
    /// An unknown sku stores nothing ([`StoreError::UnknownProduct`]).
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "stock.receive", otel.kind = "client"))]
    pub async fn receive(self, r: &NewStockReceipt) -> Result<StockReceipt> {
        let now = now_ms();
        let receipt_id = format!(
            "rcpt-{}",
            Uuid::new_v5(&RECEIPT_NAMESPACE, r.idempotency_key.as_bytes())
        );
        let mut tx = self.store.begin_write().await?;
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
            // A replay must be the same document: the same key with other
            // lines is a client bug, and answering the old receipt would
            // hide that the new goods were never booked.
            let first = self.receipt(&receipt_id).await?;
            if first.lines != r.lines {
                return Err(StoreError::KeyReused(r.idempotency_key.clone()));
            }
            return Ok(first);
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
            let movement_id = format!("receipt/{receipt_id}/{sku}");
            record_movement(
                &mut tx,
                &movement_id,
                sku,
                qty,
                Movement::Receipt,
                None,
                now,
            )
            .await?;
            let event = CatalogEventRecord {
                event: CatalogEvent::StockReceiptCreated,
                detail: Some(format!("+{qty} ({receipt_id})")),
            };
            let data = CatalogEventData {
                sku: Some(sku.clone()),
                receipt_id: Some(receipt_id.clone()),
                quantity: Some(qty),
                on_hand: Some(level.try_get("on_hand")?),
                ..CatalogEventData::default()
            };
            let publish = self.store.events;
            record_event(&mut tx, publish, &movement_id, sku, &event, &data, now).await?;
            monitor_low_stock(&mut tx, publish, sku, &level, &cause, now).await?;
        }
        tx.commit().await?;
        let mut receipt = self.receipt(&receipt_id).await?;
        receipt.created = true;
        Ok(receipt)
    }

    async fn receipt(self, receipt_id: &str) -> Result<StockReceipt> {
        let pool = &self.store.pool;
        let header = sqlx::query("SELECT created_at FROM stock_receipts WHERE receipt_id = $1")
            .bind(receipt_id)
            .fetch_one(pool)
            .await?;
        let lines = sqlx::query(
            "SELECT sku, quantity FROM stock_receipt_lines WHERE receipt_id = $1 ORDER BY line_no",
        )
        .bind(receipt_id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| Ok((parse_col(row, "sku")?, row.try_get("quantity")?)))
        .collect::<Result<Vec<_>>>()?;
        Ok(StockReceipt {
            receipt_id: receipt_id.to_string(),
            lines,
            created_at_ms: header.try_get("created_at")?,
            created: false,
        })
    }

    /// `ProcessInventory`: deducts stock for every line of the order in one
    /// transaction, all or nothing, and records `InventoryProcessed`; or,
    /// when a line is short, deducts nothing and records
    /// `InventoryProcessFailed`. The outcome is stored, so a retry answers
    /// the same and never deducts twice. An order that is no longer
    /// `PENDING` is refused ([`StoreError::OrderEnded`]) unless an earlier
    /// attempt already decided.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "stock.deduct", otel.kind = "client"))]
    pub async fn deduct(self, order_id: &OrderId) -> Result<Result<(), Shortage>> {
        let now = now_ms();
        let id = order_id.to_string();
        let mut tx = self.store.begin_write().await?;
        let claimed = sqlx::query(
            "INSERT INTO inventory_deductions (order_id, status, created_at) \
             VALUES ($1, $2, $3) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(&id)
        .bind(Deduction::Deducted.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !claimed {
            // An earlier attempt decided: report it, even for an order that
            // has failed since (its compensation must release what it took).
            tx.rollback().await?;
            return self.deduction(order_id).await;
        }
        // Never take stock for an order that has ended. The no-op update
        // locks the order's row on PostgreSQL, so a concurrent `FailOrder`
        // waits for this deduction (and its compensation finds it).
        let pending = sqlx::query(
            "UPDATE orders SET updated_at = updated_at WHERE order_id = $1 AND status = $2",
        )
        .bind(&id)
        .bind(OrderStatus::Pending.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !pending {
            tx.rollback().await?;
            return Err(self.not_pending(order_id).await);
        }
        let wanted = wanted_per_sku(&lines_of(&mut tx, &id).await?);
        if wanted.is_empty() {
            return Err(StoreError::OrderNotFound(*order_id));
        }
        // Skus in sorted order so concurrent orders lock rows in one order
        // (no deadlocks on PostgreSQL).
        for (sku, qty) in &wanted {
            let took = sqlx::query(&format!(
                "UPDATE products SET on_hand = on_hand - $1 WHERE sku = $2 AND on_hand >= $1 \
                 RETURNING {LEVEL_COLUMNS}"
            ))
            .bind(*qty)
            .bind(sku.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(level) = took else {
                let available = sqlx::query("SELECT on_hand FROM products WHERE sku = $1")
                    .bind(sku.as_str())
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.try_get::<i64, _>("on_hand"))
                    .transpose()?
                    .unwrap_or(0);
                tx.rollback().await?;
                let shortage = Shortage {
                    sku: sku.clone(),
                    requested: *qty,
                    available,
                };
                return self.record_shortage(order_id, shortage).await;
            };
            let cause = format!("order:{id}");
            monitor_low_stock(&mut tx, self.store.events, sku, &level, &cause, now).await?;
            let movement_id = format!("{id}/deduct/{sku}");
            record_movement(
                &mut tx,
                &movement_id,
                sku,
                -*qty,
                Movement::Order,
                Some(&id),
                now,
            )
            .await?;
        }
        insert_event(
            &mut tx,
            self.store.events,
            &id,
            OrderEvent::InventoryProcessed,
            None,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn record_shortage(
        self,
        order_id: &OrderId,
        s: Shortage,
    ) -> Result<Result<(), Shortage>> {
        let now = now_ms();
        let id = order_id.to_string();
        let mut tx = self.store.begin_write().await?;
        let recorded = sqlx::query(
            "INSERT INTO inventory_deductions (order_id, status, short_sku, requested, available, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(&id)
        .bind(Deduction::Short.as_str())
        .bind(s.sku.as_str())
        .bind(s.requested)
        .bind(s.available)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if recorded {
            let reason = FailureReason::from(s).to_string();
            let event = OrderEvent::InventoryProcessFailed;
            insert_event(&mut tx, self.store.events, &id, event, Some(&reason), now).await?;
        }
        tx.commit().await?;
        self.deduction(order_id).await
    }

    /// Why a step refused the order: it has ended, or it is not stored.
    async fn not_pending(self, order_id: &OrderId) -> StoreError {
        let found = sqlx::query("SELECT status FROM orders WHERE order_id = $1")
            .bind(order_id.to_string())
            .fetch_optional(&self.store.pool)
            .await;
        match found {
            Ok(Some(row)) => match parse_col::<OrderStatus>(&row, "status") {
                Ok(status) => StoreError::OrderEnded {
                    order_id: *order_id,
                    status,
                },
                Err(e) => e,
            },
            Ok(None) => StoreError::OrderNotFound(*order_id),
            Err(e) => e.into(),
        }
    }

    /// How the order's deduction went, as stored.
    async fn deduction(self, order_id: &OrderId) -> Result<Result<(), Shortage>> {
        let row = sqlx::query(
            "SELECT status, short_sku, requested, available FROM inventory_deductions \
             WHERE order_id = $1",
        )
        .bind(order_id.to_string())
        .fetch_optional(&self.store.pool)
        .await?
        .ok_or(StoreError::OrderNotFound(*order_id))?;
        if parse_col::<Deduction>(&row, "status")? != Deduction::Short {
            return Ok(Ok(()));
        }
        let sku: Option<String> = row.try_get("short_sku")?;
        Ok(Err(Shortage {
            sku: sku.unwrap_or_default().parse().map_err(corrupt)?,
            requested: row.try_get::<Option<i64>, _>("requested")?.unwrap_or(0),
            available: row.try_get::<Option<i64>, _>("available")?.unwrap_or(0),
        }))
    }

    /// Compensation of `ProcessInventory`: puts back what the order deducted
    /// and records `InventoryReleased`. Nothing deducted, or already put
    /// back: nothing to do. Returns whether this call put stock back.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "stock.release", otel.kind = "client"))]
    pub async fn release(self, order_id: &OrderId) -> Result<bool> {
        let now = now_ms();
        let id = order_id.to_string();
        let mut tx = self.store.begin_write().await?;
        let released = sqlx::query(
            "UPDATE inventory_deductions SET status = $1 WHERE order_id = $2 AND status = $3",
        )
        .bind(Deduction::Released.as_str())
        .bind(&id)
        .bind(Deduction::Deducted.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if released {
            for (sku, qty) in wanted_per_sku(&lines_of(&mut tx, &id).await?) {
                let level = sqlx::query(&format!(
                    "UPDATE products SET on_hand = on_hand + $1 WHERE sku = $2 \
                     RETURNING {LEVEL_COLUMNS}"
                ))
                .bind(qty)
                .bind(sku.as_str())
                .fetch_one(&mut *tx)
                .await?;
                let cause = format!("release:{id}");
                monitor_low_stock(&mut tx, self.store.events, &sku, &level, &cause, now).await?;
                let movement_id = format!("{id}/release/{sku}");
                record_movement(
                    &mut tx,
                    &movement_id,
                    &sku,
                    qty,
                    Movement::Release,
                    Some(&id),
                    now,
                )
                .await?;
            }
            insert_event(
                &mut tx,
                self.store.events,
                &id,
                OrderEvent::InventoryReleased,
                None,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(released)
    }

    /// The sum of a product's stock ledger (must equal its on-hand).
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "stock.ledger_balance", otel.kind = "client"))]
    pub async fn ledger_balance(self, sku: &Sku) -> Result<i64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(delta), 0) AS BIGINT) AS balance \
             FROM stock_movements WHERE sku = $1",
        )
        .bind(sku.as_str())
        .fetch_one(&self.store.pool)
        .await?;
        Ok(row.try_get("balance")?)
    }
}

ordersaga_domain::text_enum!(
    /// Why on-hand changed, as the ledger's `reason` names it.
    Movement {
        /// Goods in.
        Receipt => "receipt",
        /// An order's deduction.
        Order => "order",
        /// An order's deduction put back (its compensation).
        Release => "release",
    }
);

ordersaga_domain::text_enum!(
    /// How an order's `ProcessInventory` ended (`inventory_deductions`).
    Deduction {
        /// Every line deducted.
        Deducted => "DEDUCTED",
        /// A line was short; nothing deducted.
        Short => "SHORT",
        /// Deducted, then put back by the compensation.
        Released => "RELEASED",
    }
);

/// Writes one ledger entry, keyed by `movement_id` so a step never writes
/// it twice.
async fn record_movement(
    tx: &mut Tx,
    movement_id: &str,
    sku: &Sku,
    delta: i64,
    movement: Movement,
    order_id: Option<&str>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO stock_movements (movement_id, sku, delta, reason, order_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(movement_id)
    .bind(sku.as_str())
    .bind(delta)
    .bind(movement.as_str())
    .bind(order_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Units wanted per sku (an order may name a sku on several lines), sorted.
fn wanted_per_sku(lines: &[LineRecord]) -> BTreeMap<Sku, i64> {
    let mut wanted = BTreeMap::new();
    for l in lines {
        *wanted.entry(l.sku.clone()).or_insert(0) += l.quantity;
    }
    wanted
}
