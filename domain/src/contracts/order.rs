//! The order saga's activities: [`OrderContract`] (names, inputs and
//! outputs) and the payloads only these activities carry.
//!
//! Steps that write the shop database (`PlaceOrder`, `ProcessInventory`,
//! `ConfirmOrder`, `FailOrder`, `ReleaseInventory`, `OpenPayment`,
//! `SettlePayment`) and the gateway calls of both payment modes (the
//! simulated `ProcessPayment`/`RefundPayment`; the checkout's
//! `CreateCheckout`, `GetCheckout`, `CapturePayment`, `VoidPayment`,
//! `RefundCheckout`).

use serde::{Deserialize, Serialize};

use super::checkout::{CaptureOutcome, CheckoutOrder, GatewayOrderId, OrderSnapshot, VoidOutcome};
use crate::names::activity;
use crate::{
    Amendment, FailureReason, LowStockAlert, Money, OrderId, OrderInput, OrderStatus, Outgoing,
    TransactionId, WarehouseAllocation,
};

/// Input of `ProcessPayment` and `RefundPayment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentInput {
    /// The order paid for.
    pub order_id: OrderId,
    /// The payment's idempotency key.
    pub transaction_id: TransactionId,
    /// The order's total.
    pub amount: Money,
}

/// Input of `PlaceOrder`: the order, and the messages committed with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrderInput {
    /// The order (its fields inline: older sagas passed the order alone).
    #[serde(flatten)]
    pub order: OrderInput,
    /// For the outbox, e.g. the "order received" email.
    #[serde(default)]
    pub outgoing: Vec<Outgoing>,
}

/// Input of `ConfirmOrder`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmOrderInput {
    /// The order to confirm.
    pub order_id: OrderId,
    /// For the outbox: the confirmation email, the shipping request.
    #[serde(default)]
    pub outgoing: Vec<Outgoing>,
}

/// Input of `FailOrder`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailOrderInput {
    /// The order to fail.
    pub order_id: OrderId,
    /// Why.
    pub reason: FailureReason,
    /// For the outbox: the "order failed" email.
    #[serde(default)]
    pub outgoing: Vec<Outgoing>,
}

/// What `ProcessInventory` reports besides success: the low-stock alerts
/// its deduction raised, for the merchant's email, and which warehouses
/// the stock came from. (An `Option` in the activity's result, so
/// histories recorded when it returned nothing replay as "no alerts".)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryProcessed {
    /// Alerts raised by this order's deduction.
    pub low_stock_alerts: Vec<LowStockAlert>,
    /// The order's allocation: one entry per warehouse (one shipment
    /// each), in the fixed warehouse order. Empty in histories recorded
    /// before warehouses.
    #[serde(default)]
    pub allocations: Vec<WarehouseAllocation>,
    /// `ProcessInventoryAmendable` under the `ask` policy: some lines are
    /// short; the served ones are deducted (held for the order) and this
    /// amendment is proposed, the order `ACTION_REQUIRED`. `None`: every
    /// line was deducted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amendment: Option<Amendment>,
}

/// Input of `ProcessInventoryAmendable`: the order, from which the
/// "order amended" email is built if it comes to that (committed with the
/// amendment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmendableInventoryInput {
    /// The order.
    pub order: OrderInput,
}

/// Input of `RefundAmendment`: the missing lines' amount, refunded from the
/// order's capture once (the gateway key is per order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundAmendmentInput {
    /// The order.
    pub order_id: OrderId,
    /// The payment's idempotency key.
    pub transaction_id: TransactionId,
    /// The checkout's gateway order (the refund is part of its capture).
    pub gateway_order_id: GatewayOrderId,
    /// How much to give back.
    pub amount: Money,
}

/// Input of `CreateCheckout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutInput {
    /// The order paid for.
    pub order_id: OrderId,
    /// The payment's idempotency key (the gateway's `custom_id`).
    pub transaction_id: TransactionId,
    /// The order's total.
    pub amount: Money,
    /// The buyer's email, to prefill the gateway's login.
    pub payer_email: Option<String>,
}

/// Input of `OpenPayment`: the payment and where the buyer approves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenPaymentInput {
    /// The order paid for.
    pub order_id: OrderId,
    /// The payment's idempotency key.
    pub transaction_id: TransactionId,
    /// The order's total.
    pub amount: Money,
    /// The gateway order `CreateCheckout` made.
    pub checkout: CheckoutOrder,
    /// For the outbox: the "order received" email with the approval link.
    #[serde(default)]
    pub outgoing: Vec<Outgoing>,
}

/// Input of the calls on an existing gateway order (capture, void, refund).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayPaymentInput {
    /// The order paid for.
    pub order_id: OrderId,
    /// The payment's idempotency key.
    pub transaction_id: TransactionId,
    /// The gateway's order.
    pub gateway_order_id: GatewayOrderId,
}

/// How a checkout payment ended, as `SettlePayment` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Settlement {
    /// Captured: `PaymentProcessed`.
    Captured,
    /// The capture was declined: `PaymentProcessFailed`.
    Declined {
        /// The gateway's reason.
        reason: String,
    },
    /// Never approved (buyer cancelled, expired, order cancelled) and
    /// voided: `PaymentProcessFailed`.
    Voided {
        /// Why.
        reason: String,
    },
}

/// Input of `SettlePayment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleInput {
    /// The order paid for.
    pub order_id: OrderId,
    /// How its payment ended.
    pub settlement: Settlement,
}

pub use definition::*;

