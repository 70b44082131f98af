//! The idempotency-keys repository: which request a `PlaceOrder` key
//! belongs to. The API claims the key before it starts the saga, so the
//! answer does not depend on whether the saga has stored the order yet.

use ordersaga_domain::{CustomerId, Money, OrderId};

use crate::db::{money, now_ms, parse_col};
use crate::{Result, Store};

/// A `PlaceOrder` that carries an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyClaim {
    /// Whose key it is (keys are per customer).
    pub customer_id: CustomerId,
    /// The client's key.
    pub key: String,
    /// A hash of the canonical request: equal for the same request only.
    pub fingerprint: String,
    /// The order this key names.
    pub order_id: OrderId,
    /// This request's total.
    pub total: Money,
}

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// The key was free: it is now this request's.
    First,
    /// The same request claimed it before: answer as then, with its order
    /// and total.
    Replay {
        /// The order the first request was given.
        order_id: OrderId,
        /// The total the first request was answered with.
        total: Money,
    },
    /// Another request holds the key.
    Conflict,
}

/// The idempotency-keys repository; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyKeys<'a> {
    store: &'a Store,
}

impl<'a> IdempotencyKeys<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Claims the key for this request, or reports who holds it. Racing
    /// claims are settled by the primary key: exactly one inserts, the
    /// others read its row and compare fingerprints.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "idempotency.claim", otel.kind = "client"))]
    pub async fn claim(self, c: &KeyClaim) -> Result<Claimed> {
        let pool = &self.store.writer;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys \
             (customer_id, idem_key, fingerprint, order_id, total_minor, currency, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (customer_id, idem_key) DO NOTHING",
        )
        .bind(c.customer_id.as_str())
        .bind(&c.key)
        .bind(&c.fingerprint)
        .bind(c.order_id.to_string())
        .bind(c.total.minor)
        .bind(c.total.currency.as_str())
        .bind(now_ms())
        .execute(pool)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            return Ok(Claimed::First);
        }
        let row = sqlx::query(
            "SELECT fingerprint, order_id, total_minor, currency FROM idempotency_keys \
             WHERE customer_id = $1 AND idem_key = $2",
        )
        .bind(c.customer_id.as_str())
        .bind(&c.key)
        .fetch_one(pool)
        .await?;
        let fingerprint: String = sqlx::Row::try_get(&row, "fingerprint")?;
        if fingerprint == c.fingerprint {
            Ok(Claimed::Replay {
                order_id: parse_col(&row, "order_id")?,
                total: money(&row, "total_minor")?,
            })
        } else {
            Ok(Claimed::Conflict)
        }
    }
}
