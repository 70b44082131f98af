//! The sandbox's persistent books in SQLite: orders, captures, refunds, the
//! idempotency cache and the per-transaction counters.
//!
//! Callers serialise writes (see `App::write`) and run each step in one
//! transaction, so check-then-act sequences here are atomic and a crash
//! leaves either all of a step or none of it.

use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::SandboxError;

/// An order as stored, with its capture and refunds.
#[derive(Debug, Clone)]
pub(crate) struct OrderRow {
    pub id: String,
    pub status: String,
    pub custom_id: Option<String>,
    pub invoice_id: Option<String>,
    pub description: Option<String>,
    pub currency: String,
    pub value: String,
    pub return_url: Option<String>,
    pub cancel_url: Option<String>,
    pub behavior: String,
    pub payer_email: Option<String>,
    pub create_time: String,
    pub update_time: String,
    pub capture: Option<CaptureRow>,
    /// Its capture's refunds, oldest first.
    pub refunds: Vec<RefundRow>,
}

/// An order's capture.
#[derive(Debug, Clone)]
pub(crate) struct CaptureRow {
    pub id: String,
    pub status: String,
    pub create_time: String,
}

/// One refund of a capture (of all of it, or a part).
#[derive(Debug, Clone)]
pub(crate) struct RefundRow {
    pub id: String,
    /// Decimal string in the order's currency.
    pub value: String,
    pub create_time: String,
}

/// What tests assert on, per `transactionId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Orders created for it (idempotent replays excluded).
    pub orders: i64,
    /// Capture calls received, replays and refusals included.
    pub capture_requests: i64,
    /// Captures that took money (at most 1 if idempotency holds).
    pub captures: i64,
    /// Refund calls received, replays and refusals included.
    pub refund_requests: i64,
    /// Refunds that gave money back (each partial refund counts; at most
    /// 1 for full refunds if idempotency holds).
    pub refunds: i64,
    /// The amounts its capture's refunds gave back (decimal strings in the
    /// order's currency), oldest first: what a partial refund took.
    pub refunded: Vec<String>,
}

/// A counter of [`Counts`]; a closed set, so column names never come from input.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    Orders,
    CaptureRequests,
    Captures,
    RefundRequests,
    Refunds,
}

impl Counter {
    fn column(self) -> &'static str {
        match self {
            Self::Orders => "orders",
            Self::CaptureRequests => "capture_requests",
            Self::Captures => "captures",
            Self::RefundRequests => "refund_requests",
            Self::Refunds => "refunds",
        }
    }
}

/// Opens (creating if needed) the database and applies the migrations.
pub(crate) async fn connect(url: &str) -> Result<SqlitePool, SandboxError> {
    let options = SqliteConnectOptions::from_str(url)?
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    // sqlx creates the file (`mode=rwc`) but not its directory.
    if let Some(dir) = options.get_filename().parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(pool)
}

const ORDER_COLUMNS: &str = "o.id, o.status, o.custom_id, o.invoice_id, o.description, \
    o.currency, o.value, o.return_url, o.cancel_url, o.behavior, o.payer_email, \
    o.create_time, o.update_time, c.id AS capture_id, c.status AS capture_status, \
    c.create_time AS capture_time";

const ORDER_FROM: &str = "FROM orders o LEFT JOIN captures c ON c.order_id = o.id";

fn order_row(row: &sqlx::sqlite::SqliteRow) -> Result<OrderRow, sqlx::Error> {
    let capture = match row.try_get::<Option<String>, _>("capture_id")? {
        Some(id) => Some(CaptureRow {
            id,
            status: row.try_get("capture_status")?,
            create_time: row.try_get("capture_time")?,
        }),
        None => None,
    };
    Ok(OrderRow {
        id: row.try_get("id")?,
        status: row.try_get("status")?,
        custom_id: row.try_get("custom_id")?,
        invoice_id: row.try_get("invoice_id")?,
        description: row.try_get("description")?,
        currency: row.try_get("currency")?,
        value: row.try_get("value")?,
        return_url: row.try_get("return_url")?,
        cancel_url: row.try_get("cancel_url")?,
        behavior: row.try_get("behavior")?,
        payer_email: row.try_get("payer_email")?,
        create_time: row.try_get("create_time")?,
        update_time: row.try_get("update_time")?,
        capture,
        refunds: Vec::new(),
    })
}

/// The order of `row` with its capture's refunds.
async fn with_refunds(
    conn: &mut SqliteConnection,
    row: Option<sqlx::sqlite::SqliteRow>,
) -> Result<Option<OrderRow>, sqlx::Error> {
    let Some(mut order) = row.as_ref().map(order_row).transpose()? else {
        return Ok(None);
    };
    if let Some(capture) = &order.capture {
        order.refunds = sqlx::query(
            "SELECT id, value, create_time FROM refunds WHERE capture_id = $1 \
             ORDER BY create_time, id",
        )
        .bind(&capture.id)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| {
            Ok(RefundRow {
                id: r.try_get("id")?,
                value: r.try_get("value")?,
                create_time: r.try_get("create_time")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    }
    Ok(Some(order))
}

/// One order by id.
pub(crate) async fn order(
    conn: &mut SqliteConnection,
    id: &str,
) -> Result<Option<OrderRow>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {ORDER_COLUMNS} {ORDER_FROM} WHERE o.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    with_refunds(conn, row).await
}

/// The order a capture belongs to.
pub(crate) async fn order_of_capture(
    conn: &mut SqliteConnection,
    capture_id: &str,
) -> Result<Option<OrderRow>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {ORDER_COLUMNS} {ORDER_FROM} WHERE c.id = $1"
    ))
    .bind(capture_id)
    .fetch_optional(&mut *conn)
    .await?;
    with_refunds(conn, row).await
}

