//! The shipments repository: the warehouses' shipments, one per confirmed
//! order and warehouse it ships from (keyed by both), keyed so a retried or replayed request creates
//! nothing twice, and their life `REQUESTED -> DISPATCHED -> DELIVERED`
//! ([`Shipments::dispatch`], [`Shipments::deliver`]): each move is a
//! guarded update that commits the customer's email to the outbox and the
//! order's event with it; the last delivery of an order also records
//! `OrderCompleted`. A shipment keeps where its customer's emails go
//! ([`Shipments::for_dispatch`]: its workflow starts from the row when the
//! courier picks it up) and is flagged once when the courier is late
//! ([`Shipments::flag_waiting_since`]).

use ordersaga_domain::{
    EmailAddress, OrderEvent, OrderId, Outgoing, ShipmentLine, ShipmentRequest, ShipmentStatus,
    ShippingAddress,
};
use sqlx::Row;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;

use crate::db::{corrupt, now_ms, parse_col};
use crate::orders::{insert_event, insert_shipment_event};
use crate::outbox::enqueue;
use crate::page::{Page, Placeholders, ShipmentCursor};
use crate::{Backend, Result, Store};

/// A shipment as the warehouse and the courier see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentRecord {
    /// What to ship, to whom and where, from which warehouse (the request
    /// carries the email address only from [`Shipments::for_dispatch`]).
    pub request: ShipmentRequest,
    /// Where it is.
    pub status: ShipmentStatus,
    /// When it was requested, Unix ms.
    pub created_at_ms: i64,
    /// When the courier picked it up.
    pub dispatched_at_ms: Option<i64>,
    /// When it was delivered.
    pub delivered_at_ms: Option<i64>,
    /// When it was flagged for waiting too long for the courier.
    pub dispatch_overdue_at_ms: Option<i64>,
}

/// How a courier's move went in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// This call moved the shipment (false: an earlier one did).
    pub changed: bool,
    /// The order's every shipment is delivered (`OrderCompleted`).
    pub order_completed: bool,
}

/// A shipment's columns; [`Shipments::read`] leaves `customer_email` out of
/// the record, which only [`Shipments::for_dispatch`] reads.
const SHIPMENT_SELECT: &str = "SELECT order_id, customer_id, status, recipient_name, line1, line2, \
     city, postal_code, country, created_at, warehouse, dispatched_at, delivered_at, \
     dispatch_overdue_at, customer_email FROM shipments";

/// A shipment's key in the list's order: `{order_id}/{warehouse}`, so two
/// shipments of one order requested in the same millisecond still page
/// apart (`||` concatenates in SQLite and PostgreSQL alike).
const SHIPMENT_KEY: &str = "(order_id || '/' || warehouse)";

fn shipment_key(r: &ShipmentRequest) -> String {
    format!("{}/{}", r.order_id, r.warehouse)
}

/// Binds a new shipment's eleven columns (`$1`-`$11` of
/// [`Shipments::request`]'s insert).
fn bind_shipment<'q>(
    q: Query<'q, sqlx::Any, AnyArguments<'q>>,
    r: &'q ShipmentRequest,
    id: &'q str,
    now: i64,
) -> Query<'q, sqlx::Any, AnyArguments<'q>> {
    q.bind(id)
        .bind(r.customer_id.as_str())
        .bind(&r.address.name)
        .bind(&r.address.line1)
        .bind(&r.address.line2)
        .bind(&r.address.city)
        .bind(&r.address.postal_code)
        .bind(&r.address.country)
        .bind(now)
        .bind(&r.warehouse)
        .bind(r.customer_email.as_ref().map(|e| e.as_str().to_string()))
}

/// The shipments repository; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Shipments<'a> {
    store: &'a Store,
}

