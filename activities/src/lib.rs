//! The saga's side effects: the activities and the systems they touch.
//!
//! - [`store`]: the shop's own data (products, stock ledger, orders, payments,
//!   status history) in SQLite or PostgreSQL, every write idempotent.
//! - [`gateway`]: the payment gateway port and its simulated implementation.
//! - [`metrics`]: business counters (orders placed/confirmed/failed,
//!   refunds, payment wait) recorded through the worker's metrics meter.
//! - [`connection`]: how processes reach Temporal (envconfig plus overrides).
//! - [`activities`]: `OrderActivities`, one Temporal activity per domain
//!   command (`PlaceOrder`, `ProcessPayment`, ...) plus the compensations.

#[allow(missing_docs)] // #[activities] generates undocumented items
pub mod activities;
pub mod connection;
pub mod gateway;
pub mod metrics;
pub mod store;

pub use activities::{FailOrderInput, OrderActivities, PaymentInput};
pub use gateway::{PaymentGateway, SimulatedGateway};
pub use metrics::BusinessMetrics;
pub use store::{Store, StoreError};
