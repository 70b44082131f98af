//! The worked example of a new consumer: sales per SKU per day, kept from
//! the stream's `OrderConfirmed` events by a durable JetStream consumer,
//! in a database of its own (not the shop's: a consumer owns its data).
//!
//! Exactly-once effect: each event is applied in one transaction that also
//! records its id in `applied_events`, and only then acknowledged. A crash
//! between commit and acknowledgement redelivers the event, whose id is
//! found and which changes nothing; a crash before commit leaves nothing
//! to undo. So the projection can be stopped and restarted at any point
//! and ends with the same totals.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use chrono::{DateTime, Utc};
use cloudevents::AttributesReader;
use futures::StreamExt;
use ordersaga_domain::events::OrderEventData;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

use crate::EventsError;
use crate::cloud::{data_json, decode};

/// The events the projection reads.
pub const CONFIRMED_SUBJECTS: &str = "shop.orders.*.OrderConfirmed";

/// The durable consumer's default name.
pub const DEFAULT_DURABLE: &str = "sales-per-sku-day";

/// The projection's own tables (portable SQL, created when missing).
const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS sales_per_sku_day (
        day            TEXT NOT NULL,      -- UTC date of the OrderConfirmed event
        sku            TEXT NOT NULL,
        currency       TEXT NOT NULL,
        units          BIGINT NOT NULL,
        revenue_minor  BIGINT NOT NULL,
        orders         BIGINT NOT NULL,
        PRIMARY KEY (day, sku, currency)
    )",
    "CREATE TABLE IF NOT EXISTS applied_events (
        event_id    TEXT PRIMARY KEY,
        applied_at  BIGINT NOT NULL
    )",
];

/// One row of the projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesRow {
    /// UTC date, `YYYY-MM-DD`.
    pub day: String,
    /// The product.
    pub sku: String,
    /// Currency of `revenue_minor`.
    pub currency: String,
    /// Units sold.
    pub units: i64,
    /// Revenue in minor units.
    pub revenue_minor: i64,
    /// Confirmed orders with this product.
    pub orders: i64,
}

/// The projection's database.
#[derive(Debug, Clone)]
pub struct SalesDb {
    pool: AnyPool,
}

