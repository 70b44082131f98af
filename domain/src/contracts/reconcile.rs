//! The reconciler's activities: [`ReconcileContract`], run by the
//! `ReconcileOrders` workflow on the orders task queue.

use serde::{Deserialize, Serialize};

use crate::names::activity;
use crate::reconcile::{Finding, FindingAction, FindingKind, ReconcileInput};

/// Input of `ClearResolvedFindings`: what this run still saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenFindings {
    /// `(kind, subject)` of every finding of this run. Open findings of
    /// earlier runs not in it are resolved.
    pub seen: Vec<(FindingKind, String)>,
}

pub use definition::*;

// `#[activity_definitions]` generates undocumented marker types and consts.
#[allow(missing_docs)]
mod definition {
    use temporalio_common::ActivityError;
    use temporalio_macros::activity_definitions;

    use super::*;

    /// The reconciler's activities as its workflow calls them.
    pub struct ReconcileContract;

    #[activity_definitions]
    impl ReconcileContract {
        /// `FindInconsistencies`: reads the shop database, Temporal and the
        /// outbox; changes nothing.
        #[activity(name = activity::FIND_INCONSISTENCIES)]
        pub fn find_inconsistencies(input: ReconcileInput) -> Result<Vec<Finding>, ActivityError> {
            unimplemented!()
        }

        /// `ActOnFinding`: repairs what is safe to repair (asking the
        /// gateway first), lists the rest as needing attention.
        #[activity(name = activity::ACT_ON_FINDING)]
        pub fn act_on_finding(finding: Finding) -> Result<FindingAction, ActivityError> {
            unimplemented!()
        }

        /// `ClearResolvedFindings`: resolves open findings this run no
        /// longer saw; answers how many.
        #[activity(name = activity::CLEAR_RESOLVED_FINDINGS)]
        pub fn clear_resolved_findings(input: SeenFindings) -> Result<u64, ActivityError> {
            unimplemented!()
        }
    }

    /// The marker types the implementation names in `#[activity(definition = ..)]`.
    pub use reconcile_contract::*;
}
