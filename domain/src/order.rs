//! The order: what the API hands the saga, the lifecycle it goes through and
//! the events it leaves behind.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{CustomerId, EmailAddress, Money, OrderId, ShippingAddress, Sku, TransactionId};

/// One line of an order, priced when the order was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The product.
    pub sku: Sku,
    /// How many units; always > 0.
    pub quantity: i64,
    /// The product's price when the order was placed.
    pub unit_price: Money,
}

/// The saga's input: a validated, priced order. Built only by the API after
/// validation, so the workflow never sees bad input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderInput {
    /// The order's id; the workflow id is `order-{order_id}`.
    pub order_id: OrderId,
    /// The payment's `transactionId`, the idempotency key of the payment.
    pub transaction_id: TransactionId,
    /// Who placed the order.
    pub customer_id: CustomerId,
    /// At least one line.
    pub lines: Vec<OrderLine>,
    /// Sum of the lines.
    pub total: Money,
    /// Where the order's emails go. `None` only in sagas started before
    /// notifications existed (their recorded inputs lack the field).
    #[serde(default)]
    pub customer_email: Option<EmailAddress>,
    /// Where the order ships. `None` only in sagas started before shipping
    /// requests existed.
    #[serde(default)]
    pub shipping_address: Option<ShippingAddress>,
    /// How the order is paid: chosen by the deployment, fixed for the
    /// order's life. Sagas recorded before checkout existed decode as
    /// [`PaymentMode::Simulated`].
    #[serde(default)]
    pub payment: PaymentMode,
}

/// How a saga takes the money.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum PaymentMode {
    /// One synchronous charge through the simulated gateway, approved at
    /// once (benchmarks, most tests).
    #[default]
    Simulated,
    /// A PayPal-style checkout: the buyer approves on the gateway's page,
    /// the saga waits for the outcome, then captures.
    Checkout(CheckoutTiming),
}

/// How long a checkout waits, and how often it asks the gateway meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutTiming {
    /// The buyer's time to approve; then `PaymentProcessFailed` (expired).
    pub deadline_secs: u64,
    /// How often the saga asks the gateway while waiting, so a lost webhook
    /// never leaves a payment stuck.
    pub poll_secs: u64,
}

impl Default for CheckoutTiming {
    fn default() -> Self {
        Self {
            deadline_secs: 15 * 60,
            poll_secs: 30,
        }
    }
}

/// A payment event the gateway reported (by verified webhook), as the API
/// signals it to the saga. Redeliveries share `event_id`; the saga acts on
/// the first event that decides the payment and ignores the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayEvent {
    /// The gateway's event id.
    pub event_id: String,
    /// What happened.
    pub kind: GatewayEventKind,
}

/// What a gateway event says about the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GatewayEventKind {
    /// The buyer approved: capture may proceed.
    Approved,
    /// The buyer cancelled on the approval page (or the order was voided).
    Voided,
    /// Money was captured.
    Captured,
    /// The capture was declined.
    CaptureDenied,
    /// The capture was refunded.
    Refunded,
}

impl OrderInput {
    /// One line for the Temporal UI: `Order <id>: 3 items, 49.99 EUR for alice`.
    pub fn summary(&self) -> String {
        let items: i64 = self.lines.iter().map(|l| l.quantity).sum();
        let noun = if items == 1 { "item" } else { "items" };
        format!(
            "Order {}: {items} {noun}, {} for {}",
            self.order_id, self.total, self.customer_id
        )
    }
}

text_enum!(
    /// Where an order is in its lifecycle.
    OrderStatus {
        /// Placed; payment and stock not settled yet.
        Pending => "PENDING",
        /// Paid, but some lines cannot be served: the customer is asked to
        /// accept the proposed amendment or cancel (`partial-availability-v1`).
        ActionRequired => "ACTION_REQUIRED",
        /// Paid and stock deducted. Terminal.
        Confirmed => "CONFIRMED",
        /// A step failed or the order was cancelled; compensations ran. Terminal.
        Failed => "FAILED",
    }
);

