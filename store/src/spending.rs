//! The spending repository: each customer's spending limit (set, changed
//! or removed by a manager) and the reservations the saga's
//! `ReserveSpending` step makes against it, one per order.
//!
//! What counts is the domain's rule ([`ordersaga_domain::spending`]): the
//! `RESERVED` amounts of the customer's orders in the limit's currency.
//! A reservation is decided in one transaction that first takes the
//! customer's `spending_limits` row (a PostgreSQL row lock; SQLite's
//! `BEGIN IMMEDIATE` serialises every writer), so two orders racing the
//! limit are decided one after the other and cannot both pass. It is keyed
//! by the order: a retried step answers what the first one decided.

use ordersaga_domain::spending::check_limit;
use ordersaga_domain::{Currency, CustomerId, FailureReason, Money, OrderId, OrderStatus};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Tx, corrupt, money, now_ms, parse_col};
use crate::{Backend, Result, Store, StoreError};

/// A customer's limit and what counts against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendingLimitRecord {
    /// The customer.
    pub customer_id: CustomerId,
    /// The limit; `None`: no limit.
    pub limit: Option<Money>,
    /// What counts against it: the customer's reserved (in flight or
    /// confirmed) orders in the limit's currency; `None` without a limit.
    pub spent: Option<Money>,
}

/// The spending repository; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Spending<'a> {
    store: &'a Store,
}

/// Where a reservation stands.
pub(crate) const RESERVED: &str = "RESERVED";
const RELEASED: &str = "RELEASED";
const REFUSED: &str = "REFUSED";

