//! `ordersaga-payment-sandbox`: a payment gateway that speaks the subset of
//! PayPal's REST API the shop uses, so the saga's payment step can be run,
//! demonstrated and broken on purpose without PayPal.
//!
//! - [`api`]: PayPal Orders v2 / Payments v2 and OAuth2 (`/v1`, `/v2`),
//!   idempotent by `PayPal-Request-Id`, with PayPal's JSON and error shapes.
//! - [`page`]: the buyer's approval page (`/checkoutnow?token=...`), plain
//!   server-rendered HTML with Approve / Cancel.
//! - [`webhooks`]: signed event delivery with retries.
//! - [`controls`] and [`admin`]: test controls (buyer behaviour, latency,
//!   injected failures, lost answers, webhook duplicates / loss / reordering)
//!   and the per-transaction counters tests assert on (`/sandbox/...`).
//! - `db`: the persistent books (SQLite, own migrations).
//!
//! - [`process`]: its settings (`ORDERSAGA_SANDBOX_*`), logging and
//!   shutdown signal, its own: it shares nothing with the shop but the wire
//!   format and `ordersaga-webhook-signature`.
//!
//! [`run`] serves it on a listener until a shutdown future resolves; the
//! binary ([`serve`]) and the tests call the same function.

pub mod admin;
pub mod api;
pub mod controls;
mod db;
pub mod page;
pub mod process;
pub mod webhooks;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use axum::Router;
use serde_json::{Value, json};
use sqlx::SqlitePool;
use tokio::net::TcpListener;

pub use controls::{Behavior, Controls, ControlsPatch};
pub use db::Counts;
pub use process::{Settings, SettingsError};

use crate::webhooks::{Deliverer, Event};

/// Why the sandbox could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The database failed.
    #[error("sandbox database error")]
    Database(#[from] sqlx::Error),
    /// Applying the migrations failed.
    #[error("sandbox database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A socket or file operation failed.
    #[error("I/O error")]
    Io(#[from] std::io::Error),
    /// The webhook HTTP client could not be built.
    #[error("cannot build the webhook HTTP client")]
    Http(#[from] reqwest::Error),
}

/// The sandbox's shared state; cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    pool: SqlitePool,
    settings: Settings,
    public_url: String,
    controls: Mutex<Controls>,
    tokens: Mutex<HashMap<String, Instant>>,
    /// Serialises every mutation: the sandbox is a test double whose
    /// throughput does not matter, and one writer makes each idempotency
    /// check-then-act atomic without relying on SQLite's locking.
    write: tokio::sync::Mutex<()>,
    deliverer: Deliverer,
    held: Mutex<Vec<Event>>,
}

/// Locks a std mutex, ignoring poisoning: the data behind these locks is a
/// few counters and lists that stay consistent between statements.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The current time as PayPal prints it.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// A PayPal-style id: 17 upper-case letters and digits.
pub(crate) fn paypal_id() -> String {
    uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase()
        .chars()
        .take(17)
        .collect()
}

impl App {
    /// Connects the database and builds the state; links start with
    /// `public_url`.
    pub async fn new(settings: Settings, public_url: String) -> Result<Self, SandboxError> {
        let pool = db::connect(&settings.database_url).await?;
        let deliverer = Deliverer::new(
            settings.webhook_secret.clone(),
            settings.webhook_attempts,
            settings.webhook_backoff,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                controls: Mutex::new(Controls::new(settings.webhook_url.clone())),
                settings,
                public_url: public_url.trim_end_matches('/').to_string(),
                tokens: Mutex::new(HashMap::new()),
                write: tokio::sync::Mutex::new(()),
                deliverer,
                held: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The whole HTTP surface.
    pub fn router(&self) -> Router {
        Router::new()
            .merge(api::router(self.clone()))
            .merge(page::router())
            .merge(admin::router())
            .with_state(self.clone())
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.inner.pool
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.public_url)
    }

    pub(crate) async fn write_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.write.lock().await
    }

    /// The current controls (a copy).
    pub fn controls(&self) -> Controls {
        lock(&self.inner.controls).clone()
    }

    pub(crate) fn with_controls<T>(&self, f: impl FnOnce(&mut Controls) -> T) -> T {
        f(&mut lock(&self.inner.controls))
    }

    /// Issues an access token valid for the configured lifetime.
    pub(crate) fn issue_token(&self) -> String {
        let token = format!("A21AA{}", uuid::Uuid::new_v4().simple());
        let expires = Instant::now() + self.inner.settings.token_ttl;
        let mut tokens = lock(&self.inner.tokens);
        let now = Instant::now();
        tokens.retain(|_, exp| *exp > now);
        tokens.insert(token.clone(), expires);
        token
    }

    pub(crate) fn token_valid(&self, token: &str) -> bool {
        lock(&self.inner.tokens)
            .get(token)
            .is_some_and(|exp| *exp > Instant::now())
    }

    /// Sends a webhook event, as the controls say: dropped, held, or
    /// delivered 1 + duplicates times.
    pub(crate) fn emit(&self, event_type: &str, resource_type: &str, resource: Value) {
        let id = format!("WH-{}", paypal_id());
        let body = json!({
            "id": id,
            "create_time": now_rfc3339(),
            "resource_type": resource_type,
            "event_type": event_type,
            "event_version": "1.0",
            "summary": format!("{event_type} (ordersaga payments sandbox)"),
            "resource": resource,
        });
        let event = Event {
            id,
            body: body.to_string(),
        };
        let plan = self.with_controls(|c| {
            let url = c.webhook_url.clone()?;
            if c.webhook_drop_next > 0 {
                c.webhook_drop_next -= 1;
                tracing::info!(event = %event.id, event_type, "webhook dropped (test control)");
                return None;
            }
            Some((url, c.webhook_hold, c.webhook_duplicates))
        });
        let Some((url, hold, duplicates)) = plan else {
            return;
        };
        if hold {
            lock(&self.inner.held).push(event);
        } else {
            self.inner.deliverer.send(&url, &event, 1 + duplicates);
        }
    }

    /// Delivers the held webhooks in the given order; returns how many.
    pub(crate) fn release(&self, order: webhooks::ReleaseOrder) -> usize {
        let mut events: Vec<Event> = std::mem::take(&mut *lock(&self.inner.held));
        if order == webhooks::ReleaseOrder::Reverse {
            events.reverse();
        }
        let n = events.len();
        if let Some(url) = self.with_controls(|c| c.webhook_url.clone()) {
            self.inner.deliverer.send_in_order(&url, events);
        }
        n
    }
}

/// Serves the sandbox on `listener` until `shutdown` resolves, then drains
/// in-flight requests.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SandboxError> {
    let public_url = match &settings.public_url {
        Some(url) => url.clone(),
        None => format!("http://{}", listener.local_addr()?),
    };
    let app = App::new(settings, public_url).await?;
    axum::serve(listener, app.router())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Binds [`Settings::addr`] and [`run`]s there.
pub async fn serve(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SandboxError> {
    let listener = TcpListener::bind(&settings.addr).await?;
    tracing::info!(addr = %listener.local_addr()?, webhook_url = ?settings.webhook_url, "payments sandbox listening");
    run(settings, listener, shutdown).await
}

#[cfg(test)]
mod tests;