text_enum!(
    /// Where the order's payment is.
    PaymentStatus {
        /// Created, not charged yet.
        Pending => "PENDING",
        /// Money taken.
        Captured => "CAPTURED",
        /// The gateway refused the charge; no money taken.
        Declined => "DECLINED",
        /// Money taken and given back.
        Refunded => "REFUNDED",
        /// Never approved (buyer cancelled, deadline passed, order
        /// cancelled): the gateway order is voided; no money taken.
        Voided => "VOIDED",
        /// Money taken, and the gateway refused to give it back for good
        /// (e.g. a 4xx to the refund): the refund is parked for an
        /// operator, who retries it or closes it with a reason.
        RefundFailed => "REFUND_FAILED",
    }
);

impl OrderStatus {
    /// Whether an order in this status may move to `next`: only a pending
    /// order ends, once, confirmed or failed; a pending order some lines of
    /// which cannot be served may first wait for the customer's decision
    /// (`ACTION_REQUIRED`), and ends from there.
    pub fn can_become(self, next: OrderStatus) -> bool {
        matches!(
            (self, next),
            (
                Self::Pending,
                Self::ActionRequired | Self::Confirmed | Self::Failed
            ) | (Self::ActionRequired, Self::Confirmed | Self::Failed)
        )
    }
}

impl PaymentStatus {
    /// Whether a payment in this status may move to `next`. A pending
    /// payment settles once (captured, declined or voided); money taken can
    /// be given back. A pending payment may also become refunded: the
    /// compensation refunds by `transactionId` when the charge's answer was
    /// lost, so the shop never recorded the capture. A refund the gateway
    /// refused for good leaves the payment `REFUND_FAILED` (from pending
    /// for the same reason), and an operator's retry can still refund it.
    pub fn can_become(self, next: PaymentStatus) -> bool {
        matches!(
            (self, next),
            (
                Self::Pending,
                Self::Captured
                    | Self::Declined
                    | Self::Voided
                    | Self::Refunded
                    | Self::RefundFailed
            ) | (Self::Captured, Self::Refunded | Self::RefundFailed)
                | (Self::RefundFailed, Self::Refunded)
        )
    }
}

text_enum!(
    /// The domain events of an order, in the order they can happen. Each is
    /// stored at most once per order, with the time it happened.
    OrderEvent {
        /// The order is stored `PENDING`.
        OrderPlaced => "OrderPlaced",
        /// The payment was captured.
        PaymentProcessed => "PaymentProcessed",
        /// The payment was declined.
        PaymentProcessFailed => "PaymentProcessFailed",
        /// Stock was deducted for every line.
        InventoryProcessed => "InventoryProcessed",
        /// Some line could not be served; nothing was deducted.
        InventoryProcessFailed => "InventoryProcessFailed",
        /// Some lines could not be served: the served ones are held and
        /// the amended order is proposed to the customer (`ACTION_REQUIRED`).
        OrderAmended => "OrderAmended",
        /// The customer accepted the amended order.
        AmendmentAccepted => "AmendmentAccepted",
        /// The missing lines' amount was refunded (part of the capture).
        PaymentPartiallyRefunded => "PaymentPartiallyRefunded",
        /// Compensation: deducted stock was put back.
        InventoryReleased => "InventoryReleased",
        /// Compensation: the gateway refused the refund for good; it is
        /// parked for an operator.
        PaymentRefundFailed => "PaymentRefundFailed",
        /// Compensation: the captured payment was refunded.
        PaymentRefunded => "PaymentRefunded",
        /// The order is `CONFIRMED`.
        OrderConfirmed => "OrderConfirmed",
        /// The order is `FAILED`.
        OrderFailed => "OrderFailed",
        /// An operator closed the order's parked compensations with a
        /// recorded reason.
        AttentionClosed => "AttentionClosed",
        /// The courier picked up the order's shipment.
        ShipmentDispatched => "ShipmentDispatched",
        /// The courier delivered the order's shipment.
        ShipmentDelivered => "ShipmentDelivered",
        /// Every shipment of the confirmed order is delivered: its
        /// fulfilment is `COMPLETED`.
        OrderCompleted => "OrderCompleted",
    }
);