impl<'a> Spending<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Sets the customer's limit, or removes it (`None`). `by` names the
    /// manager. Orders already reserved keep counting; the next
    /// `ReserveSpending` is decided against the new limit.
    pub async fn set_limit(
        self,
        customer: &CustomerId,
        limit: Option<Money>,
        by: &str,
    ) -> Result<SpendingLimitRecord> {
        let mut tx = self.store.begin_write().await?;
        sqlx::query(
            "INSERT INTO spending_limits (customer_id, limit_minor, currency, updated_by, \
             updated_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (customer_id) DO UPDATE SET \
             limit_minor = excluded.limit_minor, currency = excluded.currency, \
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(customer.as_str())
        .bind(limit.map(|m| m.minor))
        .bind(limit.map(|m| m.currency.to_string()))
        .bind(by)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let record = read_limit(&mut tx, customer).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// The customer's limit and what counts against it (no row: no limit).
    pub async fn limit(self, customer: &CustomerId) -> Result<SpendingLimitRecord> {
        let mut tx = Tx::new(self.store.pool.begin().await?, self.store.backend);
        let record = read_limit(&mut tx, customer).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// `ReserveSpending`: the order's total counts against its customer's
    /// limit from now on, or, when it would take the customer over it, the
    /// order is refused with [`FailureReason::SpendingLimitExceeded`] and
    /// nothing counts. Decided once: a retry answers the stored outcome
    /// (even for an order that has failed since, so its release runs). An
    /// order that is no longer `PENDING` is refused
    /// ([`StoreError::OrderEnded`]) unless an earlier attempt decided.
    pub async fn reserve(self, order_id: &OrderId) -> Result<Result<(), FailureReason>> {
        let id = order_id.to_string();
        let now = now_ms();
        let mut tx = self.store.begin_write().await?;
        // An earlier attempt's decision is read only where one shows: an
        // order no longer pending, or a reservation the insert below finds
        // already there. A first attempt reads nothing before deciding.
        // The no-op update locks the order's row on PostgreSQL (a
        // concurrent `FailOrder` waits), as `ProcessInventory` does.
        let locked = match tx.backend() {
            Backend::Postgres => lock_in_one_statement(&mut tx, &id).await?,
            Backend::Sqlite => lock_step_by_step(&mut tx, &id).await?,
        };
        let Some(Locked {
            customer,
            requested,
            limit,
        }) = locked
        else {
            if let Some(decided) = reservation(&mut tx, &id).await? {
                tx.rollback().await?;
                return Ok(decided);
            }
            let status = sqlx::query("SELECT status FROM orders WHERE order_id = $1")
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
            tx.rollback().await?;
            return Err(match status {
                Some(row) => StoreError::OrderEnded {
                    order_id: *order_id,
                    status: parse_col(&row, "status")?,
                },
                None => StoreError::OrderNotFound(*order_id),
            });
        };
        let limit = match limit {
            Some(limit) => limit,
            // The customer's first order: its row is created (no limit)
            // and then locked. A concurrent creation makes the insert wait
            // for it and then do nothing.
            None => {
                sqlx::query(
                    "INSERT INTO spending_limits (customer_id, updated_at) VALUES ($1, $2) \
                     ON CONFLICT (customer_id) DO NOTHING",
                )
                .bind(customer.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query(LOCK_CUSTOMER)
                    .bind(customer.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                limit_of(&row, "currency")?
            }
        };
        let decision = match limit {
            None => Ok(()),
            Some(limit) => {
                let spent = reserved_total(&mut tx, &customer, limit).await?;
                check_limit(limit, spent, requested)
            }
        };
        let (status, limit_minor, limit_currency, spent_minor) = match &decision {
            Ok(()) => (RESERVED, None, None, None),
            Err(FailureReason::SpendingLimitExceeded { limit, spent, .. }) => (
                REFUSED,
                Some(limit.minor),
                Some(limit.currency.to_string()),
                Some(spent.minor),
            ),
            Err(other) => return Err(corrupt(format!("unexpected refusal {other}"))),
        };
        let inserted = sqlx::query(
            "INSERT INTO spending_reservations (order_id, customer_id, amount_minor, currency, \
             status, limit_minor, limit_currency, spent_minor, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(&id)
        .bind(customer.as_str())
        .bind(requested.minor)
        .bind(requested.currency.to_string())
        .bind(status)
        .bind(limit_minor)
        .bind(limit_currency)
        .bind(spent_minor)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            // An earlier attempt decided: its answer stands, not this one.
            let decided = reservation(&mut tx, &id).await?.ok_or_else(|| {
                corrupt(format!(
                    "order {id}: reservation neither written nor stored"
                ))
            })?;
            tx.rollback().await?;
            return Ok(decided);
        }
        tx.commit().await?;
        Ok(decision)
    }

    /// Compensation of `ReserveSpending`: the order's reservation stops
    /// counting. Nothing reserved (refused, or released already): nothing
    /// to do. Returns whether this call released it.
    pub async fn release(self, order_id: &OrderId) -> Result<bool> {
        let mut tx = self.store.begin_write().await?;
        let released = sqlx::query(
            "UPDATE spending_reservations SET status = $1, updated_at = $2 \
             WHERE order_id = $3 AND status = $4",
        )
        .bind(RELEASED)
        .bind(now_ms())
        .bind(order_id.to_string())
        .bind(RESERVED)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(released)
    }

    /// The order's reservation status (`RESERVED`, `RELEASED`, `REFUSED`),
    /// if it has one.
    pub async fn reservation_status(self, order_id: &OrderId) -> Result<Option<String>> {
        Ok(
            sqlx::query("SELECT status FROM spending_reservations WHERE order_id = $1")
                .bind(order_id.to_string())
                .fetch_optional(&self.store.pool)
                .await?
                .map(|r| r.try_get("status"))
                .transpose()?,
        )
    }
}

/// The limit of a `spending_limits` row (its currency in column
/// `currency`), if one is set.
fn limit_of(row: &AnyRow, currency: &str) -> Result<Option<Money>> {
    let minor: Option<i64> = row.try_get("limit_minor")?;
    match minor {
        Some(minor) => {
            let currency: String = row.try_get(currency)?;
            Ok(Some(Money::new(
                minor,
                Currency::parse(&currency).map_err(corrupt)?,
            )))
        }
        None => Ok(None),
    }
}

/// A pending order's row and its customer's `spending_limits` row, both
/// locked for a reservation: a concurrent `FailOrder` waits for the
/// order's, the customer's other reservations for the customer's.
struct Locked {
    customer: CustomerId,
    requested: Money,
    /// The customer's limit (`None` inside: no limit set); `None`: the
    /// customer has no row yet.
    limit: Option<Option<Money>>,
}

/// The no-op update that locks a pending order's row, with what a
/// reservation needs of it.
const LOCK_PENDING_ORDER: &str = "UPDATE orders SET updated_at = updated_at \
     WHERE order_id = $1 AND status = $2 RETURNING customer_id, total_minor, currency";

/// The no-op update that locks a customer's `spending_limits` row.
const LOCK_CUSTOMER: &str = "UPDATE spending_limits SET customer_id = customer_id \
     WHERE customer_id = $1 RETURNING limit_minor, currency";

/// [`Locked`] on PostgreSQL: both locks in one round trip, the order's
/// first (the customer's update reads its row), as [`lock_step_by_step`]
/// takes them. `None`: the order is not pending.
async fn lock_in_one_statement(tx: &mut Tx, id: &str) -> Result<Option<Locked>> {
    let sql = format!(
        "WITH o AS ({LOCK_PENDING_ORDER}), \
         c AS (UPDATE spending_limits SET customer_id = customer_id \
         WHERE customer_id IN (SELECT customer_id FROM o) RETURNING limit_minor, currency) \
         SELECT o.customer_id, o.total_minor, o.currency, c.limit_minor, \
         c.currency AS limit_currency, (SELECT COUNT(*) FROM c) AS customer_locked \
         FROM o LEFT JOIN c ON TRUE"
    );
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(OrderStatus::Pending.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let limit = match row.try_get::<i64, _>("customer_locked")? {
        0 => None,
        _ => Some(limit_of(&row, "limit_currency")?),
    };
    Ok(Some(Locked {
        customer: parse_col(&row, "customer_id")?,
        requested: money(&row, "total_minor")?,
        limit,
    }))
}

/// [`Locked`] on SQLite (no data-modifying CTEs): the order's lock, then
/// the customer's.
async fn lock_step_by_step(tx: &mut Tx, id: &str) -> Result<Option<Locked>> {
    let order = sqlx::query(LOCK_PENDING_ORDER)
        .bind(id)
        .bind(OrderStatus::Pending.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    let Some(order) = order else {
        return Ok(None);
    };
    let customer: CustomerId = parse_col(&order, "customer_id")?;
    let limit = sqlx::query(LOCK_CUSTOMER)
        .bind(customer.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .map(|row| limit_of(&row, "currency"))
        .transpose()?;
    Ok(Some(Locked {
        customer,
        requested: money(&order, "total_minor")?,
        limit,
    }))
}

/// What counts against `limit`: the customer's reserved amounts in its
/// currency.
async fn reserved_total(tx: &mut Tx, customer: &CustomerId, limit: Money) -> Result<Money> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) AS spent FROM spending_reservations \
         WHERE customer_id = $1 AND status = $2 AND currency = $3",
    )
    .bind(customer.as_str())
    .bind(RESERVED)
    .bind(limit.currency.to_string())
    .fetch_one(&mut **tx)
    .await?;
    Ok(Money::new(row.try_get("spent")?, limit.currency))
}

async fn read_limit(tx: &mut Tx, customer: &CustomerId) -> Result<SpendingLimitRecord> {
    let row =
        sqlx::query("SELECT limit_minor, currency FROM spending_limits WHERE customer_id = $1")
            .bind(customer.as_str())
            .fetch_optional(&mut **tx)
            .await?;
    let limit = match &row {
        Some(row) => limit_of(row, "currency")?,
        None => None,
    };
    let spent = match limit {
        Some(limit) => Some(reserved_total(tx, customer, limit).await?),
        None => None,
    };
    Ok(SpendingLimitRecord {
        customer_id: customer.clone(),
        limit,
        spent,
    })
}

/// How the order's reservation was decided, if it was.
async fn reservation(tx: &mut Tx, id: &str) -> Result<Option<Result<(), FailureReason>>> {
    let Some(row) = sqlx::query(
        "SELECT status, amount_minor, currency, limit_minor, limit_currency, spent_minor \
         FROM spending_reservations WHERE order_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let status: String = row.try_get("status")?;
    if status != REFUSED {
        return Ok(Some(Ok(())));
    }
    let requested = money(&row, "amount_minor")?;
    let currency: Option<String> = row.try_get("limit_currency")?;
    let currency = match currency {
        Some(code) => Currency::parse(&code).map_err(corrupt)?,
        None => requested.currency,
    };
    let at = |col: &str| -> Result<Money> {
        let minor: Option<i64> = row.try_get(col)?;
        Ok(Money::new(minor.unwrap_or(0), currency))
    };
    Ok(Some(Err(FailureReason::SpendingLimitExceeded {
        limit: at("limit_minor")?,
        spent: at("spent_minor")?,
        requested,
    })))
}
