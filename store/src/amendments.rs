//! The amendments repository (`partial-availability-v1`): the amended
//! order proposed when some lines of a paid order cannot be served
//! (written by [`crate::Stock::deduct_amendable`] with the held stock and
//! the order's move to `ACTION_REQUIRED`), its acceptance with the partial
//! refund, and its decline when the order fails.

use ordersaga_domain::{Amendment, AmendmentStatus, Money, OrderEvent, OrderId, OrderLine, Sku};
use sqlx::Row;

use crate::db::{Tx, corrupt, money, now_ms, parse_col};
use crate::orders::{insert_event, lines_of};
use crate::{Result, Store};

/// A stored amendment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmendmentRecord {
    /// Where it is.
    pub status: AmendmentStatus,
    /// What was proposed.
    pub amendment: Amendment,
    /// Until when the customer may decide, Unix ms.
    pub deadline_at_ms: i64,
    /// `ACCEPTED`: what the gateway gave back.
    pub refunded: Option<Money>,
}

/// The amendments repository; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Amendments<'a> {
    store: &'a Store,
}

impl<'a> Amendments<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// The order's amendment, if one was proposed.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "amendments.get", otel.kind = "client"))]
    pub async fn get(self, order_id: &OrderId) -> Result<Option<AmendmentRecord>> {
        let mut tx = Tx::new(self.store.pool.begin().await?, self.store.backend);
        let record = amendment_of(&mut tx, &order_id.to_string()).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// The customer accepted and the missing lines' amount (`refunded`)
    /// came back from the gateway: `PROPOSED` -> `ACCEPTED` with
    /// `AmendmentAccepted`, `PaymentPartiallyRefunded` and
    /// `InventoryProcessed` (the held stock is the order's now), and the
    /// order's spending reservation shrinks by the refund. Once: a retry
    /// changes nothing. Returns whether this call recorded it.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "amendments.accept", otel.kind = "client"))]
    pub async fn accept(self, order_id: &OrderId, refunded: Money) -> Result<bool> {
        let now = now_ms();
        let id = order_id.to_string();
        let mut tx = self.store.begin_write().await?;
        let accepted = sqlx::query(
            "UPDATE order_amendments SET status = $1, refunded_minor = $2, updated_at = $3 \
             WHERE order_id = $4 AND status = $5",
        )
        .bind(AmendmentStatus::Accepted.as_str())
        .bind(refunded.minor)
        .bind(now)
        .bind(&id)
        .bind(AmendmentStatus::Proposed.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if accepted {
            let events = self.store.events;
            let refund = format!("{refunded} refunded");
            insert_event(
                &mut tx,
                events,
                &id,
                OrderEvent::AmendmentAccepted,
                None,
                now,
            )
            .await?;
            insert_event(
                &mut tx,
                events,
                &id,
                OrderEvent::PaymentPartiallyRefunded,
                Some(&refund),
                now,
            )
            .await?;
            insert_event(
                &mut tx,
                events,
                &id,
                OrderEvent::InventoryProcessed,
                None,
                now,
            )
            .await?;
            // The refunded part no longer counts against the customer's
            // spending limit.
            sqlx::query(
                "UPDATE spending_reservations SET amount_minor = amount_minor - $1, \
                 updated_at = $2 WHERE order_id = $3 AND status = $4 AND amount_minor >= $1",
            )
            .bind(refunded.minor)
            .bind(now)
            .bind(&id)
            .bind(crate::spending::RESERVED)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(accepted)
    }
}

/// A proposed amendment is declined when its order fails (cancelled, or
/// the deadline passed); `FailOrder` calls this in its transaction.
pub(crate) async fn decline(tx: &mut Tx, order_id: &str, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE order_amendments SET status = $1, updated_at = $2 \
         WHERE order_id = $3 AND status = $4",
    )
    .bind(AmendmentStatus::Declined.as_str())
    .bind(now)
    .bind(order_id)
    .bind(AmendmentStatus::Proposed.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The order's amendment rebuilt from its lines and the stored missing
/// products, so it is the one proposed.
async fn amendment_of(tx: &mut Tx, order_id: &str) -> Result<Option<AmendmentRecord>> {
    let Some(row) = sqlx::query(
        "SELECT status, missing_skus, refund_minor, currency, deadline_secs, deadline_at, \
         refunded_minor FROM order_amendments WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let refund = money(&row, "refund_minor")?;
    let missing: Vec<Sku> = serde_json::from_str(&row.try_get::<String, _>("missing_skus")?)
        .map_err(|e| corrupt(format!("missing_skus: {e}")))?;
    let lines: Vec<OrderLine> = lines_of(tx, order_id)
        .await?
        .into_iter()
        .map(|l| OrderLine {
            sku: l.sku,
            quantity: l.quantity,
            unit_price: Money::new(l.unit_price_minor, refund.currency),
        })
        .collect();
    let deadline_secs: i64 = row.try_get("deadline_secs")?;
    let deadline_secs = u64::try_from(deadline_secs).map_err(corrupt)?;
    let amendment = Amendment::propose(&lines, &missing, deadline_secs)
        .ok_or_else(|| corrupt(format!("order {order_id}: its amendment has no lines")))?;
    let refunded = row
        .try_get::<Option<i64>, _>("refunded_minor")?
        .map(|minor| Money::new(minor, refund.currency));
    Ok(Some(AmendmentRecord {
        status: parse_col(&row, "status")?,
        amendment,
        deadline_at_ms: row.try_get("deadline_at")?,
        refunded,
    }))
}