text_enum!(
    /// The step a saga is on: the `step` of its [`OrderView`] and the
    /// Temporal UI's current details. Shown to people, never matched by
    /// other services.
    SagaStep {
        /// Started; no step has run yet.
        Started => "Started",
        /// Storing the order.
        PlaceOrder => "PlaceOrder",
        /// Reserving the order's total against the customer's spending
        /// limit.
        ReserveSpending => "ReserveSpending",
        /// Taking the money (either payment mode).
        ProcessPayment => "ProcessPayment",
        /// Checkout: waiting for the buyer to approve at the gateway.
        AwaitApproval => "AwaitApproval",
        /// Checkout: capturing the approved payment.
        CapturePayment => "CapturePayment",
        /// Deducting stock.
        ProcessInventory => "ProcessInventory",
        /// Some lines are short: waiting for the customer to accept the
        /// amended order or cancel, until the deadline.
        AwaitDecision => "AwaitDecision",
        /// Accepted: refunding the missing lines' amount.
        RefundMissing => "RefundMissing",
        /// Confirming the paid, stocked order.
        ConfirmOrder => "ConfirmOrder",
        /// Running the compensations of the steps done so far.
        Compensating => "Compensating",
        /// Recording why the order failed.
        FailOrder => "FailOrder",
        /// Failed, with a compensation parked: waiting for an operator to
        /// retry or close it.
        NeedsAttention => "NeedsAttention",
        /// Finished, confirmed or failed.
        Done => "Done",
    }
);

impl SagaStep {
    /// Whether `CancelOrder` is refused from this step on: an accepted
    /// amendment is being refunded, confirmation began (money and stock are committed to the order) or the order is
    /// already failing.
    pub fn past_point_of_no_return(self) -> bool {
        matches!(
            self,
            Self::RefundMissing
                | Self::ConfirmOrder
                | Self::Compensating
                | Self::FailOrder
                | Self::NeedsAttention
                | Self::Done
        )
    }
}

/// Why an order failed, in words a customer can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum FailureReason {
    /// The payment gateway declined the charge.
    PaymentDeclined {
        /// The gateway's reason.
        message: String,
    },
    /// A line could not be served from stock.
    OutOfStock {
        /// The first product that was short.
        sku: Sku,
        /// Units the order asked for.
        requested: i64,
        /// Units on hand when it was checked.
        available: i64,
    },
    /// The order would take the customer over the spending limit a
    /// manager set (`spending-limit-v1`); refused before any charge.
    SpendingLimitExceeded {
        /// The customer's limit.
        limit: Money,
        /// What the customer's earlier orders already count against it
        /// (in flight and confirmed).
        spent: Money,
        /// This order's total.
        requested: Money,
    },
    /// The customer neither accepted nor cancelled the amended order
    /// (some lines were short) before its deadline.
    AmendmentExpired {
        /// How long the customer had, seconds.
        after_secs: u64,
    },
    /// The buyer did not approve the payment before its deadline.
    PaymentExpired {
        /// How long the buyer had, seconds.
        after_secs: u64,
    },
    /// The order's workflow was cancelled before it completed.
    Cancelled {
        /// The cancellation's reason, if one was given.
        message: String,
    },
    /// The shop could not complete the order for a reason of its own or of
    /// its gateway, not of the customer's: a refusal retrying cannot change,
    /// a misconfigured worker, a bug. Recorded so that no order is left
    /// `PENDING` by a saga that stopped.
    Internal {
        /// What kind of fault.
        code: InternalCode,
        /// What happened, for support (no secrets, no personal data).
        message: String,
    },
}

text_enum!(
    /// The failure code of an [`FailureReason::Internal`] failure.
    InternalCode {
        /// The gateway refused a call for good (a 4xx such as
        /// `ORDER_EXPIRED`, `ORDER_NOT_APPROVED`, `PAYER_ACTION_REQUIRED`,
        /// or an answer the adapter cannot read).
        GatewayRejected => "GATEWAY_REJECTED",
        /// The worker has no (working) checkout gateway: no
        /// `ORDERSAGA_PAYPAL_BASE_URL`, or its credentials were refused.
        GatewayNotConfigured => "GATEWAY_NOT_CONFIGURED",
        /// The saga stopped on a fault it has no business outcome for.
        SagaFailed => "INTERNAL_ERROR",
    }
);

