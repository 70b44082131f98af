//! The payment gateway ports and their implementations.
//!
//! - [`PaymentGateway`] (this module): one synchronous charge per order, and
//!   the in-process [`SimulatedGateway`] of the simulated payment mode.
//! - [`checkout`]: the PayPal-style port (approval link, capture after
//!   approval, refund, void) of the saga's checkout payment mode;
//!   [`paypal`] implements it over HTTP against the payments sandbox or
//!   PayPal itself.
//! - [`webhook`]: the gateway's webhook events, read on the signing
//!   contract shared with the sandbox (`ordersaga-webhook-signature`).
//!
//! Every call carries the payment's `transactionId` as its idempotency key,
//! the way real gateways take `PayPal-Request-Id` / `Idempotency-Key`: the
//! same charge sent twice moves money once.

use std::time::Duration;

use async_trait::async_trait;
use ordersaga_domain::{Money, TransactionId};
use sqlx::Row;

use ordersaga_store::{Store, StoreError};

pub mod checkout;
pub mod paypal;
pub mod webhook;

/// A charge for an order's payment.
#[derive(Debug, Clone)]
pub struct ChargeRequest {
    /// Idempotency key of the charge.
    pub transaction_id: TransactionId,
    /// How much to capture.
    pub amount: Money,
}

/// What the gateway answered to a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// Money taken.
    Captured,
    /// The gateway refused; no money taken.
    Declined {
        /// The gateway's reason.
        reason: String,
    },
}

/// What the gateway answered to a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundOutcome {
    /// The capture is refunded (now or by an earlier call).
    Refunded,
    /// Nothing was captured under this transaction: nothing to give back.
    NothingCaptured,
}

/// The gateway could not answer; the caller should retry.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The gateway's own storage failed (simulated gateway).
    #[error("payment gateway storage failed")]
    Store(#[from] StoreError),
    /// A database error in the simulated gateway.
    #[error("payment gateway storage failed")]
    Database(#[from] sqlx::Error),
}

/// A payment gateway: charges and refunds, idempotent by `transactionId`.
#[async_trait]
pub trait PaymentGateway: Send + Sync + 'static {
    /// Captures the amount, or answers how an earlier charge with the same
    /// `transactionId` ended.
    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, GatewayError>;
    /// Refunds the capture of this transaction, if there is one.
    async fn refund(&self, transaction_id: &TransactionId) -> Result<RefundOutcome, GatewayError>;
}

/// Totals in this range (minor units) are declined by the simulated gateway:
/// 2000.00 to 2999.99 in any currency, the convention of card sandboxes
/// that decide by amount.
pub const DECLINED_TOTALS: std::ops::RangeInclusive<i64> = 200_000..=299_999;

/// An in-process gateway that keeps its books in the shop database (table
/// `simulated_gateway`), so it survives worker restarts and tests can count
/// captures. It approves every charge except totals in [`DECLINED_TOTALS`].
#[derive(Debug, Clone)]
pub struct SimulatedGateway {
    store: Store,
    latency: Duration,
}

/// The simulated gateway's books for one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayLedger {
    /// `CAPTURED`, `DECLINED` or `REFUNDED`.
    pub status: String,
    /// Charge calls received (retries included).
    pub charge_requests: i64,
    /// Charges that moved money (at most 1 if idempotency holds).
    pub captures: i64,
    /// Refunds that moved money back (at most 1).
    pub refunds: i64,
}

impl SimulatedGateway {
    /// A gateway that books each call at once and answers after `latency`
    /// (to make sagas observable, and killable, mid-way).
    pub fn new(store: Store, latency: Duration) -> Self {
        Self { store, latency }
    }

    /// The books for one transaction, if the gateway ever saw it.
    pub async fn ledger(
        &self,
        transaction_id: &TransactionId,
    ) -> Result<Option<GatewayLedger>, GatewayError> {
        let row = sqlx::query(
            "SELECT status, charge_requests, captures, refunds FROM simulated_gateway \
             WHERE transaction_id = $1",
        )
        .bind(transaction_id.to_string())
        .fetch_optional(self.store.pool())
        .await?;
        row.map(|r| {
            Ok(GatewayLedger {
                status: r.try_get("status")?,
                charge_requests: r.try_get("charge_requests")?,
                captures: r.try_get("captures")?,
                refunds: r.try_get("refunds")?,
            })
        })
        .transpose()
    }
}

#[async_trait]
impl PaymentGateway for SimulatedGateway {
    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, GatewayError> {
        let declined = DECLINED_TOTALS.contains(&request.amount.minor);
        let (status, reason, captures) = if declined {
            ("DECLINED", Some("processor declined"), 0_i64)
        } else {
            ("CAPTURED", None, 1_i64)
        };
        let txn = request.transaction_id.to_string();
        let mut tx = self.store.begin_write().await?;
        let first = sqlx::query(
            "INSERT INTO simulated_gateway (transaction_id, amount_minor, currency, status, \
             decline_reason, charge_requests, captures, refunds) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, 0) ON CONFLICT (transaction_id) DO NOTHING",
        )
        .bind(&txn)
        .bind(request.amount.minor)
        .bind(request.amount.currency.as_str())
        .bind(status)
        .bind(reason)
        .bind(captures)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !first {
            sqlx::query(
                "UPDATE simulated_gateway SET charge_requests = charge_requests + 1 \
                 WHERE transaction_id = $1",
            )
            .bind(&txn)
            .execute(&mut *tx)
            .await?;
        }
        let row = sqlx::query(
            "SELECT status, decline_reason FROM simulated_gateway WHERE transaction_id = $1",
        )
        .bind(&txn)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        // The latency comes after the capture is booked: a caller that dies
        // meanwhile leaves money taken and no answer, the case retries must
        // resolve without capturing twice.
        tokio::time::sleep(self.latency).await;
        let status: String = row.try_get("status")?;
        Ok(if status == "DECLINED" {
            ChargeOutcome::Declined {
                reason: row
                    .try_get::<Option<String>, _>("decline_reason")?
                    .unwrap_or_default(),
            }
        } else {
            // CAPTURED, or REFUNDED later: either way this charge was captured.
            ChargeOutcome::Captured
        })
    }

    async fn refund(&self, transaction_id: &TransactionId) -> Result<RefundOutcome, GatewayError> {
        tokio::time::sleep(self.latency).await;
        let txn = transaction_id.to_string();
        let mut tx = self.store.begin_write().await?;
        sqlx::query(
            "UPDATE simulated_gateway SET status = 'REFUNDED', refunds = refunds + 1 \
             WHERE transaction_id = $1 AND status = 'CAPTURED'",
        )
        .bind(&txn)
        .execute(&mut *tx)
        .await?;
        let status: Option<String> =
            sqlx::query("SELECT status FROM simulated_gateway WHERE transaction_id = $1")
                .bind(&txn)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("status"))
                .transpose()?;
        tx.commit().await?;
        Ok(match status.as_deref() {
            Some("REFUNDED") => RefundOutcome::Refunded,
            _ => RefundOutcome::NothingCaptured,
        })
    }
}
