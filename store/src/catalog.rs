//! The catalog repository: products (`CreateProduct`), their ratings
//! (`SubmitReviewRating`, buyers only: [`ordersaga_domain::catalog::may_rate`])
//! and the product's history in `catalog_events` ([`CatalogEvent`]).
//! Stock is the [`Stock`](crate::Stock) repository's.

use ordersaga_domain::catalog::may_rate;
use ordersaga_domain::events::CatalogEventData;
use ordersaga_domain::{CatalogEvent, CustomerId, Money, OrderStatus, Sku};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::db::{Tx, money, now_ms, parse_col};
use crate::events;
use crate::{Result, Store, StoreError};

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

/// One entry of a product's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEventRecord {
    /// What happened.
    pub event: CatalogEvent,
    /// In words (`+5 (rcpt-..)`, `alice: 4 stars`, ...).
    pub detail: Option<String>,
}

/// The catalog repository; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Catalog<'a> {
    store: &'a Store,
}

impl<'a> Catalog<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// All products, by sku.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "catalog.list", otel.kind = "client"))]
    pub async fn list(self) -> Result<Vec<Product>> {
        sqlx::query(&format!("{PRODUCT_SELECT} ORDER BY sku"))
            .fetch_all(&self.store.pool)
            .await?
            .iter()
            .map(product_from_row)
            .collect()
    }

    /// One product, if it exists.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "catalog.get", otel.kind = "client"))]
    pub async fn get(self, sku: &Sku) -> Result<Option<Product>> {
        sqlx::query(&format!("{PRODUCT_SELECT} WHERE sku = $1"))
            .bind(sku.as_str())
            .fetch_optional(&self.store.pool)
            .await?
            .as_ref()
            .map(product_from_row)
            .transpose()
    }

    /// `CreateProduct`: a new product with no stock; `ProductCreated`.
    /// A taken sku is [`StoreError::ProductExists`].
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "catalog.create", otel.kind = "client"))]
    pub async fn create(self, p: &NewProduct) -> Result<Product> {
        let now = now_ms();
        let mut tx = self.store.begin_write().await?;
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
        let event = CatalogEventRecord {
            event: CatalogEvent::ProductCreated,
            detail: Some(format!("{} at {}", p.name, p.price)),
        };
        let event_id = format!("product-created/{}", p.sku);
        let data = CatalogEventData {
            sku: Some(p.sku.clone()),
            name: Some(p.name.clone()),
            price: Some(p.price),
            low_stock_threshold: Some(p.low_stock_threshold),
            ..CatalogEventData::default()
        };
        let publish = self.store.events;
        record_event(&mut tx, publish, &event_id, &p.sku, &event, &data, now).await?;
        tx.commit().await?;
        self.get(&p.sku)
            .await?
            .ok_or_else(|| StoreError::UnknownProduct(p.sku.clone()))
    }

    /// `SubmitReviewRating`: `stars` (validated 1..=5 by the caller) from a
    /// customer who may rate the product (a buyer); a second rating
    /// replaces the first. The product's sum and count change in the same
    /// transaction; `ReviewRatingSubmitted`, `ProductRatingUpdated`.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "catalog.rate", otel.kind = "client"))]
    pub async fn rate(self, customer: &CustomerId, sku: &Sku, stars: i64) -> Result<Product> {
        let now = now_ms();
        let mut tx = self.store.begin_write().await?;
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
        let purchases = sqlx::query(
            "SELECT DISTINCT o.status FROM orders o JOIN order_lines l ON l.order_id = o.order_id \
             WHERE o.customer_id = $1 AND l.sku = $2",
        )
        .bind(customer.as_str())
        .bind(sku.as_str())
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| parse_col(r, "status"))
        .collect::<Result<Vec<OrderStatus>>>()?;
        if !may_rate(purchases) {
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
        let submitted = CatalogEventRecord {
            event: CatalogEvent::ReviewRatingSubmitted,
            detail: Some(format!("{customer}: {stars} stars")),
        };
        let data = CatalogEventData {
            sku: Some(sku.clone()),
            customer_id: Some(customer.clone()),
            stars: Some(stars),
            ..CatalogEventData::default()
        };
        let publish = self.store.events;
        let event_id = format!("rating/{submission}");
        record_event(&mut tx, publish, &event_id, sku, &submitted, &data, now).await?;
        let row = sqlx::query(&format!("{PRODUCT_SELECT} WHERE sku = $1"))
            .bind(sku.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let product = product_from_row(&row)?;
        let updated = CatalogEventRecord {
            event: CatalogEvent::ProductRatingUpdated,
            detail: Some(format!(
                "average {:.2} of {}",
                product.rating_average().unwrap_or(0.0),
                product.rating_count
            )),
        };
        let event_id = format!("rating-updated/{submission}");
        let data = CatalogEventData {
            sku: Some(sku.clone()),
            rating_sum: Some(product.rating_sum),
            rating_count: Some(product.rating_count),
            ..CatalogEventData::default()
        };
        record_event(&mut tx, publish, &event_id, sku, &updated, &data, now).await?;
        tx.commit().await?;
        Ok(product)
    }

    /// The product's history, oldest first.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "catalog.events", otel.kind = "client"))]
    pub async fn events(self, sku: &Sku) -> Result<Vec<CatalogEventRecord>> {
        sqlx::query(
            "SELECT event, detail FROM catalog_events WHERE sku = $1 ORDER BY occurred_at, event_id",
        )
        .bind(sku.as_str())
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(CatalogEventRecord {
                event: parse_col(r, "event")?,
                detail: r.try_get("detail")?,
            })
        })
        .collect()
    }
}

/// Records `event` in the product's history unless `event_id` is there,
/// and, if `publish`, writes it with `data` to the event outbox the first
/// time.
pub(crate) async fn record_event(
    tx: &mut Tx,
    publish: bool,
    event_id: &str,
    sku: &Sku,
    event: &CatalogEventRecord,
    data: &CatalogEventData,
    now: i64,
) -> Result<()> {
    let inserted = sqlx::query(
        "INSERT INTO catalog_events (event_id, sku, event, detail, occurred_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(sku.as_str())
    .bind(event.event.as_str())
    .bind(event.detail.as_deref())
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if inserted && publish {
        events::catalog_event(tx, sku, event.event, event_id, data, now)?;
    }
    Ok(())
}

const PRODUCT_SELECT: &str = "SELECT sku, name, price_minor, currency, on_hand, \
     low_stock_threshold, rating_sum, rating_count FROM products";

fn product_from_row(row: &AnyRow) -> Result<Product> {
    Ok(Product {
        sku: parse_col(row, "sku")?,
        name: row.try_get("name")?,
        price: money(row, "price_minor")?,
        on_hand: row.try_get("on_hand")?,
        low_stock_threshold: row.try_get("low_stock_threshold")?,
        rating_sum: row.try_get("rating_sum")?,
        rating_count: row.try_get("rating_count")?,
    })
}
