//! What the repositories share: the transaction type, the clock, reading
//! typed columns back, and guarded status changes.

use std::fmt::Display;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use ordersaga_domain::{Currency, Money, OrderStatus, PaymentStatus};
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::events::{self, PendingEvent};
use crate::page::Placeholders;
use crate::{Backend, Result, StoreError};

/// A transaction on the shop database: the connection it runs on (what
/// `&mut **tx` hands to a query) and the domain events appended in it,
/// which [`Tx::commit`] numbers and writes last (`events` module).
pub(crate) struct Tx {
    inner: sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    events: Vec<PendingEvent>,
}

impl Tx {
    pub(crate) fn new(inner: sqlx::Transaction<'static, sqlx::Any>, backend: Backend) -> Self {
        Self {
            inner,
            backend,
            events: Vec::new(),
        }
    }

    /// The database it runs on, for the few statements written per backend.
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// Queues an event for the commit.
    pub(crate) fn push_event(&mut self, event: PendingEvent) {
        self.events.push(event);
    }

    /// Writes the queued events, then commits.
    pub(crate) async fn commit(mut self) -> Result<()> {
        let events = std::mem::take(&mut self.events);
        events::write_numbered(&mut self, events).await?;
        self.inner.commit().await?;
        Ok(())
    }

    /// Undoes everything, queued events included.
    pub(crate) async fn rollback(self) -> Result<()> {
        self.inner.rollback().await?;
        Ok(())
    }
}

impl Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A stored value that does not parse back.
pub(crate) fn corrupt(what: impl Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// A text column parsed back into its domain type (ids, statuses, events).
pub(crate) fn parse_col<T: FromStr>(row: &AnyRow, col: &str) -> Result<T>
where
    T::Err: Display,
{
    let text: String = row.try_get(col)?;
    text.parse::<T>()
        .map_err(|e| corrupt(format!("{col}: {e}")))
}

/// Money from the `minor` column and the row's `currency`.
pub(crate) fn money(row: &AnyRow, minor: &str) -> Result<Money> {
    let currency = Currency::parse(&row.try_get::<String, _>("currency")?).map_err(corrupt)?;
    Ok(Money::new(row.try_get(minor)?, currency))
}

/// A stored status whose allowed changes the domain states.
pub(crate) trait Lifecycle: Copy + 'static {
    /// Every status.
    const ALL: &'static [Self];
    /// The stored name.
    fn text(self) -> &'static str;
    /// Whether the domain lets this status become `next`.
    fn may_become(self, next: Self) -> bool;
}

impl Lifecycle for OrderStatus {
    const ALL: &'static [Self] = OrderStatus::ALL;
    fn text(self) -> &'static str {
        self.as_str()
    }
    fn may_become(self, next: Self) -> bool {
        self.can_become(next)
    }
}

impl Lifecycle for PaymentStatus {
    const ALL: &'static [Self] = PaymentStatus::ALL;
    fn text(self) -> &'static str {
        self.as_str()
    }
    fn may_become(self, next: Self) -> bool {
        self.can_become(next)
    }
}

/// Moves one order's row in `table` to `to`, setting `columns` and
/// `updated_at` with it, but only from a status the domain lets become
/// `to`: the guard is built from the rule, so a retried or late step
/// changes nothing. Returns whether the row moved. `table` and the column
/// names are the store's own constants, never input.
pub(crate) async fn change_status<S: Lifecycle>(
    tx: &mut Tx,
    table: &str,
    order_id: &str,
    to: S,
    columns: &[(&str, Option<&str>)],
    now: i64,
) -> Result<bool> {
    Ok(
        change_status_returning(tx, table, order_id, to, columns, now, "order_id")
            .await?
            .is_some(),
    )
}

/// [`change_status`], returning the moved row's `returning` columns (a
/// list of the store's own column names): `None` when it did not move.
pub(crate) async fn change_status_returning<S: Lifecycle>(
    tx: &mut Tx,
    table: &str,
    order_id: &str,
    to: S,
    columns: &[(&str, Option<&str>)],
    now: i64,
    returning: &str,
) -> Result<Option<AnyRow>> {
    let from: Vec<S> = S::ALL
        .iter()
        .copied()
        .filter(|s| s.may_become(to))
        .collect();
    if from.is_empty() {
        // Nothing may become `to`.
        return Ok(None);
    }
    let mut p = Placeholders::default();
    let mut sql = format!("UPDATE {table} SET status = {}", p.next());
    for (column, _) in columns {
        sql += &format!(", {column} = {}", p.next());
    }
    sql += &format!(
        ", updated_at = {} WHERE order_id = {} AND status IN ({}) RETURNING {returning}",
        p.next(),
        p.next(),
        p.list(from.len())
    );
    let mut update = sqlx::query(&sql).bind(to.text());
    for (_, value) in columns {
        update = update.bind(*value);
    }
    update = update.bind(now).bind(order_id);
    for s in from {
        update = update.bind(s.text());
    }
    Ok(update.fetch_optional(&mut **tx).await?)
}
