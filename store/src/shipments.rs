//! The warehouse's shipping requests: one per confirmed order, keyed by
//! the order id so a retried or replayed request creates nothing twice.

use ordersaga_domain::{CustomerId, OrderId, ShipmentLine, ShipmentRequest, ShippingAddress, Sku};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{OrderCursor, Store, StoreError, now_ms};

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

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl Store {
    /// Creates the order's shipping request unless it exists. Returns
    /// whether this call created it.
    pub async fn request_shipment(&self, r: &ShipmentRequest) -> Result<bool, StoreError> {
        let id = r.order_id.to_string();
        let mut tx = self.begin_write().await?;
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

    async fn shipment_from_row(&self, row: &AnyRow) -> Result<ShipmentRecord, StoreError> {
        let id: String = row.try_get("order_id")?;
        let lines = sqlx::query(
            "SELECT sku, quantity FROM shipment_lines WHERE order_id = $1 ORDER BY line_no",
        )
        .bind(&id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|l| {
            Ok(ShipmentLine {
                sku: Sku::parse(&l.try_get::<String, _>("sku")?).map_err(corrupt)?,
                quantity: l.try_get("quantity")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(ShipmentRecord {
            request: ShipmentRequest {
                order_id: OrderId::parse(&id).map_err(corrupt)?,
                customer_id: CustomerId::parse(&row.try_get::<String, _>("customer_id")?)
                    .map_err(corrupt)?,
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
    pub async fn shipment(&self, order_id: &OrderId) -> Result<Option<ShipmentRecord>, StoreError> {
        let row = sqlx::query(&format!("{SHIPMENT_SELECT} WHERE order_id = $1"))
            .bind(order_id.to_string())
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(row) => Ok(Some(self.shipment_from_row(&row).await?)),
            None => Ok(None),
        }
    }

    /// Shipping requests newest first, one page (`limit` clamped to
    /// 1..=100) at a time, with the cursor of the next page if any.
    pub async fn list_shipments(
        &self,
        limit: u32,
        after: Option<OrderCursor>,
    ) -> Result<(Vec<ShipmentRecord>, Option<OrderCursor>), StoreError> {
        let limit = i64::from(limit.clamp(1, 100));
        let rows = match after {
            None => {
                sqlx::query(&format!(
                    "{SHIPMENT_SELECT} ORDER BY created_at DESC, order_id DESC LIMIT $1"
                ))
                .bind(limit + 1)
                .fetch_all(self.pool())
                .await?
            }
            Some(c) => sqlx::query(&format!(
                "{SHIPMENT_SELECT} WHERE created_at < $1 OR (created_at = $1 AND order_id < $2) \
                     ORDER BY created_at DESC, order_id DESC LIMIT $3"
            ))
            .bind(c.created_at_ms)
            .bind(c.order_id.to_string())
            .bind(limit + 1)
            .fetch_all(self.pool())
            .await?,
        };
        let mut page = Vec::with_capacity(rows.len());
        for row in &rows {
            page.push(self.shipment_from_row(row).await?);
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = page.len() > limit;
        page.truncate(limit);
        let cursor = more.then(|| page.last()).flatten().map(|s| OrderCursor {
            created_at_ms: s.created_at_ms,
            order_id: s.request.order_id,
        });
        Ok((page, cursor))
    }
}