impl SalesDb {
    /// Opens (and creates, for SQLite) the database at `url` and its tables.
    pub async fn open(url: &str) -> Result<Self, EventsError> {
        sqlx::any::install_default_drivers();
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .and_then(|rest| rest.split('?').next())
            .map(std::path::Path::new)
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| EventsError::Projection(e.to_string()))?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await
            .map_err(db)?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await.map_err(db)?;
        }
        Ok(Self { pool })
    }

    /// Applies one `OrderConfirmed` event unless its id was applied
    /// before. Returns whether it changed the totals.
    pub async fn apply(
        &self,
        event_id: &str,
        time: DateTime<Utc>,
        data: &OrderEventData,
    ) -> Result<bool, EventsError> {
        let day = time.date_naive().to_string();
        let mut tx = self.pool.begin().await.map_err(db)?;
        let first = sqlx::query(
            "INSERT INTO applied_events (event_id, applied_at) VALUES ($1, $2) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(Utc::now().timestamp_millis())
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected()
            == 1;
        if !first {
            return Ok(false);
        }
        // One order may name a sku on several lines: it counts once.
        let mut per_sku: std::collections::BTreeMap<&str, (i64, i64)> = Default::default();
        for line in &data.lines {
            let e = per_sku.entry(line.sku.as_str()).or_default();
            e.0 += line.quantity;
            e.1 += line.quantity * line.unit_price_minor;
        }
        for (sku, (units, revenue)) in per_sku {
            sqlx::query(
                "INSERT INTO sales_per_sku_day (day, sku, currency, units, revenue_minor, orders) \
                 VALUES ($1, $2, $3, $4, $5, 1) ON CONFLICT (day, sku, currency) DO UPDATE SET \
                 units = sales_per_sku_day.units + excluded.units, \
                 revenue_minor = sales_per_sku_day.revenue_minor + excluded.revenue_minor, \
                 orders = sales_per_sku_day.orders + 1",
            )
            .bind(&day)
            .bind(sku)
            .bind(data.total.currency.as_str())
            .bind(units)
            .bind(revenue)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    /// Every row, by day and sku; only `day`'s if given.
    pub async fn totals(&self, day: Option<&str>) -> Result<Vec<SalesRow>, EventsError> {
        let rows = sqlx::query(
            "SELECT day, sku, currency, units, revenue_minor, orders FROM sales_per_sku_day \
             WHERE ($1 = '' OR day = $1) ORDER BY day, sku, currency",
        )
        .bind(day.unwrap_or_default())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(SalesRow {
                    day: r.try_get("day")?,
                    sku: r.try_get("sku")?,
                    currency: r.try_get("currency")?,
                    units: r.try_get("units")?,
                    revenue_minor: r.try_get("revenue_minor")?,
                    orders: r.try_get("orders")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db)
    }

    /// How many events were applied.
    pub async fn applied(&self) -> Result<i64, EventsError> {
        sqlx::query("SELECT COUNT(*) AS n FROM applied_events")
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get("n"))
            .map_err(db)
    }
}

fn db(e: sqlx::Error) -> EventsError {
    EventsError::Projection(e.to_string())
}

/// The projection's progress after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Events applied in this run (redeliveries of applied ones not
    /// counted).
    pub applied: u64,
    /// Events the stream holds for this consumer that it has not got yet,
    /// plus those delivered but not acknowledged: the lag.
    pub lag: u64,
}

/// The durable consumer `durable` on `stream`, created if missing.
pub async fn consumer(
    js: &jetstream::Context,
    stream: &str,
    durable: &str,
) -> Result<consumer::PullConsumer, EventsError> {
    let stream = js
        .get_stream(stream)
        .await
        .map_err(|e| EventsError::Stream(stream.to_string(), e.to_string()))?;
    stream
        .get_or_create_consumer(
            durable,
            consumer::pull::Config {
                durable_name: Some(durable.to_string()),
                filter_subject: CONFIRMED_SUBJECTS.to_string(),
                ack_policy: consumer::AckPolicy::Explicit,
                deliver_policy: consumer::DeliverPolicy::All,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| EventsError::Consumer(durable.to_string(), e.to_string()))
}

/// The consumer's lag: not yet delivered plus not yet acknowledged.
pub async fn lag(consumer: &consumer::PullConsumer) -> Result<u64, EventsError> {
    let info = consumer
        .get_info()
        .await
        .map_err(|e| EventsError::Consumer(String::new(), e.to_string()))?;
    Ok(info.num_pending + info.num_ack_pending as u64)
}

/// Runs the projection: fetches up to `batch` events at a time, applies
/// and acknowledges each, reports `progress` after every batch; returns
/// once caught up if `until_caught_up`, else runs until the future is
/// dropped.
pub async fn run(
    consumer: &consumer::PullConsumer,
    db: &SalesDb,
    batch: usize,
    until_caught_up: bool,
    mut progress: impl FnMut(Progress),
) -> Result<Progress, EventsError> {
    let mut applied = 0;
    loop {
        let mut messages = consumer
            .fetch()
            .max_messages(batch)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .map_err(|e| EventsError::Consumer(String::new(), e.to_string()))?;
        while let Some(message) = messages.next().await {
            let message =
                message.map_err(|e| EventsError::Consumer(String::new(), e.to_string()))?;
            match decode(&message.payload) {
                Ok(event) => {
                    let data = data_json(&event)
                        .and_then(|d| serde_json::from_value::<OrderEventData>(d).ok());
                    match (data, event.time()) {
                        (Some(data), Some(time)) => {
                            if db.apply(event.id(), *time, &data).await? {
                                applied += 1;
                            }
                        }
                        _ => tracing::error!(
                            id = event.id(),
                            "skipping an event without order data or time"
                        ),
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "skipping a message that is not a CloudEvent")
                }
            }
            message
                .ack()
                .await
                .map_err(|e| EventsError::Consumer(String::new(), e.to_string()))?;
        }
        let now = Progress {
            applied,
            lag: lag(consumer).await?,
        };
        progress(now);
        if until_caught_up && now.lag == 0 {
            return Ok(now);
        }
    }
}
