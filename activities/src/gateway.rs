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
//! Why two ports and not one: they are two payment protocols, not two
//! implementations of one. A charge is one synchronous call that ends
//! captured or declined (a card terminal; the benchmarks' fast path: one
//! activity per payment). A checkout is redirect-based: create an order,
//! hand the buyer an approval link, wait for the buyer, then capture or void
//! (PayPal). Folding the charge into the checkout port would give the
//! simulated mode four gateway activities and a wait per order, and
//! folding the checkout into the charge port would hide the wait that the
//! saga must keep durably. Which one an order uses is fixed in its workflow
//! input (`PaymentMode`).
//!
//! Every call carries the payment's `transactionId` as its idempotency key,
//! the way real gateways take `PayPal-Request-Id` / `Idempotency-Key`: the
//! same charge sent twice moves money once.

use std::time::Duration;

use async_trait::async_trait;
use ordersaga_domain::{Money, TransactionId};
use ordersaga_store::{GatewayLedger, Store, StoreError};

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

/// What the gateway answered to the refund of a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeRefund {
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
}

/// A payment gateway: charges and refunds, idempotent by `transactionId`.
#[async_trait]
pub trait PaymentGateway: Send + Sync + 'static {
    /// Captures the amount, or answers how an earlier charge with the same
    /// `transactionId` ended.
    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, GatewayError>;
    /// Refunds the capture of this transaction, if there is one.
    async fn refund(&self, transaction_id: &TransactionId) -> Result<ChargeRefund, GatewayError>;
}

/// Totals in this range (minor units) are declined by the simulated gateway:
/// 2000.00 to 2999.99 in any currency, the convention of card sandboxes
/// that decide by amount.
pub const DECLINED_TOTALS: std::ops::RangeInclusive<i64> = 200_000..=299_999;

/// An in-process gateway that keeps its books in the shop database (the
/// store's [`GatewayBooks`](ordersaga_store::GatewayBooks)), so it survives
/// worker restarts and tests can count captures. It approves every charge
/// except totals in [`DECLINED_TOTALS`].
#[derive(Debug, Clone)]
pub struct SimulatedGateway {
    store: Store,
    latency: Duration,
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
        Ok(self
            .store
            .payments()
            .gateway_books()
            .ledger(transaction_id)
            .await?)
    }
}

#[async_trait]
impl PaymentGateway for SimulatedGateway {
    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, GatewayError> {
        let decline = DECLINED_TOTALS
            .contains(&request.amount.minor)
            .then_some("processor declined");
        let booked = self
            .store
            .payments()
            .gateway_books()
            .charge(&request.transaction_id, request.amount, decline)
            .await?;
        // The latency comes after the capture is booked: a caller that dies
        // meanwhile leaves money taken and no answer, the case retries must
        // resolve without capturing twice.
        tokio::time::sleep(self.latency).await;
        Ok(match booked {
            // Captured, or refunded later: either way this charge was captured.
            Ok(()) => ChargeOutcome::Captured,
            Err(reason) => ChargeOutcome::Declined { reason },
        })
    }

    async fn refund(&self, transaction_id: &TransactionId) -> Result<ChargeRefund, GatewayError> {
        tokio::time::sleep(self.latency).await;
        let refunded = self
            .store
            .payments()
            .gateway_books()
            .refund(transaction_id)
            .await?;
        Ok(if refunded {
            ChargeRefund::Refunded
        } else {
            ChargeRefund::NothingCaptured
        })
    }
}
