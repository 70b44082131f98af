//! The orders repository: an order's header and lines, its status history
//! (`order_events`), and the `PlaceOrder`, `ConfirmOrder` and `FailOrder`
//! steps, each committed with the messages it hands to the outbox.

use ordersaga_domain::{
    AttentionStatus, CustomerId, DEFAULT_WAREHOUSE, FailureReason, Money, OrderEvent, OrderId,
    OrderInput, OrderStatus, Outgoing, Sku, TransactionId,
};
use sqlx::Row;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;

use crate::attention::AttentionRecord;
use crate::db::{Tx, change_status, corrupt, money, now_ms, parse_col};
use crate::events::{self, ORDER_EVENT_COLUMNS, ORDER_EVENT_FROM};
use crate::findings::{FIRST_OPEN_FINDING, OPEN_FINDING_ORDERS};
use crate::outbox::enqueue;
use crate::page::{OrderCursor, Page, Placeholders};
use crate::payments::PaymentRecord;
use crate::{Backend, Result, Store, StoreError};

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

/// What `ConfirmOrder` or `FailOrder` found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// The order's status afterwards.
    pub status: OrderStatus,
    /// Whether this call moved it there (a retry, or an order that ended
    /// otherwise, changes nothing).
    pub changed: bool,
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
    /// Set while a compensation is parked for an operator: the first one
    /// and why (`RefundPayment: <the gateway's refusal>`).
    pub attention: Option<String>,
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
    /// Compensations the saga parked for an operator, in any status.
    pub attention: Vec<AttentionRecord>,
    /// The amended order proposed when some lines were short, if any.
    pub amendment: Option<crate::AmendmentRecord>,
}

/// Filter and page of [`Orders::list`].
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    /// Only this customer's orders.
    pub customer_id: Option<CustomerId>,
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
    /// Only orders with a compensation parked for an operator.
    pub needs_attention: bool,
    /// At most this many (clamped to 1..=100).
    pub limit: u32,
    /// Continue after this cursor (from a previous page).
    pub after: Option<OrderCursor>,
}

/// The orders repository; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Orders<'a> {
    store: &'a Store,
}

