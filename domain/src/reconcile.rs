//! The reconciler's vocabulary: what a `ReconcileOrders` run looks for
//! ([`FindingKind`]), what it found ([`Finding`]) and what it did about it
//! ([`FindingAction`], [`ReconcileReport`]).
//!
//! The saga keeps the shop's promise order by order; the reconciler checks
//! it from the outside, across orders, for what the saga cannot see: an
//! order whose workflow is gone, money kept for a failed order, a gateway
//! order left approved, an outbox message nobody delivers.

use serde::{Deserialize, Serialize};

use crate::OrderId;

text_enum!(
    /// A kind of inconsistency between the shop database, Temporal, the
    /// gateway and the outbox.
    FindingKind {
        /// The order is `PENDING` but its workflow is closed: nothing will
        /// ever end it.
        PendingWorkflowClosed => "PENDING_WORKFLOW_CLOSED",
        /// The order is `PENDING` but Temporal has no workflow for it.
        PendingWorkflowMissing => "PENDING_WORKFLOW_MISSING",
        /// The order is `FAILED`, its payment `CAPTURED` and not refunded,
        /// and no workflow is running to refund it.
        CapturedNotRefunded => "CAPTURED_NOT_REFUNDED",
        /// A checkout payment of a `FAILED` order is neither captured nor
        /// voided in the shop's books, and no workflow is running to settle
        /// it: the buyer could still approve it.
        CheckoutNotSettled => "CHECKOUT_NOT_SETTLED",
        /// An outbox message claimed by a relay whose lease ran out long
        /// ago and that no relay has taken back.
        OutboxStuck => "OUTBOX_STUCK",
    }
);

/// One inconsistency, as a run found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What is wrong.
    pub kind: FindingKind,
    /// What it is about: the order id, or the outbox message's key.
    pub subject: String,
    /// The order concerned, when there is one.
    pub order_id: Option<OrderId>,
    /// What the run saw, for the operator.
    pub detail: String,
}

/// What a run did about one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FindingAction {
    /// Put right (e.g. a gateway order voided); nothing left to do.
    Repaired,
    /// Listed for an operator (needs attention).
    Flagged,
}

/// Input of a `ReconcileOrders` run (the schedule's action carries it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileInput {
    /// Only orders placed (and outbox leases expired) longer ago than this
    /// are looked at, so work in flight is never mistaken for stuck.
    pub grace_secs: u64,
    /// At most this many findings of each kind per run.
    pub limit: u32,
}

impl Default for ReconcileInput {
    fn default() -> Self {
        Self {
            grace_secs: 300,
            limit: 200,
        }
    }
}

/// What a run found and did: the workflow's result, shown in the Web UI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileReport {
    /// Everything found, in the order it was found.
    pub findings: Vec<Finding>,
    /// How many of them were repaired.
    pub repaired: u32,
    /// How many were flagged for an operator.
    pub flagged: u32,
    /// Findings of earlier runs no longer seen (resolved since).
    pub cleared: u64,
}
