//! The shop database: products, stock ledger, orders, payments, status
//! history, outbox, notifications and shipments.
//!
//! The shop's own data in SQLite (embedded default) or PostgreSQL, through
//! one `sqlx::AnyPool` and portable SQL.
//!
//! Every write here is idempotent, keyed by order id or `transactionId`: each
//! step first claims its row (`INSERT .. ON CONFLICT DO NOTHING` or a guarded
//! `UPDATE .. WHERE status = ..`) and only the claimant writes the effects and
//! the event, so a retried activity has no second effect.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ordersaga_domain::{
    Currency, CustomerId, FailureReason, Money, OrderEvent, OrderId, OrderInput, OrderStatus,
    Outgoing, PaymentStatus, Sku, TransactionId,
};
use sqlx::any::{AnyPoolOptions, AnyRow};

mod catalog;
mod notifications;
mod outbox;
mod shipments;
use catalog::{LEVEL_COLUMNS, monitor_low_stock};
pub use catalog::{LowStockAlert, NewProduct, NewStockReceipt, StockReceipt};
pub use notifications::{NotificationRecord, NotificationStatus};
pub(crate) use outbox::enqueue;
pub use outbox::{OutboxEntry, OutboxState};
pub use shipments::ShipmentRecord;
use sqlx::{AnyPool, Executor, Row};

/// What can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement (retryable in activities).
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Applying the schema migrations failed.
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A file next to the SQLite database could not be made or locked.
    #[error("{}", .0.display())]
    Io(PathBuf, #[source] std::io::Error),
    /// The URL names no supported database.
    #[error("unsupported database URL {0:?}: use sqlite:// or postgres://")]
    UnsupportedUrl(String),
    /// The order is not in the store.
    #[error("order {0} is not in the store")]
    OrderNotFound(OrderId),
    /// A product with this sku exists already.
    #[error("product {0} already exists")]
    ProductExists(Sku),
    /// No product has this sku.
    #[error("product {0} not found")]
    UnknownProduct(Sku),
    /// Only a customer with a confirmed order for the product may rate it.
    #[error("customer {customer} has no confirmed order for {sku}")]
    NotABuyer {
        /// Who tried to rate.
        customer: CustomerId,
        /// What they tried to rate.
        sku: Sku,
    },
    /// A stored value does not parse back (a bug or a hand-edited row).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// A store call's result.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database the pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (the embedded default).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A product as the catalog shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// Stock keeping unit.
    pub sku: Sku,
    /// Display name.
    pub name: String,
    /// Current price.
    pub price: Money,
    /// Units on hand (sum of the stock ledger).
    pub on_hand: i64,
    /// At or below this many units on hand, the merchant is alerted.
    pub low_stock_threshold: i64,
    /// Sum of all current ratings' stars.
    pub rating_sum: i64,
    /// How many customers rated it.
    pub rating_count: i64,
}

impl Product {
    /// Mean stars, when anyone rated it.
    pub fn rating_average(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)] // star sums are far below 2^52
        (self.rating_count > 0).then(|| self.rating_sum as f64 / self.rating_count as f64)
    }
}

/// One stored line of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRecord {
    /// The product.
    pub sku: Sku,
    /// Units ordered.
    pub quantity: i64,
    /// Price per unit when ordered, in the order's currency.
    pub unit_price_minor: i64,
}

/// The stored payment of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    /// The payment's `transactionId`.
    pub transaction_id: TransactionId,
    /// Where the payment is.
    pub status: PaymentStatus,
    /// Amount charged or to charge.
    pub amount: Money,
    /// The gateway's reason, when declined.
    pub decline_reason: Option<String>,
    /// Checkout payments: where the buyer approves it.
    pub approval_url: Option<String>,
}

/// Where the buyer of a checkout payment pays: the gateway's order and its
/// approval link (for the "order received" email and `GetOrder`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentLink {
    /// The gateway's order id (PayPal's order id, the approval page's token).
    pub gateway_order_id: String,
    /// The buyer's approval page.
    pub approval_url: String,
}

/// One entry of an order's status history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The domain event.
    pub event: OrderEvent,
    /// Human-readable detail (e.g. the failure reason).
    pub detail: Option<String>,
    /// When it happened, Unix ms.
    pub occurred_at_ms: i64,
}