impl<'a> Orders<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// `PlaceOrder`: stores the order `PENDING` with its lines, records
    /// `OrderPlaced` and commits `outgoing` to the outbox with it. Returns
    /// whether this call created the order.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "orders.place", otel.kind = "client"))]
    pub async fn place(self, order: &OrderInput, outgoing: &[Outgoing]) -> Result<bool> {
        let now = now_ms();
        let id = order.order_id.to_string();
        let mut tx = self.store.begin_write().await?;
        let created = insert_order(&mut tx, &id, order, now).await?;
        if created {
            insert_event(
                &mut tx,
                self.store.events,
                &id,
                OrderEvent::OrderPlaced,
                None,
                now,
            )
            .await?;
        }
        enqueue(&mut tx, outgoing, now).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// `ConfirmOrder`: `PENDING` -> `CONFIRMED`, `OrderConfirmed` once, and
    /// `outgoing` committed to the outbox with it. Returns the order's
    /// status afterwards and whether this call changed it.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "orders.confirm", otel.kind = "client"))]
    pub async fn confirm(self, order_id: &OrderId, outgoing: &[Outgoing]) -> Result<Ended> {
        self.finish(
            order_id,
            OrderStatus::Confirmed,
            OrderEvent::OrderConfirmed,
            None,
            outgoing,
        )
        .await
    }

    /// `FailOrder`: `PENDING` -> `FAILED` with its reason, `OrderFailed`
    /// once, and `outgoing` committed to the outbox with it. Returns the
    /// order's status afterwards and whether this call changed it.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "orders.fail", otel.kind = "client"))]
    pub async fn fail(
        self,
        order_id: &OrderId,
        reason: &FailureReason,
        outgoing: &[Outgoing],
    ) -> Result<Ended> {
        self.finish(
            order_id,
            OrderStatus::Failed,
            OrderEvent::OrderFailed,
            Some(reason),
            outgoing,
        )
        .await
    }

    /// Moves the order to `status` where [`OrderStatus::can_become`] allows
    /// it, with `event` once; enqueues `outgoing` if the order ended so.
    async fn finish(
        self,
        order_id: &OrderId,
        status: OrderStatus,
        event: OrderEvent,
        reason: Option<&FailureReason>,
        outgoing: &[Outgoing],
    ) -> Result<Ended> {
        let now = now_ms();
        let id = order_id.to_string();
        let text = reason.map(ToString::to_string);
        let detail = reason
            .map(serde_json::to_string)
            .transpose()
            .map_err(corrupt)?;
        let mut tx = self.store.begin_write().await?;
        let columns = [
            ("failure_code", reason.map(FailureReason::code)),
            ("failure_reason", text.as_deref()),
            ("failure_detail", detail.as_deref()),
        ];
        let changed = change_status(&mut tx, "orders", &id, status, &columns, now).await?;
        if changed {
            insert_event(&mut tx, self.store.events, &id, event, text.as_deref(), now).await?;
            if status == OrderStatus::Failed {
                crate::amendments::decline(&mut tx, &id, now).await?;
            }
        }
        // A change just made is the status; only a retry reads it.
        let now_status = if changed {
            status
        } else {
            let row = sqlx::query("SELECT status FROM orders WHERE order_id = $1")
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::OrderNotFound(*order_id))?;
            parse_col(&row, "status")?
        };
        // Also on a retry (the insert skips what is there), never for an
        // order that ended otherwise.
        if now_status == status {
            let outgoing = if status == OrderStatus::Confirmed {
                per_warehouse(&mut tx, &id, outgoing).await?
            } else {
                outgoing.to_vec()
            };
            enqueue(&mut tx, &outgoing, now).await?;
        }
        tx.commit().await?;
        Ok(Ended {
            status: now_status,
            changed,
        })
    }

    /// Why the order failed, if the store says it did: the reason its
    /// `FailOrder` recorded. A step that finds its order already failed
    /// answers with this, and the saga follows it. (Orders failed before
    /// reasons were kept whole answer a cancellation in the stored words.)
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "orders.failure", otel.kind = "client"))]
    pub async fn failure(self, order_id: &OrderId) -> Result<Option<FailureReason>> {
        let row = sqlx::query(
            "SELECT status, failure_reason, failure_detail FROM orders WHERE order_id = $1",
        )
        .bind(order_id.to_string())
        .fetch_optional(&self.store.pool)
        .await?
        .ok_or(StoreError::OrderNotFound(*order_id))?;
        if parse_col::<OrderStatus>(&row, "status")? != OrderStatus::Failed {
            return Ok(None);
        }
        let detail: Option<String> = row.try_get("failure_detail")?;
        if let Some(json) = detail {
            return serde_json::from_str(&json)
                .map(Some)
                .map_err(|e| corrupt(format!("failure_detail: {e}")));
        }
        let message: Option<String> = row.try_get("failure_reason")?;
        Ok(Some(FailureReason::Cancelled {
            message: message.unwrap_or_default(),
        }))
    }

    /// Everything about one order, or `None` if it is not stored (yet).
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "orders.get", otel.kind = "client"))]
    pub async fn get(self, order_id: &OrderId) -> Result<Option<OrderRecord>> {
        let pool = &self.store.pool;
        let id = order_id.to_string();
        let Some(row) = sqlx::query(&format!("{} WHERE order_id = $1", summary_select()))
            .bind(&id)
            .fetch_optional(pool)
            .await?
        else {
            return Ok(None);
        };
        let summary = summary_from_row(&row)?;
        let lines = sqlx::query(LINES_SELECT)
            .bind(&id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(line_from_row)
            .collect::<Result<_>>()?;
        let payment = self.store.payments().of_order(order_id).await?;
        let mut events =
            sqlx::query("SELECT event, detail, occurred_at FROM order_events WHERE order_id = $1")
                .bind(&id)
                .fetch_all(pool)
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
        let attention = self.store.attention().of_order(order_id).await?;
        let amendment = self.store.amendments().get(order_id).await?;
        Ok(Some(OrderRecord {
            summary,
            lines,
            payment,
            events,
            attention,
            amendment,
        }))
    }

    /// Orders newest first, filtered, one page at a time. Returns the page
    /// and the cursor of the next page, if there is one.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "orders.list", otel.kind = "client"))]
    pub async fn list(self, q: &OrderQuery) -> Result<(Vec<OrderSummary>, Option<OrderCursor>)> {
        let page = Page::new(q.limit);
        let mut p = Placeholders::default();
        let mut sql = format!("{} WHERE 1 = 1", summary_select());
        if q.customer_id.is_some() {
            sql += &format!(" AND customer_id = {}", p.next());
        }
        if q.status.is_some() {
            sql += &format!(" AND status = {}", p.next());
        }
        if q.needs_attention {
            sql += &format!(
                " AND (order_id IN (SELECT order_id FROM compensation_attention WHERE status = '{}') \
                 OR order_id IN ({OPEN_FINDING_ORDERS}))",
                AttentionStatus::Open
            );
        }
        if q.after.is_some() {
            sql += &format!(" AND {}", p.older_than("order_id"));
        }
        sql += &format!(
            " ORDER BY created_at DESC, order_id DESC LIMIT {}",
            p.next()
        );
        let mut query = sqlx::query(&sql);
        if let Some(c) = &q.customer_id {
            query = query.bind(c.as_str());
        }
        if let Some(s) = q.status {
            query = query.bind(s.as_str());
        }
        if let Some(c) = &q.after {
            query = c.bind(query);
        }
        let rows = query
            .bind(page.fetch_limit())
            .fetch_all(&self.store.pool)
            .await?
            .iter()
            .map(summary_from_row)
            .collect::<Result<Vec<_>>>()?;
        let (rows, more) = page.cut(rows);
        let cursor = more
            .then(|| rows.last())
            .flatten()
            .map(|o| OrderCursor::after(o.created_at_ms, o.order_id));
        Ok((rows, cursor))
    }

    /// The order paid by `transaction_id` (a webhook names the payment, not
    /// the order).
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "orders.paid_by", otel.kind = "client"))]
    pub async fn paid_by(self, transaction_id: &TransactionId) -> Result<Option<OrderId>> {
        sqlx::query("SELECT order_id FROM orders WHERE transaction_id = $1")
            .bind(transaction_id.to_string())
            .fetch_optional(&self.store.pool)
            .await?
            .map(|row| parse_col(&row, "order_id"))
            .transpose()
    }
}