// `#[activity_definitions]` generates undocumented marker types and consts.
#[allow(missing_docs)]
mod definition {
    use temporalio_common::ActivityError;
    use temporalio_macros::activity_definitions;

    use super::*;

    /// The order saga's activities as the workflow calls them
    /// (`ctx.execute_activity(OrderContract::process_payment, ..)`); the worker's
    /// implementations are checked against them.
    pub struct OrderContract;

    #[activity_definitions]
    impl OrderContract {
        /// `PlaceOrder`: the order is stored `PENDING`; `OrderPlaced`.
        #[activity(name = activity::PLACE_ORDER)]
        pub fn place_order(input: PlaceOrderInput) -> Result<(), ActivityError> {
            unimplemented!()
        }

        /// `ProcessPayment`: the simulated mode's one synchronous charge;
        /// `PaymentProcessed`, or a `PaymentDeclined` failure.
        #[activity(name = activity::PROCESS_PAYMENT)]
        pub fn process_payment(input: PaymentInput) -> Result<(), ActivityError> {
            unimplemented!()
        }

        /// `ProcessInventory`: deducts stock for every line, all or nothing;
        /// reports the low-stock alerts it raised, or an `OutOfStock` failure.
        #[activity(name = activity::PROCESS_INVENTORY)]
        pub fn process_inventory(
            order_id: OrderId,
        ) -> Result<Option<InventoryProcessed>, ActivityError> {
            unimplemented!()
        }

        /// `ProcessInventoryAmendable` (`partial-availability-v1`): as
        /// `ProcessInventory`, but under the worker's `ask` policy a
        /// partial shortage proposes an amendment instead of failing.
        #[activity(name = activity::PROCESS_INVENTORY_AMENDABLE)]
        pub fn process_inventory_amendable(
            input: AmendableInventoryInput,
        ) -> Result<InventoryProcessed, ActivityError> {
            unimplemented!()
        }

        /// `RefundAmendment`: refunds the accepted amendment's missing lines
        /// (part of the capture, once); `AmendmentAccepted`,
        /// `PaymentPartiallyRefunded`, `InventoryProcessed`. Returns the
        /// amount refunded.
        #[activity(name = activity::REFUND_AMENDMENT)]
        pub fn refund_amendment(input: RefundAmendmentInput) -> Result<Money, ActivityError> {
            unimplemented!()
        }

        /// `ConfirmOrder`: `OrderConfirmed`; returns the order's status.
        #[activity(name = activity::CONFIRM_ORDER)]
        pub fn confirm_order(input: ConfirmOrderInput) -> Result<OrderStatus, ActivityError> {
            unimplemented!()
        }

        /// `GetOrderStatus`: the order's status in the shop database.
        #[activity(name = activity::GET_ORDER_STATUS)]
        pub fn get_order_status(order_id: OrderId) -> Result<OrderStatus, ActivityError> {
            unimplemented!()
        }

        /// `FailOrder`: `OrderFailed` with its reason; returns the order's status.
        #[activity(name = activity::FAIL_ORDER)]
        pub fn fail_order(input: FailOrderInput) -> Result<OrderStatus, ActivityError> {
            unimplemented!()
        }

        /// Compensation of `ProcessPayment`; returns whether money was given back.
        #[activity(name = activity::REFUND_PAYMENT)]
        pub fn refund_payment(input: PaymentInput) -> Result<bool, ActivityError> {
            unimplemented!()
        }

        /// Compensation of `ProcessInventory`; returns whether stock was put back.
        #[activity(name = activity::RELEASE_INVENTORY)]
        pub fn release_inventory(order_id: OrderId) -> Result<bool, ActivityError> {
            unimplemented!()
        }

        /// Checkout: creates the gateway order; returns the approval link.
        #[activity(name = activity::CREATE_CHECKOUT)]
        pub fn create_checkout(input: CheckoutInput) -> Result<CheckoutOrder, ActivityError> {
            unimplemented!()
        }

        /// Checkout: stores the payment `PENDING` with its approval link.
        #[activity(name = activity::OPEN_PAYMENT)]
        pub fn open_payment(input: OpenPaymentInput) -> Result<(), ActivityError> {
            unimplemented!()
        }

        /// Checkout: where the gateway order stands (the reconciliation poll).
        #[activity(name = activity::GET_CHECKOUT)]
        pub fn get_checkout(id: GatewayOrderId) -> Result<OrderSnapshot, ActivityError> {
            unimplemented!()
        }

        /// Checkout: captures the approved order.
        #[activity(name = activity::CAPTURE_PAYMENT)]
        pub fn capture_payment(
            input: GatewayPaymentInput,
        ) -> Result<CaptureOutcome, ActivityError> {
            unimplemented!()
        }

        /// Checkout: records how the payment ended, once.
        #[activity(name = activity::SETTLE_PAYMENT)]
        pub fn settle_payment(input: SettleInput) -> Result<(), ActivityError> {
            unimplemented!()
        }

        /// Checkout: makes sure the unapproved gateway order is never captured.
        #[activity(name = activity::VOID_PAYMENT)]
        pub fn void_payment(input: GatewayPaymentInput) -> Result<VoidOutcome, ActivityError> {
            unimplemented!()
        }

        /// Checkout compensation; returns whether money was given back.
        #[activity(name = activity::REFUND_CHECKOUT)]
        pub fn refund_checkout(input: GatewayPaymentInput) -> Result<bool, ActivityError> {
            unimplemented!()
        }
    }

    /// The marker types the implementation names in `#[activity(definition = ..)]`.
    pub use order_contract::*;
}
