//! The shipments repository: the warehouse's shipping requests, one per
//! confirmed order, keyed by the order id so a retried or replayed request
//! creates nothing twice.

use ordersaga_domain::{OrderId, ShipmentLine, ShipmentRequest, ShippingAddress};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{now_ms, parse_col};
use crate::page::{OrderCursor, Page, Placeholders};
use crate::{Result, Store};

/// A shipping request as the warehouse sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentRecord {
    /// What to ship, to whom and where.
    pub request: ShipmentRequest,
    /// `REQUESTED` (the warehouse's later steps are not modelled yet).
    pub status: String,
    /// When it was requested, Unix ms.
    pub created_at_ms: i64,
}

const SHIPMENT_SELECT: &str = "SELECT order_id, customer_id, status, recipient_name, line1, line2, \
     city, postal_code, country, created_at FROM shipments";

/// The shipments repository; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Shipments<'a> {
    store: &'a Store,
}

impl<'a> Shipments<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Creates the order's shipping request unless it exists. Returns
    /// whether this call created it.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "shipments.request", otel.kind = "client"))]
    pub async fn request(self, r: &ShipmentRequest) -> Result<bool> {
        let id = r.order_id.to_string();
        let mut tx = self.store.begin_write().await?;
        let created = sqlx::query(
            "INSERT INTO shipments (order_id, customer_id, status, recipient_name, line1, line2, \
             city, postal_code, country, created_at) \
             VALUES ($1, $2, 'REQUESTED', $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(&id)
        .bind(r.customer_id.as_str())
        .bind(&r.address.name)
        .bind(&r.address.line1)
        .bind(&r.address.line2)
        .bind(&r.address.city)
        .bind(&r.address.postal_code)
        .bind(&r.address.country)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if created {
            for (n, line) in r.lines.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO shipment_lines (order_id, line_no, sku, quantity) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&id)
                .bind(i64::try_from(n).unwrap_or(i64::MAX))
                .bind(line.sku.as_str())
                .bind(line.quantity)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(created)
    }

    /// A shipment row with its lines.
    async fn read(self, row: &AnyRow) -> Result<ShipmentRecord> {
        let id: String = row.try_get("order_id")?;
        let lines = sqlx::query(
            "SELECT sku, quantity FROM shipment_lines WHERE order_id = $1 ORDER BY line_no",
        )
        .bind(&id)
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(|l| {
            Ok(ShipmentLine {
                sku: parse_col(l, "sku")?,
                quantity: l.try_get("quantity")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(ShipmentRecord {
            request: ShipmentRequest {
                order_id: parse_col(row, "order_id")?,
                customer_id: parse_col(row, "customer_id")?,
                lines,
                address: ShippingAddress {
                    name: row.try_get("recipient_name")?,
                    line1: row.try_get("line1")?,
                    line2: row.try_get("line2")?,
                    city: row.try_get("city")?,
                    postal_code: row.try_get("postal_code")?,
                    country: row.try_get("country")?,
                },
            },
            status: row.try_get("status")?,
            created_at_ms: row.try_get("created_at")?,
        })
    }

    /// The order's shipping request, if one was made.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "shipments.get", otel.kind = "client"))]
    pub async fn get(self, order_id: &OrderId) -> Result<Option<ShipmentRecord>> {
        let row = sqlx::query(&format!("{SHIPMENT_SELECT} WHERE order_id = $1"))
            .bind(order_id.to_string())
            .fetch_optional(&self.store.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(self.read(&row).await?)),
            None => Ok(None),
        }
    }

    /// Shipping requests newest first, one page (`limit` clamped to
    /// 1..=100) at a time, with the cursor of the next page if any.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "shipments.list", otel.kind = "client"))]
    pub async fn list(
        self,
        limit: u32,
        after: Option<OrderCursor>,
    ) -> Result<(Vec<ShipmentRecord>, Option<OrderCursor>)> {
        let page = Page::new(limit);
        let mut p = Placeholders::default();
        let mut sql = format!("{SHIPMENT_SELECT} WHERE 1 = 1");
        if after.is_some() {
            sql += &format!(" AND {}", p.older_than("order_id"));
        }
        sql += &format!(
            " ORDER BY created_at DESC, order_id DESC LIMIT {}",
            p.next()
        );
        let mut query = sqlx::query(&sql);
        if let Some(c) = &after {
            query = c.bind(query);
        }
        let rows = query
            .bind(page.fetch_limit())
            .fetch_all(&self.store.pool)
            .await?;
        let (rows, more) = page.cut(rows);
        let mut shipments = Vec::with_capacity(rows.len());
        for row in &rows {
            shipments.push(self.read(row).await?);
        }
        let cursor = more
            .then(|| shipments.last())
            .flatten()
            .map(|s| OrderCursor::after(s.created_at_ms, s.request.order_id));
        Ok((shipments, cursor))
    }
}
