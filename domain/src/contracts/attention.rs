//! The activities that record parked compensations: [`AttentionContract`].
//! A compensation the other side refused for good is parked
//! (`ParkCompensation`) and later settled by an operator
//! (`ResolveAttention`: retried successfully, or closed with a reason).

use serde::{Deserialize, Serialize};

use crate::names::activity;
use crate::{Compensation, OperatorNote, OrderId};

/// Input of `ParkCompensation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkInput {
    /// The order.
    pub order_id: OrderId,
    /// The compensation that was refused.
    pub compensation: Compensation,
    /// Why, in the refusing side's words.
    pub reason: String,
}

/// How an operator settled an order's parked compensations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resolution {
    /// This compensation succeeded when the operator retried it.
    Completed {
        /// The compensation.
        compensation: Compensation,
    },
    /// The operator closed every open one (e.g. refunded by hand).
    Closed {
        /// Who and why.
        note: OperatorNote,
    },
}

/// Input of `ResolveAttention`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveInput {
    /// The order.
    pub order_id: OrderId,
    /// How.
    pub resolution: Resolution,
}

pub use definition::*;

// `#[activity_definitions]` generates undocumented marker types and consts.
#[allow(missing_docs)]
mod definition {
    use temporalio_common::ActivityError;
    use temporalio_macros::activity_definitions;

    use super::*;

    /// The records of parked compensations, as the saga calls them.
    pub struct AttentionContract;

    #[activity_definitions]
    impl AttentionContract {
        /// `ParkCompensation`: the compensation needs an operator; a refused
        /// refund leaves the payment `REFUND_FAILED` with the reason.
        #[activity(name = activity::PARK_COMPENSATION)]
        pub fn park_compensation(input: ParkInput) -> Result<(), ActivityError> {
            unimplemented!()
        }

        /// `ResolveAttention`: the operator's retry succeeded, or the
        /// operator closed the order's parked compensations.
        #[activity(name = activity::RESOLVE_ATTENTION)]
        pub fn resolve_attention(input: ResolveInput) -> Result<(), ActivityError> {
            unimplemented!()
        }
    }

    /// The marker types the implementation names in `#[activity(definition = ..)]`.
    pub use attention_contract::*;
}
