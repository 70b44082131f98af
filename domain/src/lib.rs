//! The shop's ubiquitous language, shared by every ordersaga crate.
//!
//! This crate owns the vocabulary (`docs/architecture.md` maps it onto the
//! code): validated ids ([`OrderId`], [`CustomerId`], [`Sku`],
//! [`TransactionId`]), [`Money`] in integer minor units, the order's payloads
//! (what the API hands the workflow), the lifecycle enums ([`OrderStatus`],
//! [`PaymentStatus`], [`SagaStep`]) and their allowed transitions, the
//! saga's compensations and what parks them for an operator ([`attention`]), the domain
//! event names ([`OrderEvent`], [`CatalogEvent`]) and their published form
//! ([`events`]: ids, CloudEvents types, NATS subjects, versioned data), partial availability's
//! amendment ([`amendment`]), the product and inventory
//! rules ([`catalog`]: the low-stock crossing, who may rate), the customer's
//! contact details ([`contact`]), the payloads of the notification and
//! shipping services ([`notify`]) and the messages an order produces for them
//! (`OrderInput::confirmed_email`, `OrderInput::shipment`, ...), the stable
//! Temporal names ([`names`]), the reconciler's findings ([`reconcile`]), the spending limit's rule ([`spending`]) and the activity contracts ([`contracts`]: each
//! activity's name, input and output). It has no I/O and no runtime, so both
//! the deterministic workflow code and the API can depend on it; the store
//! applies its rules inside its transactions.

// `#[activity_definitions]` expands to `::temporalio_common::..`; the
// `-wasm` crate is the part of it a workflow may link (same trait: the
// SDK's temporalio-common re-exports it).
extern crate temporalio_common_wasm as temporalio_common;

#[macro_use]
mod text_enum;

pub mod allocation;
pub mod amendment;
pub mod attention;
pub mod catalog;
pub mod contact;
pub mod contracts;
pub mod events;
pub mod ids;
mod messages;
pub mod money;
pub mod names;
pub mod notify;
pub mod order;
pub mod reconcile;
pub mod spending;

pub use allocation::{WarehouseAllocation, WarehouseStock, allocate};
pub use amendment::{
    Amendment, AmendmentStatus, DEFAULT_AMENDMENT_DEADLINE_SECS, PartialAvailability,
};
pub use attention::{AttentionStatus, Compensation, NoteError, OperatorNote};
pub use catalog::{CatalogEvent, LowStockCrossing, StockLevel};
pub use contact::{ContactError, EmailAddress, ShippingAddress};
pub use ids::{CustomerId, IdError, OrderId, Sku, TransactionId, WarehouseId};
pub use money::{Currency, GATEWAY_MAX_MAJOR_UNITS, Money, MoneyError};
pub use notify::{
    DEFAULT_WAREHOUSE, EmailStage, LowStockAlert, Notification, OrderEmail, Outgoing, ShipmentLine,
    ShipmentRequest, ShipmentStatus, Topic, shipment_workflow_id,
};
pub use order::{
    CheckoutTiming, FailureReason, GatewayEvent, GatewayEventKind, InternalCode, OrderEvent,
    OrderInput, OrderLine, OrderOutcome, OrderStatus, OrderView, PaymentMode, PaymentStatus,
    SagaStep,
};
pub use reconcile::{Finding, FindingAction, FindingKind, ReconcileInput, ReconcileReport};
