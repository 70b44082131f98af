//! What the checkout gateway's activities return: the gateway's ids, a
//! created checkout, where a gateway order stands and how a capture or a void
//! ended. The names and values are PayPal Orders v2's, since the saga
//! records them in its history as the gateway reported them.
//!
//! The port that produces them (`CheckoutGateway`, its errors and request
//! ids) stays with its implementations in `ordersaga-activities`.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! gateway_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an id the gateway issued.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

gateway_id!(
    /// The gateway's id of a checkout order (PayPal's order id, also the
    /// `token` of its approval page).
    GatewayOrderId
);
gateway_id!(
    /// The gateway's id of a capture (what a refund names).
    CaptureId
);

/// A created checkout: where to send the buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutOrder {
    /// The gateway's order id.
    pub id: GatewayOrderId,
    /// The buyer's approval page (PayPal's `approve` / `payer-action` link).
    pub approve_url: String,
    /// The order's status when the gateway answered.
    pub status: CheckoutStatus,
}

/// A gateway order's status (PayPal Orders v2 names). Not the shop order's
/// [`crate::OrderStatus`]: this is the gateway's view of the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CheckoutStatus {
    /// Created; the buyer has not approved yet.
    Created,
    /// Saved for later capture (not used by intent CAPTURE flows).
    Saved,
    /// The buyer approved: it can be captured.
    Approved,
    /// Voided: by the buyer (cancel), the shop, or expiry. Nothing captured.
    Voided,
    /// Captured (the capture itself may be declined or refunded).
    Completed,
    /// The buyer must act again (e.g. 3-D Secure) before capture.
    PayerActionRequired,
}

/// A capture's status (PayPal names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureStatus {
    /// Money taken.
    Completed,
    /// The processor refused; no money taken.
    Declined,
    /// Pending review at the gateway; money not yet settled.
    Pending,
    /// Fully refunded.
    Refunded,
    /// Partly refunded.
    PartiallyRefunded,
    /// The capture failed.
    Failed,
}

/// One capture of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capture {
    /// The capture's id.
    pub id: CaptureId,
    /// Its status.
    pub status: CaptureStatus,
}

/// What the gateway knows about an order: the answer to "what happened?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSnapshot {
    /// The order.
    pub id: GatewayOrderId,
    /// Its status.
    pub status: CheckoutStatus,
    /// The `custom_id` it was created with (our `transactionId`).
    pub custom_id: Option<String>,
    /// Its capture, once captured.
    pub capture: Option<Capture>,
}

/// How a capture ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaptureOutcome {
    /// Money taken (now or by an earlier call with the same key).
    Completed {
        /// The capture, for a later refund.
        capture_id: CaptureId,
    },
    /// The processor declined; no money taken.
    Declined {
        /// The capture record of the refusal, when the gateway made one.
        capture_id: Option<CaptureId>,
        /// The gateway's reason.
        reason: String,
    },
}

/// How a void ended. Either way no money is or will be taken for the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VoidOutcome {
    /// The gateway voided the order (now or earlier): the buyer can no
    /// longer approve it.
    Voided,
    /// The gateway has no void (real PayPal): the order is abandoned and
    /// expires there; intent CAPTURE moves no money until the shop captures,
    /// and the shop never will.
    Abandoned,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_use_paypal_names() {
        let s: CheckoutStatus = serde_json::from_str("\"PAYER_ACTION_REQUIRED\"").unwrap();
        assert_eq!(s, CheckoutStatus::PayerActionRequired);
        let c: CaptureStatus = serde_json::from_str("\"PARTIALLY_REFUNDED\"").unwrap();
        assert_eq!(c, CaptureStatus::PartiallyRefunded);
    }

    #[test]
    fn outcomes_keep_their_recorded_shape() {
        let completed = CaptureOutcome::Completed {
            capture_id: CaptureId::new("CAP-1"),
        };
        assert_eq!(
            serde_json::to_string(&completed).unwrap(),
            r#"{"Completed":{"capture_id":"CAP-1"}}"#
        );
        assert_eq!(
            serde_json::to_string(&VoidOutcome::Abandoned).unwrap(),
            r#""Abandoned""#
        );
    }
}
