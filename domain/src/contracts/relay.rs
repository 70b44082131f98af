//! The outbox relay's activity: [`RelayContract`] (`RelayOutbox`, run by
//! the `OutboxRelayWorkflow` of each topic on its service's task queue).

use serde::{Deserialize, Serialize};

use crate::Topic;
use crate::names::activity;

/// Input of `RelayOutbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayInput {
    /// The topic to drain.
    pub topic: Topic,
    /// The slot's number within its relay; names its claims.
    pub slot: u32,
}

/// What one `RelayOutbox` run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayReport {
    /// Messages delivered.
    pub delivered: u64,
    /// Delivery attempts that failed and will be retried.
    pub retried: u64,
    /// Messages given up.
    pub failed: u64,
}

pub use definition::*;

// `#[activity_definitions]` generates undocumented marker types and consts.
#[allow(missing_docs)]
mod definition {
    use temporalio_common::ActivityError;
    use temporalio_macros::activity_definitions;

    use super::*;

    /// The relay's activities as the relay workflow calls them.
    pub struct RelayContract;

    #[activity_definitions]
    impl RelayContract {
        /// `RelayOutbox`: delivers one topic's outbox messages for a while.
        #[activity(name = activity::RELAY_OUTBOX)]
        pub fn relay_outbox(input: RelayInput) -> Result<RelayReport, ActivityError> {
            unimplemented!()
        }
    }

    /// The marker types the implementation names in `#[activity(definition = ..)]`.
    pub use relay_contract::*;
}
