//! The saga's side effects: the activities and the systems they touch.
//!
//! - [`gateway`]: the payment gateway port and its simulated implementation.
//! - [`metrics`]: business counters (orders placed/confirmed/failed,
//!   refunds, payment wait) recorded through the worker's metrics meter.
//! - [`activities`]: `OrderActivities`, one Temporal activity per domain
//!   command (`PlaceOrder`, `ProcessPayment`, ...) plus the compensations.
//! - [`attention`]: `AttentionActivities`, the records of compensations
//!   parked for an operator.
//! - [`mail`], [`notify`]: the notifications service (templates, SMTP or
//!   local mailbox, the once-per-stage `SendEmail` activity).
//! - [`relay`]: the outbox relay (`RelayOutbox`) through which both
//!   services receive what the saga's steps committed to the outbox.
//! - [`reconcile`]: the reconciler's checks across orders (repair or flag).
//! - [`shipping`]: the shipping service (`RequestShipment`, the warehouse's
//!   list of shipping requests).
//! - [`spending`]: `SpendingActivities`, the reservation of an order's
//!   total against its customer's spending limit.

#[allow(missing_docs)] // #[activities] generates undocumented items
pub mod activities;
#[allow(missing_docs)] // #[activities] generates undocumented items
pub mod attention;
pub mod gateway;
pub mod mail;
pub mod metrics;
#[allow(missing_docs)] // #[activities] generates undocumented items
pub mod notify;
#[allow(missing_docs)] // #[activities] generates undocumented items
pub mod reconcile;
#[allow(missing_docs)] // #[activities] generates undocumented items
pub mod relay;
#[allow(missing_docs)] // #[activities] generates undocumented items
pub mod shipping;
#[allow(missing_docs)] // #[activities] generates undocumented items
pub mod spending;

pub use activities::OrderActivities;
pub use attention::AttentionActivities;
pub use gateway::{PaymentGateway, SimulatedGateway};
pub use mail::{Delivery, MailSettings, Mailer, SmtpSettings, SmtpTls};
pub use metrics::BusinessMetrics;
pub use notify::{EmailRetry, NotificationActivities};
pub use reconcile::ReconcileActivities;
pub use relay::{LeaseTooShort, RelayActivities, RelaySettings};
pub use shipping::ShippingActivities;
pub use spending::SpendingActivities;
