//! The shop's ubiquitous language, shared by every ordersaga crate.
//!
//! This crate owns the vocabulary of `../shared/docs/domain.md`: validated ids
//! ([`OrderId`], [`CustomerId`], [`Sku`], [`TransactionId`]), [`Money`] in integer
//! minor units, the order's payloads (what the API hands the workflow and what
//! activities return), the lifecycle enums ([`OrderStatus`], [`PaymentStatus`])
//! and their allowed transitions, the domain event names ([`OrderEvent`],
//! [`CatalogEvent`]), the product and inventory rules ([`catalog`]: the
//! low-stock crossing, who may rate), the customer's contact details
//! ([`contact`]), the payloads of the notification and shipping services
//! ([`notify`]) and the stable Temporal names ([`names`]). It has no I/O and
//! no runtime, so both the deterministic workflow code and the API can depend
//! on it; the store applies its rules inside its transactions.

#[macro_use]
mod text_enum;

pub mod catalog;
pub mod contact;
pub mod ids;
pub mod money;
pub mod names;
pub mod notify;
pub mod order;

pub use catalog::{CatalogEvent, LowStockCrossing, StockLevel};
pub use contact::{ContactError, EmailAddress, ShippingAddress};
pub use ids::{CustomerId, IdError, OrderId, Sku, TransactionId};
pub use money::{Currency, Money, MoneyError};
pub use notify::{
    EmailStage, LowStockAlert, Notification, OrderEmail, Outgoing, ShipmentLine, ShipmentRequest,
    Topic,
};
pub use order::{
    CheckoutTiming, FailureReason, GatewayEvent, GatewayEventKind, OrderEvent, OrderInput,
    OrderLine, OrderOutcome, OrderStatus, OrderView, PaymentMode, PaymentStatus,
};
