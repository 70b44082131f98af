//! The shop database: one repository per aggregate.
//!
//! [`Store`] owns the pool (SQLite, the embedded default, or PostgreSQL,
//! through one `sqlx::AnyPool` and portable SQL) and applies the migrations.
//! On SQLite, writes take a second pool of one connection: SQLite has one
//! writer at a time, and writers that race for its lock wait in its busy
//! handler, which sleeps 1 to 100 ms per try whether or not the lock has
//! come free; queued on one connection they run back to back.
//! Its handles are the repositories, each in a module of its own:
//!
//! - [`Store::orders`]: orders, their lines and status history.
//! - [`Store::attention`]: compensations parked for an operator.
//! - [`Store::payments`]: the orders' payments and, beside them, the books
//!   of the simulated payment gateway.
//! - [`Store::catalog`]: products, ratings and the catalog's events.
//! - [`Store::stock`]: the stock ledger (receipts, deductions, releases)
//!   and its low-stock alerts.
//! - [`Store::outbox`]: messages for the notifications and shipping services.
//! - [`Store::event_outbox`]: domain events waiting for the NATS relay
//!   (written only when [`Store::with_events`] is on).
//! - [`Store::notifications`], [`Store::shipments`]: those services' records.
//! - [`Store::findings`]: the reconciler's checks across orders and what
//!   it found (the needs-attention list).
//! - [`Store::idempotency_keys`]: which request each `PlaceOrder` key
//!   belongs to.
//! - [`Store::spending`]: customers' spending limits and the orders'
//!   reservations against them.
//! - [`Store::webhook_events`]: which payment webhooks were already
//!   signalled to their saga.
//!
//! Every write is idempotent, keyed by order id or `transactionId`: each
//! step first claims its row (`INSERT .. ON CONFLICT DO NOTHING` or a guarded
//! `UPDATE .. WHERE status IN ..`) and only the claimant writes the effects
//! and the event, so a retried activity has no second effect. The guards of
//! status changes come from the domain's rules
//! ([`ordersaga_domain::PaymentStatus::can_become`], ...), not from SQL of
//! their own.
//!
//! Each repository call the saga, the relays and the API make runs in a
//! `db` span at `debug` (named `<repository>.<method>`): off in the log by
//! default, in the order's trace when traces are on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ordersaga_domain::{CustomerId, OrderId, OrderStatus, Sku};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Connection, Executor};

mod amendments;
mod attention;
mod catalog;
mod db;
mod events;
mod findings;
mod idempotency;
mod low_stock;
mod notifications;
mod orders;
mod outbox;
mod page;
mod payments;
mod shipments;
mod spending;
mod stock;
mod webhook_events;

pub use amendments::{AmendmentRecord, Amendments};
pub use attention::{Attention, AttentionRecord};
pub use catalog::{Catalog, CatalogEventRecord, NewProduct, Product};
pub use db::now_ms;
pub use events::{EventOutbox, StoredEvent};
pub use findings::{FindingRecord, Findings, StuckMessage};
pub use idempotency::{Claimed, IdempotencyKeys, KeyClaim};
pub use low_stock::LowStockAlertRecord;
pub use notifications::{EmailAttempt, NotificationRecord, NotificationStatus, Notifications};
pub use orders::{Ended, EventRecord, LineRecord, OrderQuery, OrderRecord, OrderSummary, Orders};
pub use outbox::{Outbox, OutboxClaim, OutboxEntry, OutboxState, OutboxStatus, Quarantined};
pub use page::{AlertCursor, OrderCursor, PageCursor, ShipmentCursor};
pub use payments::{GatewayBooks, GatewayLedger, PaymentLink, PaymentRecord, Payments};
pub use shipments::{Moved, ShipmentRecord, Shipments};
pub use spending::{Spending, SpendingLimitRecord};
pub use stock::{Deducted, DeductedStock, NewStockReceipt, Shortage, Stock, StockReceipt};
pub use webhook_events::{WebhookClaim, WebhookEvents};

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
    /// The URL names no supported database. Only its scheme is kept: the
    /// rest may hold a password.
    #[error("unsupported database URL scheme {0:?}: use sqlite:// or postgres://")]
    UnsupportedUrl(String),
    /// The order is not in the store.
    #[error("order {0} is not in the store")]
    OrderNotFound(OrderId),
    /// The order is no longer `PENDING` (it ended, e.g. failed by a
    /// cancellation): a step refused to act on it.
    #[error("order {order_id} is {status}, not pending")]
    OrderEnded {
        /// The order.
        order_id: OrderId,
        /// The status the step found.
        status: OrderStatus,
    },
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
    /// An idempotency key was reused for a different request; the first
    /// request's effects stand and nothing else was stored.
    #[error("idempotency key {0:?} was already used for a different request")]
    KeyReused(String),
    /// A stored value does not parse back (a bug or a hand-edited row).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// One call recorded the same email twice; nothing was written.
    #[error("the {stage} email of {subject_id} twice in one record")]
    EmailTwice {
        /// The email's subject.
        subject_id: String,
        /// The email's stage.
        stage: ordersaga_domain::EmailStage,
    },
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