impl FailureReason {
    /// A short machine-readable code: `PAYMENT_DECLINED`, `OUT_OF_STOCK`,
    /// `SPENDING_LIMIT_EXCEEDED`, `PAYMENT_EXPIRED`, `AMENDMENT_EXPIRED`, `CANCELLED`, or an
    /// [`InternalCode`].
    pub fn code(&self) -> &'static str {
        match self {
            Self::PaymentDeclined { .. } => "PAYMENT_DECLINED",
            Self::OutOfStock { .. } => "OUT_OF_STOCK",
            Self::SpendingLimitExceeded { .. } => "SPENDING_LIMIT_EXCEEDED",
            Self::PaymentExpired { .. } => "PAYMENT_EXPIRED",
            Self::AmendmentExpired { .. } => "AMENDMENT_EXPIRED",
            Self::Cancelled { .. } => "CANCELLED",
            Self::Internal { code, .. } => code.as_str(),
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PaymentDeclined { message } => write!(f, "payment declined: {message}"),
            Self::OutOfStock {
                sku,
                requested,
                available,
            } => write!(
                f,
                "out of stock: {sku} (ordered {requested}, {available} available)"
            ),
            Self::SpendingLimitExceeded {
                limit,
                spent,
                requested,
            } => write!(
                f,
                "spending limit exceeded: {requested} on top of {spent} already spent \
                 is over the limit of {limit}"
            ),
            Self::PaymentExpired { after_secs } => {
                write!(f, "payment expired: not approved within {after_secs}s")
            }
            Self::AmendmentExpired { after_secs } => write!(
                f,
                "amendment expired: neither accepted nor cancelled within {after_secs}s"
            ),
            Self::Cancelled { message } if message.is_empty() => f.write_str("cancelled"),
            Self::Cancelled { message } => write!(f, "cancelled: {message}"),
            Self::Internal { message, .. } => {
                write!(f, "could not be completed: {message}")
            }
        }
    }
}

/// The saga's result. Business failures are outcomes, not workflow failures:
/// a declined card completes the workflow with `status: FAILED`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderOutcome {
    /// The order.
    pub order_id: OrderId,
    /// `CONFIRMED` or `FAILED`.
    pub status: OrderStatus,
    /// Why it failed, when it did.
    pub reason: Option<FailureReason>,
    /// Whether a captured payment was refunded.
    pub refunded: bool,
}