/// `ConfirmOrder`'s messages with its shipping request split into one
/// request per warehouse the order's stock was allocated from
/// ([`ordersaga_domain::ShipmentRequest::per_warehouse`]), read in the confirming
/// transaction: the saga asks for one shipment and the store knows where
/// the stock is. An order served from one warehouse keeps its request.
async fn per_warehouse(
    tx: &mut Tx,
    order_id: &str,
    outgoing: &[Outgoing],
) -> Result<Vec<Outgoing>> {
    if !outgoing.iter().any(|m| matches!(m, Outgoing::Shipment(_))) {
        return Ok(outgoing.to_vec());
    }
    let allocation = crate::stock::allocation_of(tx, order_id).await?;
    Ok(outgoing
        .iter()
        .cloned()
        .flat_map(|m| match m {
            Outgoing::Shipment(r) => r
                .per_warehouse(&allocation)
                .into_iter()
                .map(Outgoing::Shipment)
                .collect(),
            other => vec![other],
        })
        .collect())
}

/// The order's lines, read in the caller's transaction.
pub(crate) async fn lines_of(tx: &mut Tx, order_id: &str) -> Result<Vec<LineRecord>> {
    sqlx::query(LINES_SELECT)
        .bind(order_id)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(line_from_row)
        .collect()
}