/// How long a pooled connection may sit idle before it is pinged on its
/// way out of the pool (see `Store::connect`).
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Handle to the shop database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    /// Reads (and, on PostgreSQL, everything).
    pool: AnyPool,
    /// Writes: on SQLite one connection, so this process's writers queue
    /// here in order; on PostgreSQL the same pool as `pool`.
    writer: AnyPool,
    backend: Backend,
    /// Whether steps write their domain events to the event outbox.
    events: bool,
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
            return Err(StoreError::UnsupportedUrl(url_scheme(url)));
        };
        if backend == Backend::Sqlite
            && let Some(dir) = sqlite_path(url).and_then(|p| p.parent().map(Path::to_path_buf))
            && !dir.as_os_str().is_empty()
        {
            // A fresh checkout has no `.data/` yet; SQLite will not create it.
            std::fs::create_dir_all(&dir).map_err(|e| StoreError::Io(dir.clone(), e))?;
        }
        let options = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(10))
                // sqlx pings every connection it hands out: one more round
                // trip per step under load, when connections come back within
                // milliseconds. Only one idle for a while (a database restart
                // or a firewall may have cut it since) is checked first.
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= PING_AFTER_IDLE {
                            conn.ping().await?;
                        }
                        Ok(true)
                    })
                })
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            // WAL lets readers run beside the one writer; NORMAL is
                            // durable across process crashes (only power loss can
                            // drop the last commits). Waiting on a busy lock (held
                            // by another process) beats failing the activity.
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                            )
                            .await?;
                        }
                        Ok(())
                    })
                })
        };
        let (pool, writer) = match backend {
            Backend::Sqlite => {
                let pool = options(8).connect(url).await?;
                let writer = options(1).connect(url).await?;
                (pool, writer)
            }
            Backend::Postgres => {
                let pool = options(16).connect(url).await?;
                (pool.clone(), pool)
            }
        };
        // PostgreSQL serialises migrations with an advisory lock; sqlx has no
        // such lock for SQLite, so a worker and an API starting together
        // would both apply a migration. A file lock stands in for it.
        let _guard = match backend {
            Backend::Sqlite => sqlite_migration_lock(url).await?,
            Backend::Postgres => None,
        };
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self {
            pool,
            writer,
            backend,
            events: false,
        })
    }

    /// `true`: every step also writes its domain events to the event
    /// outbox, for the relay to publish (`ORDERSAGA_NATS_URL` set);
    /// `false` (the default): no event rows are written.
    #[must_use]
    pub fn with_events(mut self, on: bool) -> Self {
        self.events = on;
        self
    }

    /// Whether steps write their domain events to the event outbox.
    pub fn publishes_events(&self) -> bool {
        self.events
    }

    /// The domain events waiting to be published, and the relay's lease.
    pub fn event_outbox(&self) -> EventOutbox<'_> {
        EventOutbox::new(self)
    }

    /// The database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pools, waiting for connections in use.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// Amended orders (partial availability).
    pub fn amendments(&self) -> Amendments<'_> {
        Amendments::new(self)
    }

    /// Orders, their lines and status history.
    pub fn orders(&self) -> Orders<'_> {
        Orders::new(self)
    }

    /// Compensations parked for an operator, and the orders that need one.
    pub fn attention(&self) -> Attention<'_> {
        Attention::new(self)
    }

    /// Which request each `PlaceOrder` idempotency key belongs to.
    pub fn idempotency_keys(&self) -> IdempotencyKeys<'_> {
        IdempotencyKeys::new(self)
    }

    /// The orders' payments, and the simulated gateway's books.
    pub fn payments(&self) -> Payments<'_> {
        Payments::new(self)
    }

    /// Products, ratings and the catalog's events.
    pub fn catalog(&self) -> Catalog<'_> {
        Catalog::new(self)
    }

    /// The stock ledger and its low-stock alerts.
    pub fn stock(&self) -> Stock<'_> {
        Stock::new(self)
    }

    /// The reconciler's checks across orders, and its findings.
    pub fn findings(&self) -> Findings<'_> {
        Findings::new(self)
    }

    /// Messages committed for the notifications and shipping services.
    pub fn outbox(&self) -> Outbox<'_> {
        Outbox::new(self)
    }

    /// The notifications service's record of every email.
    pub fn notifications(&self) -> Notifications<'_> {
        Notifications::new(self)
    }

    /// The shipping service's requests to the warehouse.
    pub fn shipments(&self) -> Shipments<'_> {
        Shipments::new(self)
    }

    /// Customers' spending limits and the orders' reservations.
    pub fn spending(&self) -> Spending<'_> {
        Spending::new(self)
    }

    /// Payment webhooks already signalled to their saga, by event id.
    pub fn webhook_events(&self) -> WebhookEvents<'_> {
        WebhookEvents::new(self)
    }

    /// Starts a write transaction. On SQLite it takes the write lock up
    /// front (`BEGIN IMMEDIATE`), so a read-then-write transaction waits for
    /// the lock instead of failing with `SQLITE_BUSY` half-way. Its domain
    /// events take their `seq` at the commit (`db::Tx::commit`).
    pub(crate) async fn begin_write(&self) -> Result<db::Tx> {
        let inner = match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer.begin().await?,
        };
        Ok(db::Tx::new(inner, self.backend))
    }
}

/// The scheme of a URL, for errors: at most 16 characters before the
/// first `:`, and nothing at all from a string that has none (it could be a
/// bare secret).
fn url_scheme(url: &str) -> String {
    match url.split_once(':') {
        Some((scheme, _)) if scheme.len() <= 16 => scheme.to_string(),
        _ => String::new(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unsupported_url_keeps_its_password_to_itself() {
        let err = Store::connect("mysql://shop:hunter2@db.internal:3306/shop")
            .await
            .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("\"mysql\""), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(url_scheme("hunter2"), "", "no scheme, nothing shown");
    }
}
