//! The checkout gateway port: payments the way a PayPal checkout works.
//!
//! Unlike [`super::PaymentGateway`] (one synchronous charge), a checkout
//! takes the buyer through the gateway: the shop creates a gateway order,
//! sends the buyer to its approval link, learns of the approval (webhook or
//! [`CheckoutGateway::get_order`]) and only then captures. Every mutating
//! call is keyed by the payment's `transactionId` and the operation
//! ([`request_id`]), so a retried call has no second effect.
//!
//! Errors separate what retrying cannot change ([`CheckoutError::Rejected`],
//! [`CheckoutError::NotFound`], [`CheckoutError::Unauthorized`]) from what it
//! may ([`CheckoutError::Transient`]: nothing happened) and from the case
//! where nobody knows yet ([`CheckoutError::OutcomeUnknown`]: the gateway may
//! have acted). After an unknown outcome the caller asks the gateway first:
//! [`CheckoutGateway::ensure_captured`] and
//! [`CheckoutGateway::ensure_refunded`] do exactly that.
//!
//! What the saga's checkout activities return (ids, [`OrderSnapshot`],
//! [`CaptureOutcome`], ...) is part of their contract and lives in
//! [`ordersaga_domain::contracts::checkout`]; it is re-exported here because
//! the port speaks it.

use async_trait::async_trait;
pub use ordersaga_domain::contracts::checkout::{
    Capture, CaptureId, CaptureOutcome, CaptureStatus, CheckoutOrder, CheckoutStatus,
    GatewayOrderId, OrderSnapshot, VoidOutcome,
};
use ordersaga_domain::{Money, TransactionId};
use serde::{Deserialize, Serialize};

ordersaga_domain::text_enum!(
    /// A mutating gateway call, named in its idempotency key and errors.
    Operation {
        /// Create the gateway order.
        Create => "create",
        /// Capture the approved order.
        Capture => "capture",
        /// Refund the capture.
        Refund => "refund",
        /// Refund part of the capture.
        PartialRefund => "partial-refund",
        /// Void the unapproved order.
        Void => "void",
    }
);

/// The idempotency key (`PayPal-Request-Id`) of `operation` for a payment:
/// `{transactionId}-{operation}`. Derived, never random, so every retry of
/// the same step, from any worker, sends the same key.
pub fn request_id(transaction_id: &TransactionId, operation: Operation) -> String {
    format!("{transaction_id}-{operation}")
}

/// What the shop asks the gateway to collect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutRequest {
    /// The payment; sent as `custom_id` and `invoice_id`, so every event and
    /// order the gateway reports names it.
    pub transaction_id: TransactionId,
    /// How much to capture once approved.
    pub amount: Money,
    /// Where the approval page sends the buyer after approving.
    pub return_url: Option<String>,
    /// Where it sends the buyer after cancelling.
    pub cancel_url: Option<String>,
    /// Shown to the buyer on the approval page.
    pub description: Option<String>,
    /// The buyer's email, to prefill the gateway's login (PayPal's
    /// `payer.email_address`). The payments sandbox also picks its simulated
    /// buyer's behaviour from it (`approve…@`, `decline…@`, `cancel…@`).
    pub payer_email: Option<String>,
}

/// How a refund ended. Either way the money is back with the buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefundOutcome {
    /// Refunded by this call (or its idempotent replay).
    Refunded {
        /// The gateway's refund id.
        refund_id: String,
    },
    /// Refunded earlier, under another key.
    AlreadyRefunded,
    /// Nothing was ever captured: nothing to give back.
    NothingCaptured,
}

/// Why a gateway call failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// The gateway refused for a business reason (PayPal 4xx such as
    /// `UNPROCESSABLE_ENTITY` / `ORDER_NOT_APPROVED`). Retrying the same call
    /// gives the same answer.
    #[error("{operation}: gateway refused ({status} {name}{})", issue.as_deref().map(|i| format!(": {i}")).unwrap_or_default())]
    Rejected {
        /// The call.
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// PayPal's error `name`.
        name: String,
        /// PayPal's first `details[].issue`, the machine-readable reason.
        issue: Option<String>,
    },
    /// The gateway does not know the order or capture.
    #[error("{operation}: gateway has no {what}")]
    NotFound {
        /// The call.
        operation: &'static str,
        /// What was missing.
        what: String,
    },
    /// The credentials were refused (a configuration error).
    #[error("gateway refused the client credentials")]
    Unauthorized,
    /// Nothing happened at the gateway (the request never reached it, or
    /// was a read, or was refused before any effect): retry.
    #[error("{operation}: gateway unavailable: {detail}")]
    Transient {
        /// The call.
        operation: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The request may have taken effect: a timeout, a dropped connection
    /// or a 5xx after the gateway received a mutating call. Ask the gateway
    /// (by order id) before deciding anything; retrying with the same key is
    /// also safe, but guessing is not.
    #[error("{operation}: outcome unknown: {detail}")]
    OutcomeUnknown {
        /// The call.
        operation: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The gateway answered something this adapter cannot read.
    #[error("{operation}: unexpected gateway answer: {detail}")]
    Protocol {
        /// The call.
        operation: &'static str,
        /// What was wrong with it.
        detail: String,
    },
}

impl CheckoutError {
    /// Worth retrying (later, with the same key): transient failures and
    /// unknown outcomes. Rejections, missing resources, bad credentials and
    /// unreadable answers need a human or a different decision.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient { .. } | Self::OutcomeUnknown { .. })
    }

    /// PayPal's `details[].issue` of a rejection.
    pub fn issue(&self) -> Option<&str> {
        match self {
            Self::Rejected { issue, .. } => issue.as_deref(),
            _ => None,
        }
    }
}