/// Writes a new order and its lines (an order stored already: nothing);
/// returns whether it was new.
async fn insert_order(tx: &mut Tx, id: &str, order: &OrderInput, now: i64) -> Result<bool> {
    const ORDER: &str = "INSERT INTO orders (order_id, customer_id, transaction_id, status, \
                         total_minor, currency, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (order_id) DO NOTHING";
    const LINE_COLUMNS: &str = "order_id, line_no, sku, quantity, unit_price_minor";
    let n = order.lines.len();
    if tx.backend() == Backend::Postgres && n > 0 {
        // One round trip: the order, and its lines only when it is new (a
        // data-modifying CTE).
        let mut p = Placeholders::default();
        p.list(7); // the order's
        let sql = format!(
            "WITH o AS ({ORDER} RETURNING order_id), \
             v (line_no, sku, quantity, unit_price_minor) AS (VALUES {}), \
             l AS (INSERT INTO order_lines ({LINE_COLUMNS}) \
             SELECT o.order_id, v.line_no, v.sku, v.quantity, v.unit_price_minor \
             FROM o CROSS JOIN v) \
             SELECT COUNT(*) AS created FROM o",
            p.rows(n, 4)
        );
        let q = bind_lines(bind_order(sqlx::query(&sql), id, order, now), order);
        return Ok(q.fetch_one(&mut **tx).await?.try_get::<i64, _>("created")? == 1);
    }
    let created = bind_order(sqlx::query(ORDER), id, order, now)
        .execute(&mut **tx)
        .await?
        .rows_affected()
        == 1;
    if created && n > 0 {
        // The lines in one statement, each row's order id $1.
        let mut p = Placeholders::default();
        p.next();
        let rows = (0..n)
            .map(|_| format!("($1, {})", p.list(4)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO order_lines ({LINE_COLUMNS}) VALUES {rows}");
        bind_lines(sqlx::query(&sql).bind(id), order)
            .execute(&mut **tx)
            .await?;
    }
    Ok(created)
}

/// Binds each of an order's lines' number, sku, quantity and unit price,
/// after what `q` has bound.
fn bind_lines<'q>(
    mut q: Query<'q, sqlx::Any, AnyArguments<'q>>,
    order: &'q OrderInput,
) -> Query<'q, sqlx::Any, AnyArguments<'q>> {
    for (line_no, line) in (0_i64..).zip(&order.lines) {
        q = q
            .bind(line_no)
            .bind(line.sku.as_str())
            .bind(line.quantity)
            .bind(line.unit_price.minor);
    }
    q
}

/// Binds an order's columns ($1 to $7 of `insert_order`'s statements).
fn bind_order<'q>(
    q: Query<'q, sqlx::Any, AnyArguments<'q>>,
    id: &'q str,
    order: &'q OrderInput,
    now: i64,
) -> Query<'q, sqlx::Any, AnyArguments<'q>> {
    q.bind(id)
        .bind(order.customer_id.as_str())
        .bind(order.transaction_id.to_string())
        .bind(OrderStatus::Pending.as_str())
        .bind(order.total.minor)
        .bind(order.total.currency.as_str())
        .bind(now)
}

/// Records `event` in the order's history unless it is there already,
/// and, if `publish`, writes it to the event outbox the first time.
pub(crate) async fn insert_event(
    tx: &mut Tx,
    publish: bool,
    order_id: &str,
    event: OrderEvent,
    detail: Option<&str>,
    now: i64,
) -> Result<()> {
    insert_keyed_event(tx, publish, order_id, (event, None), detail, now).await
}

/// Records a shipment's `event` in the order's history, once per shipment
/// (the one from [`DEFAULT_WAREHOUSE`] keeps the key events had before an
/// order could ship twice); the detail names any other warehouse.
pub(crate) async fn insert_shipment_event(
    tx: &mut Tx,
    publish: bool,
    order_id: &str,
    event: OrderEvent,
    warehouse: &str,
    now: i64,
) -> Result<()> {
    let other = (warehouse != DEFAULT_WAREHOUSE).then_some(warehouse);
    let detail = other.map(|w| format!("from {w}"));
    insert_keyed_event(
        tx,
        publish,
        order_id,
        (event, other),
        detail.as_deref(),
        now,
    )
    .await
}

