//! The simulated payment gateway's books (table `simulated_gateway`): what
//! that in-process gateway charged and refunded per `transactionId`, kept in
//! the shop database so they survive worker restarts and tests can count
//! captures. The gateway decides; these books only remember, once per
//! transaction, and count every call.

use ordersaga_domain::{Money, PaymentStatus, TransactionId};
use sqlx::Row;

use crate::db::parse_col;
use crate::{Result, Store};

/// The simulated gateway's books for one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayLedger {
    /// `CAPTURED`, `DECLINED` or `REFUNDED`.
    pub status: PaymentStatus,
    /// Charge calls received (retries included).
    pub charge_requests: i64,
    /// Charges that moved money (at most 1 if idempotency holds).
    pub captures: i64,
    /// Refunds that moved money back (at most 1).
    pub refunds: i64,
}

/// The simulated gateway's books; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct GatewayBooks<'a> {
    store: &'a Store,
}

impl<'a> GatewayBooks<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Books a charge. The first call for a transaction decides it:
    /// captured, or declined with `decline` as the reason; later calls only
    /// count as requests. Returns how the transaction's charge went:
    /// `Ok(())` captured (refunded since, perhaps), `Err(reason)` declined.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "gateway_books.charge", otel.kind = "client"))]
    pub async fn charge(
        self,
        transaction_id: &TransactionId,
        amount: Money,
        decline: Option<&str>,
    ) -> Result<std::result::Result<(), String>> {
        let (status, captures) = match decline {
            Some(_) => (PaymentStatus::Declined, 0_i64),
            None => (PaymentStatus::Captured, 1_i64),
        };
        // One statement: the first call inserts the decision, a later one
        // only counts, and both read back the decision that stands.
        let row = sqlx::query(
            "INSERT INTO simulated_gateway (transaction_id, amount_minor, currency, status, \
             decline_reason, charge_requests, captures, refunds) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, 0) ON CONFLICT (transaction_id) \
             DO UPDATE SET charge_requests = simulated_gateway.charge_requests + 1 \
             RETURNING status, decline_reason",
        )
        .bind(transaction_id.to_string())
        .bind(amount.minor)
        .bind(amount.currency.as_str())
        .bind(status.as_str())
        .bind(decline)
        .bind(captures)
        .fetch_one(&self.store.writer)
        .await?;
        Ok(match parse_col(&row, "status")? {
            PaymentStatus::Declined => Err(row
                .try_get::<Option<String>, _>("decline_reason")?
                .unwrap_or_default()),
            _ => Ok(()),
        })
    }

    /// Books the refund of the transaction's capture, once. Returns whether
    /// the capture is refunded (by this call or an earlier one); `false`:
    /// nothing was captured under this transaction.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "gateway_books.refund", otel.kind = "client"))]
    pub async fn refund(self, transaction_id: &TransactionId) -> Result<bool> {
        let txn = transaction_id.to_string();
        let mut tx = self.store.begin_write().await?;
        sqlx::query(
            "UPDATE simulated_gateway SET status = $1, refunds = refunds + 1 \
             WHERE transaction_id = $2 AND status = $3",
        )
        .bind(PaymentStatus::Refunded.as_str())
        .bind(&txn)
        .bind(PaymentStatus::Captured.as_str())
        .execute(&mut *tx)
        .await?;
        let status: Option<PaymentStatus> =
            sqlx::query("SELECT status FROM simulated_gateway WHERE transaction_id = $1")
                .bind(&txn)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| parse_col(&r, "status"))
                .transpose()?;
        tx.commit().await?;
        Ok(status == Some(PaymentStatus::Refunded))
    }

    /// The books for one transaction, if the gateway ever saw it.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "gateway_books.ledger", otel.kind = "client"))]
    pub async fn ledger(self, transaction_id: &TransactionId) -> Result<Option<GatewayLedger>> {
        sqlx::query(
            "SELECT status, charge_requests, captures, refunds FROM simulated_gateway \
             WHERE transaction_id = $1",
        )
        .bind(transaction_id.to_string())
        .fetch_optional(&self.store.pool)
        .await?
        .map(|r| {
            Ok(GatewayLedger {
                status: parse_col(&r, "status")?,
                charge_requests: r.try_get("charge_requests")?,
                captures: r.try_get("captures")?,
                refunds: r.try_get("refunds")?,
            })
        })
        .transpose()
    }
}