/// The live state of a running saga, answered by its `GetStatus` query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// The order.
    pub order_id: OrderId,
    /// Current status.
    pub status: OrderStatus,
    /// Payment status, once a payment exists.
    pub payment_status: Option<PaymentStatus>,
    /// The step the saga is on, for humans: a [`SagaStep`]'s text.
    pub step: String,
    /// Events the saga has seen so far, in order.
    pub events: Vec<OrderEvent>,
    /// Why it failed, when it did.
    pub reason: Option<FailureReason>,
    /// Checkout mode: where the buyer approves the payment, once the
    /// gateway order exists.
    #[serde(default)]
    pub approval_url: Option<String>,
    /// `ACTION_REQUIRED`: the amended order proposed to the customer (and,
    /// once accepted, what was agreed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amendment: Option<crate::Amendment>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_text() {
        for s in OrderStatus::ALL {
            assert_eq!(s.as_str().parse::<OrderStatus>().unwrap(), *s);
        }
        for e in OrderEvent::ALL {
            assert_eq!(e.as_str().parse::<OrderEvent>().unwrap(), *e);
        }
        assert!("SHIPPED".parse::<OrderStatus>().is_err());
        for s in SagaStep::ALL {
            assert_eq!(s.as_str().parse::<SagaStep>().unwrap(), *s);
        }
        assert_eq!(
            serde_json::to_string(&PaymentStatus::Captured).unwrap(),
            "\"CAPTURED\""
        );
    }

    #[test]
    fn only_a_pending_order_ends_and_only_once() {
        use OrderStatus::*;
        assert!(Pending.can_become(Confirmed));
        assert!(Pending.can_become(Failed));
        assert!(Pending.can_become(ActionRequired));
        assert!(ActionRequired.can_become(Confirmed));
        assert!(ActionRequired.can_become(Failed));
        assert!(!ActionRequired.can_become(ActionRequired));
        for from in OrderStatus::ALL {
            assert!(!from.can_become(Pending), "{from} -> PENDING");
        }
        for to in OrderStatus::ALL {
            assert!(!Confirmed.can_become(*to), "CONFIRMED -> {to}");
            assert!(!Failed.can_become(*to), "FAILED -> {to}");
        }
    }

    #[test]
    fn payment_transitions_settle_once_and_refund_only_money_taken() {
        use PaymentStatus::*;
        let allowed: Vec<(PaymentStatus, PaymentStatus)> = PaymentStatus::ALL
            .iter()
            .flat_map(|from| PaymentStatus::ALL.iter().map(move |to| (*from, *to)))
            .filter(|(from, to)| from.can_become(*to))
            .collect();
        assert_eq!(
            allowed,
            [
                (Pending, Captured),
                (Pending, Declined),
                (Pending, Refunded),
                (Pending, Voided),
                (Pending, RefundFailed),
                (Captured, Refunded),
                (Captured, RefundFailed),
                (RefundFailed, Refunded),
            ]
        );
        // Declined and voided payments took no money: nothing to refund.
        assert!(!Declined.can_become(Refunded));
        assert!(!Voided.can_become(Refunded));
        // A refused refund is parked, never forgotten: only a refund ends it.
        assert!(!Refunded.can_become(RefundFailed));
        assert_eq!("REFUND_FAILED".parse::<PaymentStatus>(), Ok(RefundFailed));
    }

    #[test]
    fn payment_mode_defaults_to_simulated_and_round_trips() {
        // Inputs recorded before the field existed are simulated sagas.
        let old = r#"{"order_id":"6c1f2a5e-3b7d-4e55-9a1f-0b2c3d4e5f60",
            "transaction_id":"6c1f2a5e-3b7d-4e55-9a1f-0b2c3d4e5f61",
            "customer_id":"alice","lines":[],"total":{"minor":0,"currency":"EUR"}}"#;
        let input: OrderInput = serde_json::from_str(old).unwrap();
        assert_eq!(input.payment, PaymentMode::Simulated);
        let checkout = PaymentMode::Checkout(CheckoutTiming {
            deadline_secs: 60,
            poll_secs: 5,
        });
        let json = serde_json::to_string(&checkout).unwrap();
        assert_eq!(
            json,
            r#"{"mode":"checkout","deadline_secs":60,"poll_secs":5}"#
        );
        assert_eq!(
            serde_json::from_str::<PaymentMode>(&json).unwrap(),
            checkout
        );
        assert_eq!(CheckoutTiming::default().deadline_secs, 15 * 60);
    }

    #[test]
    fn failure_reasons_read_well() {
        let r = FailureReason::OutOfStock {
            sku: Sku::parse("MUG").unwrap(),
            requested: 3,
            available: 1,
        };
        assert_eq!(r.to_string(), "out of stock: MUG (ordered 3, 1 available)");
        assert_eq!(r.code(), "OUT_OF_STOCK");
        let expired = FailureReason::PaymentExpired { after_secs: 900 };
        assert_eq!(expired.code(), "PAYMENT_EXPIRED");
        assert_eq!(
            expired.to_string(),
            "payment expired: not approved within 900s"
        );
        let refused = FailureReason::Internal {
            code: InternalCode::GatewayRejected,
            message: "capture refused (ORDER_EXPIRED)".into(),
        };
        assert_eq!(refused.code(), "GATEWAY_REJECTED");
        assert_eq!(
            refused.to_string(),
            "could not be completed: capture refused (ORDER_EXPIRED)"
        );
        // Stored whole in `orders.failure_detail` and carried in failures.
        let json = serde_json::to_string(&refused).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"Internal","code":"GATEWAY_REJECTED","message":"capture refused (ORDER_EXPIRED)"}"#
        );
        assert_eq!(
            serde_json::from_str::<FailureReason>(&json).unwrap(),
            refused
        );
    }

    #[test]
    fn cancelling_stops_once_confirmation_or_failure_began() {
        let refused: Vec<&str> = SagaStep::ALL
            .iter()
            .filter(|s| s.past_point_of_no_return())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(
            refused,
            [
                "RefundMissing",
                "ConfirmOrder",
                "Compensating",
                "FailOrder",
                "NeedsAttention",
                "Done"
            ]
        );
    }
}