/// Stores a new order (without capture or refund).
pub(crate) async fn insert_order(
    conn: &mut SqliteConnection,
    o: &OrderRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO orders (id, status, custom_id, invoice_id, description, currency, value, \
         return_url, cancel_url, behavior, payer_email, create_time, update_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&o.id)
    .bind(&o.status)
    .bind(&o.custom_id)
    .bind(&o.invoice_id)
    .bind(&o.description)
    .bind(&o.currency)
    .bind(&o.value)
    .bind(&o.return_url)
    .bind(&o.cancel_url)
    .bind(&o.behavior)
    .bind(&o.payer_email)
    .bind(&o.create_time)
    .bind(&o.update_time)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves an order to `status` (and records the payer, when given).
pub(crate) async fn set_order_status(
    conn: &mut SqliteConnection,
    id: &str,
    status: &str,
    payer_email: Option<&str>,
    now: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders SET status = $2, payer_email = COALESCE($3, payer_email), \
         update_time = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(payer_email)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records an order's capture.
pub(crate) async fn insert_capture(
    conn: &mut SqliteConnection,
    order_id: &str,
    capture: &CaptureRow,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO captures (id, order_id, status, create_time) VALUES ($1, $2, $3, $4)")
        .bind(&capture.id)
        .bind(order_id)
        .bind(&capture.status)
        .bind(&capture.create_time)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a refund of a capture and sets the capture's status:
/// `REFUNDED` when nothing is left to refund, else `PARTIALLY_REFUNDED`.
pub(crate) async fn insert_refund(
    conn: &mut SqliteConnection,
    capture_id: &str,
    refund: &RefundRow,
    fully_refunded: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO refunds (id, capture_id, value, create_time) VALUES ($1, $2, $3, $4)")
        .bind(&refund.id)
        .bind(capture_id)
        .bind(&refund.value)
        .bind(&refund.create_time)
        .execute(&mut *conn)
        .await?;
    let status = if fully_refunded {
        "REFUNDED"
    } else {
        "PARTIALLY_REFUNDED"
    };
    sqlx::query("UPDATE captures SET status = $1 WHERE id = $2")
        .bind(status)
        .bind(capture_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The stored answer of an earlier call with this request id.
pub(crate) async fn cached_answer(
    conn: &mut SqliteConnection,
    scope: &str,
    request_id: &str,
) -> Result<Option<(u16, String)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT status_code, body FROM idempotency WHERE scope = $1 AND request_id = $2",
    )
    .bind(scope)
    .bind(request_id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        let code: i64 = r.try_get("status_code")?;
        Ok((u16::try_from(code).unwrap_or(500), r.try_get("body")?))
    })
    .transpose()
}

/// Stores the answer of a call so a retry with its request id gets it again.
pub(crate) async fn remember_answer(
    conn: &mut SqliteConnection,
    scope: &str,
    request_id: &str,
    status: u16,
    body: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO idempotency (scope, request_id, status_code, body) VALUES ($1, $2, $3, $4)",
    )
    .bind(scope)
    .bind(request_id)
    .bind(i64::from(status))
    .bind(body)
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds one to a counter of a transaction.
pub(crate) async fn bump(
    conn: &mut SqliteConnection,
    transaction_id: &str,
    counter: Counter,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO transactions (transaction_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(transaction_id)
        .execute(&mut *conn)
        .await?;
    let column = counter.column();
    sqlx::query(&format!(
        "UPDATE transactions SET {column} = {column} + 1 WHERE transaction_id = $1"
    ))
    .bind(transaction_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The counters of a transaction, if the sandbox ever saw it.
pub(crate) async fn counts(
    pool: &SqlitePool,
    transaction_id: &str,
) -> Result<Option<Counts>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT orders, capture_requests, captures, refund_requests, refunds \
         FROM transactions WHERE transaction_id = $1",
    )
    .bind(transaction_id)
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    let refunded = sqlx::query(
        "SELECT r.value FROM refunds r JOIN captures c ON c.id = r.capture_id \
         JOIN orders o ON o.id = c.order_id WHERE o.custom_id = $1 \
         ORDER BY r.create_time, r.id",
    )
    .bind(transaction_id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|v| v.try_get("value"))
    .collect::<Result<Vec<String>, _>>()?;
    Ok(Some(Counts {
        orders: r.try_get("orders")?,
        capture_requests: r.try_get("capture_requests")?,
        captures: r.try_get("captures")?,
        refund_requests: r.try_get("refund_requests")?,
        refunds: r.try_get("refunds")?,
        refunded,
    }))
}