/// An order's header as lists show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSummary {
    /// The order.
    pub order_id: OrderId,
    /// Who placed it.
    pub customer_id: CustomerId,
    /// Its payment's transaction id.
    pub transaction_id: TransactionId,
    /// Current status.
    pub status: OrderStatus,
    /// Sum of the lines.
    pub total: Money,
    /// Failure code (`PAYMENT_DECLINED`, ...) when failed.
    pub failure_code: Option<String>,
    /// Failure reason in words when failed.
    pub failure_reason: Option<String>,
    /// Placed at, Unix ms.
    pub created_at_ms: i64,
    /// Last change, Unix ms.
    pub updated_at_ms: i64,
}

/// Everything known about one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    /// The header.
    pub summary: OrderSummary,
    /// Its lines, in order.
    pub lines: Vec<LineRecord>,
    /// Its payment, once created.
    pub payment: Option<PaymentRecord>,
    /// Its status history, oldest first.
    pub events: Vec<EventRecord>,
}

/// Filter and page of [`Store::list_orders`].
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    /// Only this customer's orders.
    pub customer_id: Option<CustomerId>,
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
    /// At most this many (clamped to 1..=100).
    pub limit: u32,
    /// Continue after this cursor (from a previous page).
    pub after: Option<OrderCursor>,
}

/// Position in a newest-first list keyed by order: orders, and shipments
/// (one per order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderCursor {
    /// When the last row of the page was created, Unix ms.
    pub created_at_ms: i64,
    /// The last row's order id (ties on the time).
    pub order_id: OrderId,
}

impl OrderCursor {
    /// The opaque page token form.
    pub fn to_token(&self) -> String {
        format!("{}.{}", self.created_at_ms, self.order_id)
    }

    /// Parses a page token made by [`Self::to_token`].
    pub fn from_token(token: &str) -> Option<Self> {
        let (ms, id) = token.split_once('.')?;
        Some(Self {
            created_at_ms: ms.parse().ok()?,
            order_id: OrderId::parse(id).ok()?,
        })
    }
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

/// Handle to the shop database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// The file an `sqlite://` URL names, if it names one (not `:memory:`).
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
}

/// Holds an exclusive lock on `<db>.migrate-lock` until dropped.
async fn sqlite_migration_lock(url: &str) -> Result<Option<std::fs::File>> {
    let Some(db) = sqlite_path(url) else {
        return Ok(None);
    };
    let mut name = db.into_os_string();
    name.push(".migrate-lock");
    let path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::Io(path.clone(), e))?;
    // Blocks until the other process's migrations are done.
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| StoreError::Io(path.clone(), std::io::Error::other(e)))?
        .map(Some)
        .map_err(|e| StoreError::Io(path, e))
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A stored value that does not parse back.
pub fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn parse_col<T: std::str::FromStr>(row: &AnyRow, col: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    let text: String = row.try_get(col)?;
    text.parse::<T>()
        .map_err(|e| corrupt(format!("{col}: {e}")))
}

fn money(row: &AnyRow, minor: &str) -> Result<Money> {
    let currency = Currency::parse(&row.try_get::<String, _>("currency")?).map_err(corrupt)?;
    Ok(Money::new(row.try_get(minor)?, currency))
}

macro_rules! impl_fromstr_for_id {
    ($($t:ty),*) => {$(
        impl IdText for $t {
            fn from_text(s: &str) -> Result<Self> { <$t>::parse(s).map_err(corrupt) }
        }
    )*};
}
pub(crate) trait IdText: Sized {
    fn from_text(s: &str) -> Result<Self>;
}
impl_fromstr_for_id!(OrderId, TransactionId, CustomerId, Sku);

pub(crate) fn id_col<T: IdText>(row: &AnyRow, col: &str) -> Result<T> {
    T::from_text(&row.try_get::<String, _>(col)?)
}

