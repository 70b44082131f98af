//! The stock repository: stock per warehouse, the ledger of every change
//! of on-hand (`stock_movements`, each entry naming its warehouse) and the
//! three things that change it, each in one transaction with its ledger
//! entries and the `MonitorLowStock` policy ([`crate::low_stock`]): goods
//! in (`CreateStockReceipt`, into one warehouse), an order's deduction
//! (`ProcessInventory`, allocated over the warehouses by
//! [`ordersaga_domain::allocation`]) and its compensation (the release,
//! back into the warehouses the units came from).
//!
//! A warehouse's stock of a product is a `warehouse_stock` row; the
//! product's `on_hand` is kept beside them as their sum (what the catalog
//! shows and the low-stock policy watches). Both always equal the sums of
//! the matching ledger entries. Every writer updates the product's row
//! first, in sku order: on PostgreSQL that row lock serialises everything
//! that moves the product's stock in any warehouse, so an allocation reads
//! warehouse stock that cannot change under it, and nothing oversells.

use std::collections::BTreeMap;

use ordersaga_domain::events::CatalogEventData;
use ordersaga_domain::{
    Amendment, AmendmentStatus, CatalogEvent, FailureReason, OrderEvent, OrderId, OrderInput,
    OrderStatus, Outgoing, ShipmentLine, Sku, WarehouseAllocation, WarehouseId, WarehouseStock,
    allocate, notify,
};
use sqlx::Row;
use uuid::Uuid;

use crate::catalog::{CatalogEventRecord, record_event};
use crate::db::{Tx, change_status, corrupt, now_ms, parse_col};
use crate::low_stock::{LEVEL_COLUMNS, low_stock_notices, monitor_low_stock};
use crate::orders::{LineRecord, insert_event, line_from_row, lines_of};
use crate::outbox::enqueue;
use crate::{Backend, Result, Store, StoreError};

/// A goods-in document to record (`CreateStockReceipt`).
#[derive(Debug, Clone)]
pub struct NewStockReceipt {
    /// The merchant's key: the same key twice records one receipt.
    pub idempotency_key: String,
    /// The warehouse the goods came into; one not seen before is opened
    /// (last in the fixed warehouse order).
    pub warehouse_id: WarehouseId,
    /// `(sku, units)`; every sku must exist, every quantity be > 0.
    pub lines: Vec<(Sku, i64)>,
}

/// A recorded stock receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockReceipt {
    /// The receipt's id (derived from its idempotency key).
    pub receipt_id: String,
    /// The warehouse the goods came into.
    pub warehouse_id: WarehouseId,
    /// Its lines, as recorded.
    pub lines: Vec<(Sku, i64)>,
    /// When it was recorded, Unix ms.
    pub created_at_ms: i64,
    /// Whether this call recorded it (false: the key was seen before).
    pub created: bool,
}

/// What an order's deduction left: the low-stock alerts it raised, as
/// notices for the merchant's email, and its allocation in the fixed
/// warehouse order ([`Stock::allocation`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeductedStock {
    /// The alerts, by sku.
    pub low_stock_alerts: Vec<notify::LowStockAlert>,
    /// Where the units came from.
    pub allocations: Vec<WarehouseAllocation>,
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