/// A PayPal-style checkout gateway. Every mutating call is idempotent by
/// [`request_id`]`(transaction_id, operation)`.
#[async_trait]
pub trait CheckoutGateway: Send + Sync + 'static {
    /// Creates the gateway order (intent CAPTURE) and returns where the buyer
    /// approves it. The same transaction always names the same order.
    async fn create_order(&self, request: &CheckoutRequest)
    -> Result<CheckoutOrder, CheckoutError>;

    /// What the gateway knows about an order now.
    async fn get_order(&self, id: &GatewayOrderId) -> Result<OrderSnapshot, CheckoutError>;

    /// Captures an approved order. Fails with [`CheckoutError::Rejected`]
    /// (`ORDER_NOT_APPROVED`, ...) when it is not capturable.
    async fn capture(
        &self,
        id: &GatewayOrderId,
        transaction_id: &TransactionId,
    ) -> Result<CaptureOutcome, CheckoutError>;

    /// Refunds a capture in full (what is left of it, after partial
    /// refunds).
    async fn refund(
        &self,
        capture_id: &CaptureId,
        transaction_id: &TransactionId,
    ) -> Result<RefundOutcome, CheckoutError>;

    /// Refunds `amount` of a capture (a partial refund), once per `key`:
    /// the same key again answers the same refund (its `PayPal-Request-Id`
    /// is `{transactionId}-partial-refund-{key}`). More than is left is
    /// refused (`REFUND_AMOUNT_EXCEEDED`); a capture refunded in full
    /// already is [`RefundOutcome::AlreadyRefunded`].
    async fn refund_part(
        &self,
        capture_id: &CaptureId,
        transaction_id: &TransactionId,
        amount: &Money,
        key: &str,
    ) -> Result<RefundOutcome, CheckoutError>;

    /// Makes sure the order will never be captured. Fails with
    /// [`CheckoutError::Rejected`] (`ORDER_ALREADY_CAPTURED`) if it was: the
    /// caller refunds instead.
    async fn void(
        &self,
        id: &GatewayOrderId,
        transaction_id: &TransactionId,
    ) -> Result<VoidOutcome, CheckoutError>;

    /// The capture step as a retried activity should run it: first ask the
    /// gateway what happened, capture only an order that is approved and not
    /// yet captured. A capture whose answer was lost is found, not repeated.
    async fn ensure_captured(
        &self,
        id: &GatewayOrderId,
        transaction_id: &TransactionId,
    ) -> Result<CaptureOutcome, CheckoutError> {
        let order = self.get_order(id).await?;
        if let Some(capture) = order.capture {
            return Ok(match capture.status {
                CaptureStatus::Declined | CaptureStatus::Failed => CaptureOutcome::Declined {
                    capture_id: Some(capture.id),
                    reason: format!("capture {:?}", capture.status),
                },
                // PENDING counts as taken: the gateway settles it later (or
                // reverses it, with a PAYMENT.CAPTURE.DENIED webhook).
                _ => CaptureOutcome::Completed {
                    capture_id: capture.id,
                },
            });
        }
        self.capture(id, transaction_id).await
    }

    /// The refund step as a retried compensation should run it: refunds the
    /// order's capture unless it is refunded already or there is none.
    async fn ensure_refunded(
        &self,
        id: &GatewayOrderId,
        transaction_id: &TransactionId,
    ) -> Result<RefundOutcome, CheckoutError> {
        let order = self.get_order(id).await?;
        match order.capture {
            Some(c) if c.status == CaptureStatus::Refunded => Ok(RefundOutcome::AlreadyRefunded),
            // Money may still settle: not refundable yet, but not nothing.
            Some(c) if c.status == CaptureStatus::Pending => Err(CheckoutError::Transient {
                operation: "refund",
                detail: format!("capture {} is still pending at the gateway", c.id),
            }),
            Some(c)
                if matches!(
                    c.status,
                    CaptureStatus::Completed | CaptureStatus::PartiallyRefunded
                ) =>
            {
                self.refund(&c.id, transaction_id).await
            }
            _ => Ok(RefundOutcome::NothingCaptured),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_stable_per_transaction_and_operation() {
        let txn = TransactionId::parse("6c1f2a5e-3b7d-4e55-9a1f-0b2c3d4e5f60").unwrap();
        assert_eq!(
            request_id(&txn, Operation::Capture),
            "6c1f2a5e-3b7d-4e55-9a1f-0b2c3d4e5f60-capture"
        );
        assert_ne!(
            request_id(&txn, Operation::Capture),
            request_id(&txn, Operation::Refund)
        );
    }
}