impl<'a> Shipments<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Creates the order's shipping request from its warehouse, with the
    /// customer's email address, unless it exists. Returns whether this
    /// call created it.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "shipments.request", otel.kind = "client"))]
    pub async fn request(self, r: &ShipmentRequest) -> Result<bool> {
        let id = r.order_id.to_string();
        let insert = "INSERT INTO shipments (order_id, customer_id, status, recipient_name, \
                      line1, line2, city, postal_code, country, created_at, warehouse, \
                      customer_email) \
                      VALUES ($1, $2, 'REQUESTED', $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                      ON CONFLICT (order_id, warehouse) DO NOTHING";
        let now = now_ms();
        let line_no = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        if self.store.backend == Backend::Postgres && !r.lines.is_empty() {
            // One round trip: the shipment and its lines in one statement
            // (data-modifying CTEs), the lines only with a new shipment.
            let mut p = Placeholders::default();
            p.list(11);
            let values = p.rows(r.lines.len(), 3);
            let sql = format!(
                "WITH s AS ({insert} RETURNING order_id), \
                 l AS (INSERT INTO shipment_lines (order_id, warehouse, line_no, sku, quantity) \
                 SELECT s.order_id, $10, v.line_no, v.sku, v.quantity FROM s \
                 CROSS JOIN (VALUES {values}) AS v (line_no, sku, quantity)) \
                 SELECT COUNT(*) AS created FROM s"
            );
            let mut q = bind_shipment(sqlx::query(&sql), r, &id, now);
            for (n, line) in r.lines.iter().enumerate() {
                q = q
                    .bind(line_no(n))
                    .bind(line.sku.as_str())
                    .bind(line.quantity);
            }
            let created: i64 = q.fetch_one(&self.store.writer).await?.try_get("created")?;
            return Ok(created == 1);
        }
        let mut tx = self.store.begin_write().await?;
        let created = bind_shipment(sqlx::query(insert), r, &id, now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if created {
            for (n, line) in r.lines.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO shipment_lines (order_id, warehouse, line_no, sku, quantity) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&id)
                .bind(&r.warehouse)
                .bind(line_no(n))
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
        let warehouse: String = row.try_get("warehouse")?;
        let lines = sqlx::query(
            "SELECT sku, quantity FROM shipment_lines WHERE order_id = $1 AND warehouse = $2 \
             ORDER BY line_no",
        )
        .bind(&id)
        .bind(&warehouse)
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
                warehouse,
                customer_email: None,
                dispatch_alert_secs: None,
            },
            status: parse_col(row, "status")?,
            created_at_ms: row.try_get("created_at")?,
            dispatched_at_ms: row.try_get("dispatched_at")?,
            delivered_at_ms: row.try_get("delivered_at")?,
            dispatch_overdue_at_ms: row.try_get("dispatch_overdue_at")?,
        })
    }

    /// `Dispatch`: the courier picked the shipment up. `REQUESTED ->
    /// DISPATCHED` once, with `ShipmentDispatched` and `outgoing` (the
    /// customer's email) committed in the same transaction.
    pub async fn dispatch(
        self,
        order_id: &OrderId,
        warehouse: &str,
        outgoing: &[Outgoing],
    ) -> Result<Moved> {
        self.advance(
            order_id,
            warehouse,
            (ShipmentStatus::Requested, ShipmentStatus::Dispatched),
            "dispatched_at",
            OrderEvent::ShipmentDispatched,
            outgoing,
        )
        .await
    }

    /// `Deliver`: `DISPATCHED -> DELIVERED` once, with `ShipmentDelivered`
    /// and the customer's email; when it was the order's last shipment not
    /// delivered, `OrderCompleted` too (same transaction).
    pub async fn deliver(
        self,
        order_id: &OrderId,
        warehouse: &str,
        outgoing: &[Outgoing],
    ) -> Result<Moved> {
        self.advance(
            order_id,
            warehouse,
            (ShipmentStatus::Dispatched, ShipmentStatus::Delivered),
            "delivered_at",
            OrderEvent::ShipmentDelivered,
            outgoing,
        )
        .await
    }

    async fn advance(
        self,
        order_id: &OrderId,
        warehouse: &str,
        (from, to): (ShipmentStatus, ShipmentStatus),
        at_column: &str,
        event: OrderEvent,
        outgoing: &[Outgoing],
    ) -> Result<Moved> {
        let id = order_id.to_string();
        let now = now_ms();
        let mut tx = self.store.begin_write().await?;
        // Locks the order's shipments first (a no-op write; SQLite's write
        // transaction already excludes every other): two last deliveries
        // at once would otherwise each see the other still on its way, and
        // neither record `OrderCompleted`.
        sqlx::query("UPDATE shipments SET status = status WHERE order_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        // `at_column` is one of this module's constants, never input.
        let changed = sqlx::query(&format!(
            "UPDATE shipments SET status = $1, {at_column} = $2 \
             WHERE order_id = $3 AND warehouse = $4 AND status = $5"
        ))
        .bind(to.as_str())
        .bind(now)
        .bind(&id)
        .bind(warehouse)
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let mut order_completed = false;
        if changed {
            enqueue(&mut tx, outgoing, now).await?;
            insert_shipment_event(&mut tx, self.store.events, &id, event, warehouse, now).await?;
            if to == ShipmentStatus::Delivered {
                let open: i64 = sqlx::query(
                    "SELECT COUNT(*) AS open FROM shipments WHERE order_id = $1 AND status <> $2",
                )
                .bind(&id)
                .bind(ShipmentStatus::Delivered.as_str())
                .fetch_one(&mut *tx)
                .await?
                .try_get("open")?;
                if open == 0 {
                    let completed = OrderEvent::OrderCompleted;
                    insert_event(&mut tx, self.store.events, &id, completed, None, now).await?;
                    order_completed = true;
                }
            }
        }
        tx.commit().await?;
        Ok(Moved {
            changed,
            order_completed,
        })
    }

    /// Flags a shipment still waiting for the courier as overdue, once.
    /// Returns whether this call flagged it (false: dispatched meanwhile,
    /// or flagged before).
    pub async fn flag_overdue(self, order_id: &OrderId, warehouse: &str) -> Result<bool> {
        let mut tx = self.store.begin_write().await?;
        let flagged = sqlx::query(
            "UPDATE shipments SET dispatch_overdue_at = $1 WHERE order_id = $2 AND warehouse = $3 \
             AND status = $4 AND dispatch_overdue_at IS NULL",
        )
        .bind(now_ms())
        .bind(order_id.to_string())
        .bind(warehouse)
        .bind(ShipmentStatus::Requested.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(flagged)
    }

    /// Flags every shipment requested before `requested_before_ms` and
    /// still waiting for the courier, once each. Returns the shipments this
    /// call flagged (none that a concurrent call flagged), for the alert.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "shipments.flag_waiting_since", otel.kind = "client"))]
    pub async fn flag_waiting_since(
        self,
        requested_before_ms: i64,
    ) -> Result<Vec<(OrderId, String)>> {
        let mut tx = self.store.begin_write().await?;
        let rows = sqlx::query(
            "UPDATE shipments SET dispatch_overdue_at = $1 WHERE status = $2 \
             AND created_at < $3 AND dispatch_overdue_at IS NULL \
             RETURNING order_id, warehouse",
        )
        .bind(now_ms())
        .bind(ShipmentStatus::Requested.as_str())
        .bind(requested_before_ms)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| Ok((parse_col(row, "order_id")?, row.try_get("warehouse")?)))
            .collect()
    }

    /// Shipments flagged overdue and still not dispatched (the alert's
    /// gauge).
    pub async fn overdue(self) -> Result<i64> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS overdue FROM shipments WHERE status = $1 \
             AND dispatch_overdue_at IS NOT NULL",
        )
        .bind(ShipmentStatus::Requested.as_str())
        .fetch_one(&self.store.pool)
        .await?
        .try_get("overdue")?)
    }

    /// The order's shipment from `warehouse` with the customer's email
    /// address in its request (`None` for a shipment requested before rows
    /// kept it), for the workflow the courier's dispatch starts.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "shipments.for_dispatch", otel.kind = "client"))]
    pub async fn for_dispatch(
        self,
        order_id: &OrderId,
        warehouse: &str,
    ) -> Result<Option<ShipmentRecord>> {
        let Some(row) = self.row(order_id, warehouse).await? else {
            return Ok(None);
        };
        let mut record = self.read(&row).await?;
        record.request.customer_email = row
            .try_get::<Option<String>, _>("customer_email")?
            .map(|e| EmailAddress::parse(&e).map_err(|e| corrupt(format!("customer_email: {e}"))))
            .transpose()?;
        Ok(Some(record))
    }

    /// The order's shipment from `warehouse`, if one was requested.
    pub async fn of(self, order_id: &OrderId, warehouse: &str) -> Result<Option<ShipmentRecord>> {
        match self.row(order_id, warehouse).await? {
            Some(row) => Ok(Some(self.read(&row).await?)),
            None => Ok(None),
        }
    }

    /// The row of the order's shipment from `warehouse`.
    async fn row(self, order_id: &OrderId, warehouse: &str) -> Result<Option<AnyRow>> {
        Ok(sqlx::query(&format!(
            "{SHIPMENT_SELECT} WHERE order_id = $1 AND warehouse = $2"
        ))
        .bind(order_id.to_string())
        .bind(warehouse)
        .fetch_optional(&self.store.pool)
        .await?)
    }

    /// The order's shipments, one per warehouse it ships from, in the
    /// order they were requested (empty before it has any).
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "shipments.of_order", otel.kind = "client"))]
    pub async fn of_order(self, order_id: &OrderId) -> Result<Vec<ShipmentRecord>> {
        let rows = sqlx::query(&format!(
            "{SHIPMENT_SELECT} WHERE order_id = $1 ORDER BY created_at, warehouse"
        ))
        .bind(order_id.to_string())
        .fetch_all(&self.store.pool)
        .await?;
        let mut shipments = Vec::with_capacity(rows.len());
        for row in &rows {
            shipments.push(self.read(row).await?);
        }
        Ok(shipments)
    }

    /// Shipping requests newest first, one page (`limit` clamped to
    /// 1..=100) at a time, with the cursor of the next page if any.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "shipments.list", otel.kind = "client"))]
    pub async fn list(
        self,
        limit: u32,
        after: Option<ShipmentCursor>,
    ) -> Result<(Vec<ShipmentRecord>, Option<ShipmentCursor>)> {
        let page = Page::new(limit);
        let mut p = Placeholders::default();
        let mut sql = format!("{SHIPMENT_SELECT} WHERE 1 = 1");
        if after.is_some() {
            sql += &format!(" AND {}", p.older_than(SHIPMENT_KEY));
        }
        sql += &format!(
            " ORDER BY created_at DESC, {SHIPMENT_KEY} DESC LIMIT {}",
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
            .map(|s| ShipmentCursor::after(s.created_at_ms, shipment_key(&s.request)));
        Ok((shipments, cursor))
    }
}