/// How [`Stock::deduct_amendable`] went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deducted {
    /// Every line was deducted.
    Full,
    /// Some products are short: the others are deducted and held, and
    /// this amendment is proposed (the order `ACTION_REQUIRED`).
    Amended(Amendment),
    /// Nothing can be served, or nothing was deducted: as [`Stock::deduct`].
    Short(Shortage),
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

    /// `CreateStockReceipt`: records the receipt, raises the warehouse's
    /// and the product's on-hand for each line in the same transaction
    /// (ledger entries `receipt/<id>/<sku>`), applies `MonitorLowStock`;
    /// `StockReceiptCreated`. The same idempotency key again with the same
    /// warehouse and lines returns the first receipt and changes nothing;
    /// with others it is [`StoreError::KeyReused`].
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
            "INSERT INTO stock_receipts (receipt_id, idempotency_key, warehouse_id, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (receipt_id) DO NOTHING",
        )
        .bind(&receipt_id)
        .bind(&r.idempotency_key)
        .bind(r.warehouse_id.as_str())
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
            if first.lines != r.lines || first.warehouse_id != r.warehouse_id {
                return Err(StoreError::KeyReused(r.idempotency_key.clone()));
            }
            return Ok(first);
        }
        open_warehouse(&mut tx, &r.warehouse_id, now).await?;
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
            put_into(&mut tx, &r.warehouse_id, sku, qty).await?;
            let movement_id = format!("receipt/{receipt_id}/{sku}");
            record_movement(
                &mut tx,
                &movement_id,
                sku,
                qty,
                (Movement::Receipt, &r.warehouse_id),
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
                warehouse: Some(r.warehouse_id.clone()),
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
        let header = sqlx::query(
            "SELECT warehouse_id, created_at FROM stock_receipts WHERE receipt_id = $1",
        )
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
            warehouse_id: parse_col(&header, "warehouse_id")?,
            lines,
            created_at_ms: header.try_get("created_at")?,
            created: false,
        })
    }

    /// `ProcessInventory`: deducts stock for every line of the order in one
    /// transaction, all or nothing, from the warehouses the allocation
    /// policy picks ([`allocate`]; stored, see [`Stock::allocation`]), and
    /// records `InventoryProcessed`; or,
    /// when a line is short, deducts nothing and records
    /// `InventoryProcessFailed`. The outcome is stored, so a retry answers
    /// the same and never deducts twice. An order that is no longer
    /// `PENDING` is refused ([`StoreError::OrderEnded`]) unless an earlier
    /// attempt already decided.
    ///
    /// Returns what the deduction left ([`Stock::deducted`]): the first
    /// attempt from what it wrote, a retry read back.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "stock.deduct", otel.kind = "client"))]
    pub async fn deduct(self, order_id: &OrderId) -> Result<Result<DeductedStock, Shortage>> {
        let now = now_ms();
        let id = order_id.to_string();
        let Some((mut tx, lines)) = self.open_deduction(order_id, now).await? else {
            // An earlier attempt decided: report it, even for an order that
            // has failed since (its compensation must release what it took).
            return Ok(match self.deduction(order_id).await? {
                Ok(()) => Ok(self.deducted(order_id).await?),
                Err(shortage) => Err(shortage),
            });
        };
        let wanted = wanted_per_sku(&lines);
        if wanted.is_empty() {
            return Err(StoreError::OrderNotFound(*order_id));
        }
        // Skus in sorted order so concurrent orders lock rows in one order
        // (no deadlocks on PostgreSQL). The guarded update checks the total
        // over all warehouses and locks the product's row.
        let cause = order_cause(&id);
        let mut low_stock_alerts = Vec::new();
        for (sku, qty) in &wanted {
            match self.take(&mut tx, sku, *qty, &cause, now).await? {
                Ok(alert) => low_stock_alerts.extend(alert),
                Err(shortage) => {
                    tx.rollback().await?;
                    return Ok(match self.record_shortage(order_id, shortage).await? {
                        // A concurrent attempt deducted first.
                        Ok(()) => Ok(self.deducted(order_id).await?),
                        Err(shortage) => Err(shortage),
                    });
                }
            }
        }
        // Every product's row is locked now: its warehouse stock cannot
        // change until this transaction ends.
        let allocations = take_allocated(&mut tx, &id, &wanted, now).await?;
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
        Ok(Ok(DeductedStock {
            low_stock_alerts,
            allocations,
        }))
    }

    /// `ProcessInventoryAmendable` under the `ask` policy
    /// (`partial-availability-v1`): as [`Stock::deduct`], but when some of
    /// the order's products are short and others are not, the ones that
    /// can be served are deducted (held for the order while the customer
    /// decides), the order becomes `ACTION_REQUIRED` with its
    /// [`Amendment`] stored, `OrderAmended` is recorded and `outgoing`
    /// (the "order amended" email, built from the amendment) is committed
    /// with it, all in one transaction. Everything short: as `deduct`
    /// (`InventoryProcessFailed`, nothing deducted). The outcome is stored,
    /// so a retry answers the same.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "stock.deduct_amendable", otel.kind = "client"))]
    pub async fn deduct_amendable(
        self,
        order: &OrderInput,
        deadline_secs: u64,
        outgoing: impl FnOnce(&Amendment) -> Vec<Outgoing>,
    ) -> Result<Deducted> {
        let order_id = &order.order_id;
        let now = now_ms();
        let id = order_id.to_string();
        let Some((mut tx, lines)) = self.open_deduction(order_id, now).await? else {
            return self.decided(order).await;
        };
        let wanted = wanted_per_sku(&lines);
        if wanted.is_empty() {
            return Err(StoreError::OrderNotFound(*order_id));
        }
        // As in `deduct`, in sku order; a product that is short is noted
        // and skipped instead of ending the deduction.
        let mut short: Vec<Shortage> = Vec::new();
        let cause = order_cause(&id);
        for (sku, qty) in &wanted {
            if let Err(shortage) = self.take(&mut tx, sku, *qty, &cause, now).await? {
                short.push(shortage);
            }
        }
        let short_skus: Vec<Sku> = short.iter().map(|s| s.sku.clone()).collect();
        let amendment = match short.first() {
            None => None,
            Some(first) => match Amendment::propose(&order.lines, &short_skus, deadline_secs) {
                Some(amendment) => Some(amendment),
                // Nothing can be served: all or nothing, as `deduct`.
                None => {
                    let first = first.clone();
                    tx.rollback().await?;
                    return Ok(match self.record_shortage(order_id, first).await? {
                        Ok(()) => Deducted::Full,
                        Err(shortage) => Deducted::Short(shortage),
                    });
                }
            },
        };
        let served: BTreeMap<Sku, i64> = wanted
            .into_iter()
            .filter(|(sku, _)| !short_skus.contains(sku))
            .collect();
        take_allocated(&mut tx, &id, &served, now).await?;
        let Some(amendment) = amendment else {
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
            return Ok(Deducted::Full);
        };
        let moved = change_status(
            &mut tx,
            "orders",
            &id,
            OrderStatus::ActionRequired,
            &[],
            now,
        )
        .await?;
        if !moved {
            tx.rollback().await?;
            return Err(self.not_pending(order_id).await);
        }
        let missing_skus = serde_json::to_string(&short_skus).map_err(corrupt)?;
        let deadline_ms = i64::try_from(deadline_secs)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        sqlx::query(
            "INSERT INTO order_amendments (order_id, status, missing_skus, refund_minor, currency, \
             deadline_secs, deadline_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(&id)
        .bind(AmendmentStatus::Proposed.as_str())
        .bind(&missing_skus)
        .bind(amendment.refund.minor)
        .bind(amendment.refund.currency.as_str())
        .bind(i64::try_from(deadline_secs).unwrap_or(i64::MAX))
        .bind(now.saturating_add(deadline_ms))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let detail = format!(
            "{} not available; {} to refund on acceptance",
            short_skus
                .iter()
                .map(Sku::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            amendment.refund
        );
        insert_event(
            &mut tx,
            self.store.events,
            &id,
            OrderEvent::OrderAmended,
            Some(&detail),
            now,
        )
        .await?;
        enqueue(&mut tx, &outgoing(&amendment), now).await?;
        tx.commit().await?;
        Ok(Deducted::Amended(amendment))
    }

    /// Opens a deduction's transaction: claims the order's deduction (a
    /// retry finds it claimed: `None`, an earlier attempt decided), locks
    /// the order's row and reads the order's lines. Never takes stock for
    /// an order that has ended: the no-op update locks the row on
    /// PostgreSQL, so a concurrent `FailOrder` waits for this deduction
    /// (and its compensation finds it).
    async fn open_deduction(
        self,
        order_id: &OrderId,
        now: i64,
    ) -> Result<Option<(Tx, Vec<LineRecord>)>> {
        let id = order_id.to_string();
        let mut tx = self.store.begin_write().await?;
        let opened = match tx.backend() {
            Backend::Postgres => open_in_one_statement(&mut tx, &id, now).await?,
            Backend::Sqlite => open_step_by_step(&mut tx, &id, now).await?,
        };
        match opened {
            Opened::Decided => {
                tx.rollback().await?;
                Ok(None)
            }
            Opened::Ended => {
                tx.rollback().await?;
                Err(self.not_pending(order_id).await)
            }
            Opened::Pending(lines) => Ok(Some((tx, lines))),
        }
    }

    /// Takes `qty` of `sku` from the catalog's on-hand (the guarded update
    /// checks the total over all warehouses and locks the product's row)
    /// and raises its low-stock alert (returned when it did); or, when
    /// fewer are on hand, takes nothing and says how many are.
    async fn take(
        self,
        tx: &mut Tx,
        sku: &Sku,
        qty: i64,
        cause: &str,
        now: i64,
    ) -> Result<std::result::Result<Option<notify::LowStockAlert>, Shortage>> {
        let took = sqlx::query(&format!(
            "UPDATE products SET on_hand = on_hand - $1 WHERE sku = $2 AND on_hand >= $1 \
             RETURNING {LEVEL_COLUMNS}"
        ))
        .bind(qty)
        .bind(sku.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(level) = took {
            let alert = monitor_low_stock(tx, self.store.events, sku, &level, cause, now).await?;
            return Ok(Ok(alert));
        }
        let available = sqlx::query("SELECT on_hand FROM products WHERE sku = $1")
            .bind(sku.as_str())
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get::<i64, _>("on_hand"))
            .transpose()?
            .unwrap_or(0);
        Ok(Err(Shortage {
            sku: sku.clone(),
            requested: qty,
            available,
        }))
    }

    /// How an amendable deduction was decided, as stored.
    async fn decided(self, order: &OrderInput) -> Result<Deducted> {
        if let Some(record) = self.store.amendments().get(&order.order_id).await? {
            return Ok(Deducted::Amended(record.amendment));
        }
        Ok(match self.deduction(&order.order_id).await? {
            Ok(()) => Deducted::Full,
            Err(shortage) => Deducted::Short(shortage),
        })
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

    /// Compensation of `ProcessInventory`: puts back what the order deducted,
    /// each unit into the warehouse it came from, and records
    /// `InventoryReleased`. Nothing deducted, or already put back: nothing
    /// to do. Returns whether this call put stock back.
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
            let allocations = allocation_of(&mut tx, &id).await?;
            let mut per_sku: BTreeMap<&Sku, i64> = BTreeMap::new();
            for line in allocations.iter().flat_map(|a| &a.lines) {
                *per_sku.entry(&line.sku).or_insert(0) += line.quantity;
            }
            // Product rows first, in sku order, as every writer does.
            for (sku, qty) in per_sku {
                let level = sqlx::query(&format!(
                    "UPDATE products SET on_hand = on_hand + $1 WHERE sku = $2 \
                     RETURNING {LEVEL_COLUMNS}"
                ))
                .bind(qty)
                .bind(sku.as_str())
                .fetch_one(&mut *tx)
                .await?;
                let cause = format!("release:{id}");
                monitor_low_stock(&mut tx, self.store.events, sku, &level, &cause, now).await?;
            }
            for allocation in &allocations {
                let warehouse = &allocation.warehouse_id;
                for line in &allocation.lines {
                    put_into(&mut tx, warehouse, &line.sku, line.quantity).await?;
                    let movement_id = format!("{id}/release/{}/{warehouse}", line.sku);
                    record_movement(
                        &mut tx,
                        &movement_id,
                        &line.sku,
                        line.quantity,
                        (Movement::Release, warehouse),
                        Some(&id),
                        now,
                    )
                    .await?;
                }
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

    /// Where the order's deducted stock came from: one entry per
    /// warehouse, in the fixed warehouse order (empty when nothing was
    /// deducted). Kept after a release, which put the same units back.
    pub async fn allocation(self, order_id: &OrderId) -> Result<Vec<WarehouseAllocation>> {
        let mut conn = self.store.pool.acquire().await?;
        allocation_of(&mut conn, &order_id.to_string()).await
    }

    /// What the order's deduction left, read back on one connection.
    pub async fn deducted(self, order_id: &OrderId) -> Result<DeductedStock> {
        let mut conn = self.store.pool.acquire().await?;
        let mut low_stock_alerts = low_stock_notices(&mut conn, &order_cause(order_id)).await?;
        // In the deduction's order (the database's collation may differ).
        low_stock_alerts.sort_by(|a, b| a.sku.cmp(&b.sku));
        let allocations = allocation_of(&mut conn, &order_id.to_string()).await?;
        Ok(DeductedStock {
            low_stock_alerts,
            allocations,
        })
    }

    /// A product's stock per warehouse (warehouses that hold or held it),
    /// in the fixed warehouse order.
    pub async fn warehouse_levels(self, sku: &Sku) -> Result<Vec<(WarehouseId, i64)>> {
        sqlx::query(
            "SELECT s.warehouse_id, s.on_hand FROM warehouse_stock s \
             JOIN warehouses w ON w.warehouse_id = s.warehouse_id \
             WHERE s.sku = $1 ORDER BY w.sort_order, w.warehouse_id",
        )
        .bind(sku.as_str())
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(|row| Ok((parse_col(row, "warehouse_id")?, row.try_get("on_hand")?)))
        .collect()
    }

    /// The sum of a product's ledger entries in one warehouse (must equal
    /// that warehouse's stock of it).
    pub async fn warehouse_ledger_balance(self, warehouse: &WarehouseId, sku: &Sku) -> Result<i64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(delta), 0) AS BIGINT) AS balance \
             FROM stock_movements WHERE sku = $1 AND warehouse_id = $2",
        )
        .bind(sku.as_str())
        .bind(warehouse.as_str())
        .fetch_one(&self.store.pool)
        .await?;
        Ok(row.try_get("balance")?)
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

/// Writes one ledger entry (why, in which warehouse), keyed by
/// `movement_id` so a step never writes it twice.
async fn record_movement(
    tx: &mut Tx,
    movement_id: &str,
    sku: &Sku,
    delta: i64,
    (movement, warehouse): (Movement, &WarehouseId),
    order_id: Option<&str>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO stock_movements \
         (movement_id, sku, delta, reason, order_id, created_at, warehouse_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(movement_id)
    .bind(sku.as_str())
    .bind(delta)
    .bind(movement.as_str())
    .bind(order_id)
    .bind(now)
    .bind(warehouse.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Opens the warehouse if it is new: last in the fixed warehouse order.
async fn open_warehouse(tx: &mut Tx, warehouse: &WarehouseId, now: i64) -> Result<()> {
    // `WHERE true`: SQLite's parser needs it between SELECT and ON CONFLICT.
    sqlx::query(
        "INSERT INTO warehouses (warehouse_id, sort_order, created_at) \
         SELECT $1, COALESCE(MAX(sort_order), 0) + 1, $2 FROM warehouses WHERE true \
         ON CONFLICT (warehouse_id) DO NOTHING",
    )
    .bind(warehouse.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Raises a warehouse's stock of a product (the product's row is updated,
/// and so locked, by the caller first).
async fn put_into(tx: &mut Tx, warehouse: &WarehouseId, sku: &Sku, qty: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO warehouse_stock (warehouse_id, sku, on_hand) VALUES ($1, $2, $3) \
         ON CONFLICT (warehouse_id, sku) DO UPDATE SET on_hand = warehouse_stock.on_hand + $3",
    )
    .bind(warehouse.as_str())
    .bind(sku.as_str())
    .bind(qty)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Lowers a warehouse's stock of a product by what the allocation took;
/// the allocation read it under the product's lock, so it is there.
async fn take_from(tx: &mut Tx, warehouse: &WarehouseId, sku: &Sku, qty: i64) -> Result<()> {
    let took = sqlx::query(
        "UPDATE warehouse_stock SET on_hand = on_hand - $1 \
         WHERE warehouse_id = $2 AND sku = $3 AND on_hand >= $1",
    )
    .bind(qty)
    .bind(warehouse.as_str())
    .bind(sku.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if took != 1 {
        return Err(short_of_allocation(warehouse, sku));
    }
    Ok(())
}

/// A warehouse found holding less than its allocation, which was read
/// under the product's lock: the stock rows disagree with themselves.
fn short_of_allocation(warehouse: &WarehouseId, sku: &Sku) -> StoreError {
    corrupt(format!(
        "warehouse {warehouse} holds less {sku} than allocated"
    ))
}

/// Allocates `wanted` over the warehouses (the product rows are locked
/// and their totals checked by the caller), takes the units from each,
/// records the allocation and its ledger entries, and returns it.
async fn take_allocated(
    tx: &mut Tx,
    id: &str,
    wanted: &BTreeMap<Sku, i64>,
    now: i64,
) -> Result<Vec<WarehouseAllocation>> {
    let stock = warehouse_stock(tx, wanted).await?;
    let plan = allocate(wanted, &stock).ok_or_else(|| {
        corrupt(format!(
            "order {id}: warehouse stock does not add up to the products' on-hand"
        ))
    })?;
    for allocation in &plan {
        let warehouse = &allocation.warehouse_id;
        for line in &allocation.lines {
            let movement_id = format!("{id}/deduct/{}/{warehouse}", line.sku);
            if tx.backend() == Backend::Postgres {
                take_in_one_statement(tx, id, warehouse, line, &movement_id, now).await?;
                continue;
            }
            take_from(tx, warehouse, &line.sku, line.quantity).await?;
            sqlx::query(
                "INSERT INTO inventory_allocations (order_id, warehouse_id, sku, quantity) \
                     VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(warehouse.as_str())
            .bind(line.sku.as_str())
            .bind(line.quantity)
            .execute(&mut **tx)
            .await?;
            record_movement(
                tx,
                &movement_id,
                &line.sku,
                -line.quantity,
                (Movement::Order, warehouse),
                Some(id),
                now,
            )
            .await?;
        }
    }
    Ok(plan)
}

/// One line of [`take_allocated`] on PostgreSQL: the units taken from the
/// warehouse, the allocation and its ledger entry in one round trip. The
/// two inserts read the update's row, so they write only what it took;
/// took nothing: an error, and the caller's transaction rolls back.
async fn take_in_one_statement(
    tx: &mut Tx,
    id: &str,
    warehouse: &WarehouseId,
    line: &ShipmentLine,
    movement_id: &str,
    now: i64,
) -> Result<()> {
    let took: i64 = sqlx::query(
        "WITH t AS (UPDATE warehouse_stock SET on_hand = on_hand - $1 \
         WHERE warehouse_id = $2 AND sku = $3 AND on_hand >= $1 RETURNING warehouse_id, sku), \
         a AS (INSERT INTO inventory_allocations (order_id, warehouse_id, sku, quantity) \
         SELECT $4, warehouse_id, sku, $1 FROM t), \
         m AS (INSERT INTO stock_movements \
         (movement_id, sku, delta, reason, order_id, created_at, warehouse_id) \
         SELECT $5, sku, -$1, $6, $4, $7, warehouse_id FROM t) \
         SELECT COUNT(*) AS took FROM t",
    )
    .bind(line.quantity)
    .bind(warehouse.as_str())
    .bind(line.sku.as_str())
    .bind(id)
    .bind(movement_id)
    .bind(Movement::Order.as_str())
    .bind(now)
    .fetch_one(&mut **tx)
    .await?
    .try_get("took")?;
    if took != 1 {
        return Err(short_of_allocation(warehouse, &line.sku));
    }
    Ok(())
}

/// The stock of the wanted products in each warehouse holding some, in
/// the fixed warehouse order.
async fn warehouse_stock(tx: &mut Tx, wanted: &BTreeMap<Sku, i64>) -> Result<Vec<WarehouseStock>> {
    let mut by_warehouse: BTreeMap<(i64, WarehouseId), BTreeMap<Sku, i64>> = BTreeMap::new();
    for sku in wanted.keys() {
        let rows = sqlx::query(
            "SELECT s.warehouse_id, w.sort_order, s.on_hand FROM warehouse_stock s \
             JOIN warehouses w ON w.warehouse_id = s.warehouse_id \
             WHERE s.sku = $1 AND s.on_hand > 0",
        )
        .bind(sku.as_str())
        .fetch_all(&mut **tx)
        .await?;
        for row in rows {
            let key = (row.try_get("sort_order")?, parse_col(&row, "warehouse_id")?);
            by_warehouse
                .entry(key)
                .or_default()
                .insert(sku.clone(), row.try_get("on_hand")?);
        }
    }
    Ok(by_warehouse
        .into_iter()
        .map(|((_, warehouse_id), on_hand)| WarehouseStock {
            warehouse_id,
            on_hand,
        })
        .collect())
}

/// An order's stored allocation, in the fixed warehouse order.
pub(crate) async fn allocation_of(
    conn: &mut sqlx::AnyConnection,
    order_id: &str,
) -> Result<Vec<WarehouseAllocation>> {
    let rows = sqlx::query(
        "SELECT a.warehouse_id, a.sku, a.quantity FROM inventory_allocations a \
         JOIN warehouses w ON w.warehouse_id = a.warehouse_id \
         WHERE a.order_id = $1 ORDER BY w.sort_order, a.warehouse_id, a.sku",
    )
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut allocations: Vec<WarehouseAllocation> = Vec::new();
    for row in rows {
        let warehouse_id: WarehouseId = parse_col(&row, "warehouse_id")?;
        let line = ShipmentLine {
            sku: parse_col(&row, "sku")?,
            quantity: row.try_get("quantity")?,
        };
        match allocations.last_mut() {
            Some(last) if last.warehouse_id == warehouse_id => last.lines.push(line),
            _ => allocations.push(WarehouseAllocation {
                warehouse_id,
                lines: vec![line],
            }),
        }
    }
    // Lines by sku as the allocation made them (the database's collation
    // may order text otherwise).
    for allocation in &mut allocations {
        allocation.lines.sort_by(|a, b| a.sku.cmp(&b.sku));
    }
    Ok(allocations)
}

/// The cause an order's deduction gives its low-stock alerts.
fn order_cause(order_id: impl std::fmt::Display) -> String {
    format!("order:{order_id}")
}

/// What opening a deduction found.
enum Opened {
    /// Claimed, and the order is pending: its lines.
    Pending(Vec<LineRecord>),
    /// An earlier attempt claimed the deduction and decided it.
    Decided,
    /// Claimed, but the order is no longer pending (or not stored).
    Ended,
}

const CLAIM_DEDUCTION: &str = "INSERT INTO inventory_deductions (order_id, status, created_at) \
     VALUES ($1, $2, $3) ON CONFLICT (order_id) DO NOTHING";

/// [`Stock::open_deduction`] on PostgreSQL: the claim, the lock and the
/// lines in one round trip. The update reads the claim's row, so it runs
/// after the claim, as in [`open_step_by_step`]: the deduction's key is
/// taken before the order's row, and a retry that finds it taken locks
/// nothing. The lines are a row each (none: a row of NULLs).
async fn open_in_one_statement(tx: &mut Tx, id: &str, now: i64) -> Result<Opened> {
    let sql = format!(
        "WITH claim AS ({CLAIM_DEDUCTION} RETURNING order_id), \
         locked AS (UPDATE orders SET updated_at = updated_at \
         WHERE order_id IN (SELECT order_id FROM claim) AND status = $4 RETURNING order_id) \
         SELECT (SELECT COUNT(*) FROM claim) AS claimed, \
         (SELECT COUNT(*) FROM locked) AS pending, l.sku, l.quantity, l.unit_price_minor \
         FROM (SELECT 1 AS one) one \
         LEFT JOIN order_lines l ON l.order_id IN (SELECT order_id FROM locked) \
         ORDER BY l.line_no"
    );
    let rows = sqlx::query(&sql)
        .bind(id)
        .bind(Deduction::Deducted.as_str())
        .bind(now)
        .bind(OrderStatus::Pending.as_str())
        .fetch_all(&mut **tx)
        .await?;
    let Some(first) = rows.first() else {
        return Err(corrupt("opening a deduction returned no row"));
    };
    if first.try_get::<i64, _>("claimed")? == 0 {
        return Ok(Opened::Decided);
    }
    if first.try_get::<i64, _>("pending")? == 0 {
        return Ok(Opened::Ended);
    }
    let mut lines = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.try_get::<Option<String>, _>("sku")?.is_some() {
            lines.push(line_from_row(row)?);
        }
    }
    Ok(Opened::Pending(lines))
}

/// [`Stock::open_deduction`] on SQLite (no data-modifying CTEs; each
/// statement is a call into the process's own database).
async fn open_step_by_step(tx: &mut Tx, id: &str, now: i64) -> Result<Opened> {
    let claimed = sqlx::query(CLAIM_DEDUCTION)
        .bind(id)
        .bind(Deduction::Deducted.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected()
        == 1;
    if !claimed {
        return Ok(Opened::Decided);
    }
    let pending = sqlx::query(
        "UPDATE orders SET updated_at = updated_at WHERE order_id = $1 AND status = $2",
    )
    .bind(id)
    .bind(OrderStatus::Pending.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if !pending {
        return Ok(Opened::Ended);
    }
    Ok(Opened::Pending(lines_of(tx, id).await?))
}

/// Units wanted per sku (an order may name a sku on several lines), sorted.
fn wanted_per_sku(lines: &[LineRecord]) -> BTreeMap<Sku, i64> {
    let mut wanted = BTreeMap::new();
    for l in lines {
        *wanted.entry(l.sku.clone()).or_insert(0) += l.quantity;
    }
    wanted
}
