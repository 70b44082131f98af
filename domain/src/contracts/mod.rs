//! The activity contracts: every activity's Temporal name, input and output
//! type, as `#[activity_definitions]`. Workflows call activities through
//! these (`ctx.execute_activity(OrderContract::place_order, ..)`) without
//! linking their implementations; the implementations in
//! `ordersaga-activities` name them in `#[activity(definition = ..)]`, which
//! fails to compile if their input or output type drifts.
//!
//! The payloads are part of every recorded history: their JSON shape (field
//! and variant names, serde attributes) must not change, or running and
//! recorded sagas stop replaying.
//!
//! - [`order`]: the saga's steps and compensations, both payment modes.
//! - [`attention`]: the records of compensations parked for an operator.
//! - [`checkout`]: what the checkout gateway's activities return.
//! - [`notification`], [`shipping`], [`relay`]: the support services.
//! - [`reconcile`]: the reconciler's checks across orders.
//! - [`spending`]: the reservation against the customer's spending limit.

pub mod attention;
pub mod checkout;
pub mod notification;
pub mod order;
pub mod reconcile;
pub mod relay;
pub mod shipping;
pub mod spending;

pub use attention::{AttentionContract, ParkInput, Resolution, ResolveInput};
pub use checkout::{
    Capture, CaptureId, CaptureOutcome, CaptureStatus, CheckoutOrder, CheckoutStatus,
    GatewayOrderId, OrderSnapshot, VoidOutcome,
};
pub use notification::{EmailReceipt, NotificationContract, SendEmailInput};
pub use order::{
    AmendableInventoryInput, CheckoutInput, ConfirmOrderInput, FailOrderInput, GatewayPaymentInput,
    InventoryProcessed, OpenPaymentInput, OrderContract, PaymentInput, PlaceOrderInput,
    RefundAmendmentInput, SettleInput, Settlement,
};
pub use reconcile::{ReconcileContract, SeenFindings};
pub use relay::{RelayContract, RelayInput, RelayReport};
pub use shipping::ShippingContract;
pub use spending::SpendingContract;