/// Binds a history row's five columns.
fn bind_history<'q>(
    q: Query<'q, sqlx::Any, AnyArguments<'q>>,
    order_id: &'q str,
    (event, shipment): (OrderEvent, Option<&'q str>),
    detail: Option<&'q str>,
    now: i64,
) -> Query<'q, sqlx::Any, AnyArguments<'q>> {
    q.bind(order_id)
        .bind(event.as_str())
        .bind(shipment.unwrap_or(""))
        .bind(detail)
        .bind(now)
}

async fn insert_keyed_event(
    tx: &mut Tx,
    publish: bool,
    order_id: &str,
    (event, shipment): (OrderEvent, Option<&str>),
    detail: Option<&str>,
    now: i64,
) -> Result<()> {
    let insert = "INSERT INTO order_events (order_id, event, shipment, detail, occurred_at) \
                  VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id, event, shipment) DO NOTHING";
    let bind = |q| bind_history(q, order_id, (event, shipment), detail, now);
    if publish && tx.backend() == Backend::Postgres {
        // One round trip: the history row, and the order for its event
        // only when the row is new (an event's order exists: the history
        // row's foreign key).
        let sql = format!(
            "WITH ins AS ({insert} RETURNING order_id) \
             SELECT {ORDER_EVENT_COLUMNS} FROM ins JOIN {ORDER_EVENT_FROM} \
             ON o.order_id = ins.order_id ORDER BY l.line_no"
        );
        let rows = bind(sqlx::query(&sql)).fetch_all(&mut **tx).await?;
        if !rows.is_empty() {
            events::order_event_of(tx, order_id, &rows, 1, (event, shipment), detail, now)?;
        }
        return Ok(());
    }
    let inserted = bind(sqlx::query(insert))
        .execute(&mut **tx)
        .await?
        .rows_affected()
        == 1;
    if inserted && publish {
        events::order_event(tx, order_id, (event, shipment), detail, now).await?;
    }
    Ok(())
}

/// An order's header, with why it needs an operator (`attention`): its
/// first open parked compensation, else its first open reconciler finding.
fn summary_select() -> String {
    format!(
        "SELECT order_id, customer_id, transaction_id, status, total_minor, currency, \
         failure_code, failure_reason, created_at, updated_at, \
         COALESCE((SELECT MIN(a.compensation || ': ' || a.reason) FROM compensation_attention a \
          WHERE a.order_id = orders.order_id AND a.status = '{}'), ({FIRST_OPEN_FINDING})) \
          AS attention \
         FROM orders",
        AttentionStatus::Open
    )
}

const LINES_SELECT: &str = "SELECT sku, quantity, unit_price_minor FROM order_lines \
     WHERE order_id = $1 ORDER BY line_no";

fn summary_from_row(row: &AnyRow) -> Result<OrderSummary> {
    Ok(OrderSummary {
        order_id: parse_col(row, "order_id")?,
        customer_id: parse_col(row, "customer_id")?,
        transaction_id: parse_col(row, "transaction_id")?,
        status: parse_col(row, "status")?,
        total: money(row, "total_minor")?,
        failure_code: row.try_get("failure_code")?,
        failure_reason: row.try_get("failure_reason")?,
        attention: row.try_get("attention")?,
        created_at_ms: row.try_get("created_at")?,
        updated_at_ms: row.try_get("updated_at")?,
    })
}

pub(crate) fn line_from_row(row: &AnyRow) -> Result<LineRecord> {
    Ok(LineRecord {
        sku: parse_col(row, "sku")?,
        quantity: row.try_get("quantity")?,
        unit_price_minor: row.try_get("unit_price_minor")?,
    })
}
