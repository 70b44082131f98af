//! The shop's workflows: deterministic Temporal workflow code that decides
//! which activities run, in which order, and what happens when one fails.
//!
//! - [`order`]: the order saga, [`OrderWorkflow`].
//! - [`relay`]: [`OutboxRelayWorkflow`], one per outbox topic, delivering
//!   what the saga's steps committed to the outbox.
//! - [`reconcile`]: [`ReconcileOrdersWorkflow`], the scheduled check
//!   across orders that repairs or flags what the saga cannot see.
//! - [`notification`], [`shipping`]: the child workflows that sagas from
//!   before the outbox start per email and per shipping request.
//!
//! Activities are called through their contracts in
//! [`ordersaga_domain::contracts`], never their implementations: this crate
//! depends on the domain and the SDK's workflow crate only, so it links no
//! clock, randomness, I/O, threads or tokio runtime (`tests/no_io.rs` fails
//! if such a crate enters its dependency tree).

#![allow(missing_docs)] // the #[workflow] macros generate undocumented items

pub mod notification;
pub mod order;
pub mod reconcile;
pub mod relay;
pub mod shipping;

pub use notification::NotificationWorkflow;
pub use order::{
    EXECUTION_TIMEOUT, ORDER_STATUS_ATTR, OrderWorkflow, PAYMENT_STATUS_ATTR, WORKFLOW_TASK_TIMEOUT,
};
pub use reconcile::ReconcileOrdersWorkflow;
pub use relay::{OutboxRelayWorkflow, RelayWorkflowInput};
pub use shipping::ShippingWorkflow;