impl Store {
    /// Connects, applies migrations, and tunes SQLite for concurrent use
    /// (WAL, a busy timeout). `url` is `sqlite://path?mode=rwc` or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.chars().take(40).collect()));
        };
        if backend == Backend::Sqlite
            && let Some(dir) = sqlite_path(url).and_then(|p| p.parent().map(Path::to_path_buf))
            && !dir.as_os_str().is_empty()
        {
            // A fresh checkout has no `.data/` yet; SQLite will not create it.
            std::fs::create_dir_all(&dir).map_err(|e| StoreError::Io(dir.clone(), e))?;
        }
        let max = if backend == Backend::Sqlite { 8 } else { 16 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the one writer; NORMAL is
                        // durable across process crashes (only power loss can
                        // drop the last commits). Waiting on a busy lock beats
                        // failing the activity.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        // PostgreSQL serialises migrations with an advisory lock; sqlx has no
        // such lock for SQLite, so a worker and an API starting together
        // would both apply a migration. A file lock stands in for it.
        let _guard = match backend {
            Backend::Sqlite => sqlite_migration_lock(url).await?,
            Backend::Postgres => None,
        };
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool, backend })
    }

    /// The database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for the simulated gateway that keeps its books beside ours.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a write transaction. On SQLite it takes the write lock up
    /// front (`BEGIN IMMEDIATE`), so a read-then-write transaction waits for
    /// the lock instead of failing with `SQLITE_BUSY` half-way.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Closes the pool, waiting for connections in use.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ----- catalog -------------------------------------------------------

    pub(crate) fn product_from_row(row: &AnyRow) -> Result<Product> {
        Ok(Product {
            sku: id_col(row, "sku")?,
            name: row.try_get("name")?,
            price: money(row, "price_minor")?,
            on_hand: row.try_get("on_hand")?,
            low_stock_threshold: row.try_get("low_stock_threshold")?,
            rating_sum: row.try_get("rating_sum")?,
            rating_count: row.try_get("rating_count")?,
        })
    }

    /// All products, by sku.
    pub async fn list_products(&self) -> Result<Vec<Product>> {
        sqlx::query(&format!("{PRODUCT_SELECT} ORDER BY sku"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(Self::product_from_row)
            .collect()
    }

    /// One product, if it exists.
    pub async fn product(&self, sku: &Sku) -> Result<Option<Product>> {
        sqlx::query(&format!("{PRODUCT_SELECT} WHERE sku = $1"))
            .bind(sku.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(Self::product_from_row)
            .transpose()
    }

    /// The sum of a product's stock ledger (must equal its on-hand).
    pub async fn ledger_balance(&self, sku: &Sku) -> Result<i64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(delta), 0) AS BIGINT) AS balance \
             FROM stock_movements WHERE sku = $1",
        )
        .bind(sku.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("balance")?)
    }

    // ----- saga steps ----------------------------------------------------

    /// `PlaceOrder`: stores the order `PENDING` with its lines, records
    /// `OrderPlaced` and commits `outgoing` to the outbox with it. Returns
    /// whether this call created the order.
    pub async fn place_order(&self, order: &OrderInput, outgoing: &[Outgoing]) -> Result<bool> {
        let now = now_ms();
        let id = order.order_id.to_string();
        let mut tx = self.begin_write().await?;
        let created = sqlx::query(
            "INSERT INTO orders (order_id, customer_id, transaction_id, status, total_minor, \
             currency, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(&id)
        .bind(order.customer_id.as_str())
        .bind(order.transaction_id.to_string())
        .bind(OrderStatus::Pending.as_str())
        .bind(order.total.minor)
        .bind(order.total.currency.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if created {
            for (n, line) in order.lines.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_minor) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&id)
                .bind(i64::try_from(n).unwrap_or(i64::MAX))
                .bind(line.sku.as_str())
                .bind(line.quantity)
                .bind(line.unit_price.minor)
                .execute(&mut *tx)
                .await?;
            }
            insert_event(&mut tx, &id, OrderEvent::OrderPlaced, None, now).await?;
        }
        enqueue(&mut tx, outgoing, now).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// First half of `ProcessPayment`: the payment exists `PENDING` with the
    /// order's `transactionId`. Returns the payment as it now stands.
    pub async fn ensure_payment(
        &self,
        order_id: &OrderId,
        transaction_id: &TransactionId,
        amount: Money,
    ) -> Result<PaymentRecord> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO payments (transaction_id, order_id, amount_minor, currency, status, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (transaction_id) DO NOTHING",
        )
        .bind(transaction_id.to_string())
        .bind(order_id.to_string())
        .bind(amount.minor)
        .bind(amount.currency.as_str())
        .bind(PaymentStatus::Pending.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.payment_of(order_id)
            .await?
            .ok_or(StoreError::OrderNotFound(*order_id))
    }

    /// Second half of `ProcessPayment`: records the gateway's answer once
    /// (`PaymentProcessed` or `PaymentProcessFailed`). A payment already
    /// settled keeps its status. Returns the payment as it now stands.
    pub async fn record_payment_outcome(
        &self,
        order_id: &OrderId,
        outcome: std::result::Result<(), &str>,
    ) -> Result<PaymentRecord> {
        let now = now_ms();
        let (status, event, reason) = match outcome {
            Ok(()) => (PaymentStatus::Captured, OrderEvent::PaymentProcessed, None),
            Err(r) => (
                PaymentStatus::Declined,
                OrderEvent::PaymentProcessFailed,
                Some(r),
            ),
        };
        let id = order_id.to_string();
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE payments SET status = $1, decline_reason = $2, updated_at = $3 \
             WHERE order_id = $4 AND status = $5",
        )
        .bind(status.as_str())
        .bind(reason)
        .bind(now)
        .bind(&id)
        .bind(PaymentStatus::Pending.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if changed {
            insert_event(&mut tx, &id, event, reason, now).await?;
        }
        tx.commit().await?;
        self.payment_of(order_id)
            .await?
            .ok_or(StoreError::OrderNotFound(*order_id))
    }

    /// Checkout's `OpenPayment`: the payment exists `PENDING` with the
    /// order's `transactionId`, the gateway's order id and the buyer's
    /// approval link. Idempotent; a settled payment keeps its status.
    pub async fn open_checkout_payment(
        &self,
        order_id: &OrderId,
        transaction_id: &TransactionId,
        amount: Money,
        link: &PaymentLink,
        outgoing: &[Outgoing],
    ) -> Result<PaymentRecord> {
        self.ensure_payment(order_id, transaction_id, amount)
            .await?;
        // The link and the email that carries it commit together.
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE payments SET gateway_order_id = $1, approval_url = $2 \
             WHERE order_id = $3 AND gateway_order_id IS NULL",
        )
        .bind(&link.gateway_order_id)
        .bind(&link.approval_url)
        .bind(order_id.to_string())
        .execute(&mut *tx)
        .await?;
        enqueue(&mut tx, outgoing, now_ms()).await?;
        tx.commit().await?;
        self.payment_of(order_id)
            .await?
            .ok_or(StoreError::OrderNotFound(*order_id))
    }

    /// Records that a pending payment was never approved and its gateway
    /// order is voided (`PaymentProcessFailed` with `reason`), once.
    /// Returns whether this call recorded it.
    pub async fn record_payment_voided(&self, order_id: &OrderId, reason: &str) -> Result<bool> {
        let now = now_ms();
        let id = order_id.to_string();
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE payments SET status = $1, decline_reason = $2, updated_at = $3 \
             WHERE order_id = $4 AND status = $5",
        )
        .bind(PaymentStatus::Voided.as_str())
        .bind(reason)
        .bind(now)
        .bind(&id)
        .bind(PaymentStatus::Pending.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if changed {
            insert_event(
                &mut tx,
                &id,
                OrderEvent::PaymentProcessFailed,
                Some(reason),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// The approval link of an order's checkout payment, if it has one.
    pub async fn payment_link(&self, order_id: &OrderId) -> Result<Option<PaymentLink>> {
        let row = sqlx::query(
            "SELECT gateway_order_id, approval_url FROM payments \
             WHERE order_id = $1 AND gateway_order_id IS NOT NULL AND approval_url IS NOT NULL",
        )
        .bind(order_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(PaymentLink {
                gateway_order_id: r.try_get("gateway_order_id")?,
                approval_url: r.try_get("approval_url")?,
            })
        })
        .transpose()
    }

    /// The order paid by `transaction_id` (a webhook names the payment, not
    /// the order).
    pub async fn order_of_transaction(
        &self,
        transaction_id: &TransactionId,
    ) -> Result<Option<OrderId>> {
        sqlx::query("SELECT order_id FROM orders WHERE transaction_id = $1")
            .bind(transaction_id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .map(|row| id_col(&row, "order_id"))
            .transpose()
    }

    /// Records the refund of a payment (`PaymentRefunded`) once.
    /// Returns whether this call recorded it.
    pub async fn record_refund(&self, order_id: &OrderId) -> Result<bool> {
        let now = now_ms();
        let id = order_id.to_string();
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE payments SET status = $1, updated_at = $2 \
             WHERE order_id = $3 AND status IN ($4, $5)",
        )
        .bind(PaymentStatus::Refunded.as_str())
        .bind(now)
        .bind(&id)
        .bind(PaymentStatus::Captured.as_str())
        .bind(PaymentStatus::Pending.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if changed {
            insert_event(&mut tx, &id, OrderEvent::PaymentRefunded, None, now).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// `ProcessInventory`: deducts stock for every line of the order in one
    /// transaction, all or nothing, and records `InventoryProcessed`; or,
    /// when a line is short, deducts nothing and records
    /// `InventoryProcessFailed`. The outcome is stored, so a retry answers
    /// the same and never deducts twice.
    pub async fn deduct_stock(&self, order_id: &OrderId) -> Result<Result<(), Shortage>> {
        let now = now_ms();
        let id = order_id.to_string();
        let mut tx = self.begin_write().await?;
        let claimed = sqlx::query(
            "INSERT INTO inventory_deductions (order_id, status, created_at) \
             VALUES ($1, 'DEDUCTED', $2) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(&id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !claimed {
            tx.rollback().await?;
            return self.deduction_outcome(order_id).await;
        }
        let wanted = wanted_per_sku(&self.lines_of(&id, &mut tx).await?);
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
            monitor_low_stock(&mut tx, sku, &level, &format!("order:{id}"), now).await?;
            sqlx::query(
                "INSERT INTO stock_movements (movement_id, sku, delta, reason, order_id, created_at) \
                 VALUES ($1, $2, $3, 'order', $4, $5)",
            )
            .bind(format!("{id}/deduct/{sku}"))
            .bind(sku.as_str())
            .bind(-*qty)
            .bind(&id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        insert_event(&mut tx, &id, OrderEvent::InventoryProcessed, None, now).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn record_shortage(
        &self,
        order_id: &OrderId,
        s: Shortage,
    ) -> Result<Result<(), Shortage>> {
        let now = now_ms();
        let id = order_id.to_string();
        let mut tx = self.begin_write().await?;
        let recorded = sqlx::query(
            "INSERT INTO inventory_deductions (order_id, status, short_sku, requested, available, \
             created_at) VALUES ($1, 'SHORT', $2, $3, $4, $5) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(&id)
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
            insert_event(
                &mut tx,
                &id,
                OrderEvent::InventoryProcessFailed,
                Some(&reason),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        self.deduction_outcome(order_id).await
    }

    async fn deduction_outcome(&self, order_id: &OrderId) -> Result<Result<(), Shortage>> {
        let row = sqlx::query(
            "SELECT status, short_sku, requested, available FROM inventory_deductions \
             WHERE order_id = $1",
        )
        .bind(order_id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::OrderNotFound(*order_id))?;
        let status: String = row.try_get("status")?;
        if status != "SHORT" {
            return Ok(Ok(()));
        }
        let sku: Option<String> = row.try_get("short_sku")?;
        Ok(Err(Shortage {
            sku: Sku::parse(&sku.unwrap_or_default()).map_err(corrupt)?,
            requested: row.try_get::<Option<i64>, _>("requested")?.unwrap_or(0),
            available: row.try_get::<Option<i64>, _>("available")?.unwrap_or(0),
        }))
    }

    /// Compensation of `ProcessInventory`: puts back what the order deducted
    /// and records `InventoryReleased`. Nothing deducted, or already put
    /// back: nothing to do. Returns whether this call put stock back.
    pub async fn release_stock(&self, order_id: &OrderId) -> Result<bool> {
        let now = now_ms();
        let id = order_id.to_string();
        let mut tx = self.begin_write().await?;
        let released = sqlx::query(
            "UPDATE inventory_deductions SET status = 'RELEASED' \
             WHERE order_id = $1 AND status = 'DEDUCTED'",
        )
        .bind(&id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if released {
            for (sku, qty) in wanted_per_sku(&self.lines_of(&id, &mut tx).await?) {
                let level = sqlx::query(&format!(
                    "UPDATE products SET on_hand = on_hand + $1 WHERE sku = $2 \
                     RETURNING {LEVEL_COLUMNS}"
                ))
                .bind(qty)
                .bind(sku.as_str())
                .fetch_one(&mut *tx)
                .await?;
                monitor_low_stock(&mut tx, &sku, &level, &format!("release:{id}"), now).await?;
                sqlx::query(
                    "INSERT INTO stock_movements (movement_id, sku, delta, reason, order_id, \
                     created_at) VALUES ($1, $2, $3, 'release', $4, $5)",
                )
                .bind(format!("{id}/release/{sku}"))
                .bind(sku.as_str())
                .bind(qty)
                .bind(&id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            insert_event(&mut tx, &id, OrderEvent::InventoryReleased, None, now).await?;
        }
        tx.commit().await?;
        Ok(released)
    }

    /// `ConfirmOrder`: `PENDING` -> `CONFIRMED`, `OrderConfirmed` once, and
    /// `outgoing` committed to the outbox with it. Returns the order's
    /// status afterwards.
    pub async fn confirm_order(
        &self,
        order_id: &OrderId,
        outgoing: &[Outgoing],
    ) -> Result<OrderStatus> {
        self.finish_order(order_id, OrderStatus::Confirmed, None, outgoing)
            .await
    }

    /// `FailOrder`: `PENDING` -> `FAILED` with its reason, `OrderFailed`
    /// once, and `outgoing` committed to the outbox with it. Returns the
    /// order's status afterwards.
    pub async fn fail_order(
        &self,
        order_id: &OrderId,
        reason: &FailureReason,
        outgoing: &[Outgoing],
    ) -> Result<OrderStatus> {
        self.finish_order(order_id, OrderStatus::Failed, Some(reason), outgoing)
            .await
    }

    async fn finish_order(
        &self,
        order_id: &OrderId,
        status: OrderStatus,
        reason: Option<&FailureReason>,
        outgoing: &[Outgoing],
    ) -> Result<OrderStatus> {
        let now = now_ms();
        let id = order_id.to_string();
        let text = reason.map(ToString::to_string);
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE orders SET status = $1, failure_code = $2, failure_reason = $3, \
             updated_at = $4 WHERE order_id = $5 AND status = $6",
        )
        .bind(status.as_str())
        .bind(reason.map(FailureReason::code))
        .bind(text.as_deref())
        .bind(now)
        .bind(&id)
        .bind(OrderStatus::Pending.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let event = match status {
            OrderStatus::Confirmed => Some(OrderEvent::OrderConfirmed),
            OrderStatus::Failed => Some(OrderEvent::OrderFailed),
            OrderStatus::Pending => None,
        };
        if let (true, Some(event)) = (changed, event) {
            insert_event(&mut tx, &id, event, text.as_deref(), now).await?;
        }
        let row = sqlx::query("SELECT status FROM orders WHERE order_id = $1")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::OrderNotFound(*order_id))?;
        let now_status = parse_col(&row, "status")?;
        // Also on a retry (the insert skips what is there), never for an
        // order that ended otherwise.
        if now_status == status {
            enqueue(&mut tx, outgoing, now).await?;
        }
        tx.commit().await?;
        Ok(now_status)
    }

    // ----- reads ---------------------------------------------------------

    async fn lines_of(
        &self,
        id: &str,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    ) -> Result<Vec<LineRecord>> {
        sqlx::query(
            "SELECT sku, quantity, unit_price_minor FROM order_lines \
             WHERE order_id = $1 ORDER BY line_no",
        )
        .bind(id)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(line_from_row)
        .collect()
    }

    async fn payment_of(&self, order_id: &OrderId) -> Result<Option<PaymentRecord>> {
        sqlx::query(
            "SELECT transaction_id, status, amount_minor, currency, decline_reason, \
             approval_url FROM payments WHERE order_id = $1",
        )
        .bind(order_id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| {
            Ok(PaymentRecord {
                transaction_id: id_col(&row, "transaction_id")?,
                status: parse_col(&row, "status")?,
                amount: money(&row, "amount_minor")?,
                decline_reason: row.try_get("decline_reason")?,
                approval_url: row.try_get("approval_url")?,
            })
        })
        .transpose()
    }

    /// Everything about one order, or `None` if it is not stored (yet).
    pub async fn get_order(&self, order_id: &OrderId) -> Result<Option<OrderRecord>> {
        let id = order_id.to_string();
        let Some(row) = sqlx::query(&format!("{SUMMARY_SELECT} WHERE order_id = $1"))
            .bind(&id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let summary = summary_from_row(&row)?;
        let lines = sqlx::query(
            "SELECT sku, quantity, unit_price_minor FROM order_lines \
             WHERE order_id = $1 ORDER BY line_no",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(line_from_row)
        .collect::<Result<_>>()?;
        let payment = self.payment_of(order_id).await?;
        let mut events =
            sqlx::query("SELECT event, detail, occurred_at FROM order_events WHERE order_id = $1")
                .bind(&id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| {
                    Ok(EventRecord {
                        event: parse_col(r, "event")?,
                        detail: r.try_get("detail")?,
                        occurred_at_ms: r.try_get("occurred_at")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
        // Events of one millisecond keep the saga's order.
        events.sort_by_key(|e| {
            let rank = OrderEvent::ALL.iter().position(|x| *x == e.event);
            (e.occurred_at_ms, rank)
        });
        Ok(Some(OrderRecord {
            summary,
            lines,
            payment,
            events,
        }))
    }

    /// Orders newest first, filtered, one page at a time. Returns the page
    /// and the cursor of the next page, if there is one.
    pub async fn list_orders(
        &self,
        q: &OrderQuery,
    ) -> Result<(Vec<OrderSummary>, Option<OrderCursor>)> {
        let limit = i64::from(q.limit.clamp(1, 100));
        let mut sql = format!("{SUMMARY_SELECT} WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if q.customer_id.is_some() {
            sql += &format!(" AND customer_id = {}", next());
        }
        if q.status.is_some() {
            sql += &format!(" AND status = {}", next());
        }
        if q.after.is_some() {
            let (a, b) = (next(), next());
            sql += &format!(" AND (created_at < {a} OR (created_at = {a} AND order_id < {b}))");
        }
        sql += &format!(" ORDER BY created_at DESC, order_id DESC LIMIT {}", next());
        let mut query = sqlx::query(&sql);
        if let Some(c) = &q.customer_id {
            query = query.bind(c.as_str());
        }
        if let Some(s) = q.status {
            query = query.bind(s.as_str());
        }
        if let Some(c) = q.after {
            query = query.bind(c.created_at_ms).bind(c.order_id.to_string());
        }
        let rows = query.bind(limit + 1).fetch_all(&self.pool).await?;
        let mut page = rows
            .iter()
            .map(summary_from_row)
            .collect::<Result<Vec<_>>>()?;
        let more = page.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        page.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let cursor = more.then(|| page.last()).flatten().map(|o| OrderCursor {
            created_at_ms: o.created_at_ms,
            order_id: o.order_id,
        });
        Ok((page, cursor))
    }
}

pub(crate) const PRODUCT_SELECT: &str = "SELECT sku, name, price_minor, currency, on_hand, \
     low_stock_threshold, rating_sum, rating_count FROM products";

const SUMMARY_SELECT: &str = "SELECT order_id, customer_id, transaction_id, status, total_minor, \
     currency, failure_code, failure_reason, created_at, updated_at FROM orders";

fn summary_from_row(row: &AnyRow) -> Result<OrderSummary> {
    Ok(OrderSummary {
        order_id: id_col(row, "order_id")?,
        customer_id: id_col(row, "customer_id")?,
        transaction_id: id_col(row, "transaction_id")?,
        status: parse_col(row, "status")?,
        total: money(row, "total_minor")?,
        failure_code: row.try_get("failure_code")?,
        failure_reason: row.try_get("failure_reason")?,
        created_at_ms: row.try_get("created_at")?,
        updated_at_ms: row.try_get("updated_at")?,
    })
}

fn line_from_row(row: &AnyRow) -> Result<LineRecord> {
    Ok(LineRecord {
        sku: id_col(row, "sku")?,
        quantity: row.try_get("quantity")?,
        unit_price_minor: row.try_get("unit_price_minor")?,
    })
}

/// Units wanted per sku (an order may name a sku on several lines), sorted.
fn wanted_per_sku(lines: &[LineRecord]) -> BTreeMap<Sku, i64> {
    let mut wanted = BTreeMap::new();
    for l in lines {
        *wanted.entry(l.sku.clone()).or_insert(0) += l.quantity;
    }
    wanted
}

pub(crate) async fn insert_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    order_id: &str,
    event: OrderEvent,
    detail: Option<&str>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO order_events (order_id, event, detail, occurred_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (order_id, event) DO NOTHING",
    )
    .bind(order_id)
    .bind(event.as_str())
    .bind(detail)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
