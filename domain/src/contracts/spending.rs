//! The spending limit's saga steps: [`SpendingContract`]
//! (`ReserveSpending` before the payment, `ReleaseSpending` its
//! compensation; `spending-limit-v1`).

use crate::OrderId;
use crate::names::activity;

pub use definition::*;

// `#[activity_definitions]` generates undocumented marker types and consts.
#[allow(missing_docs)]
mod definition {
    use temporalio_common::ActivityError;
    use temporalio_macros::activity_definitions;

    use super::*;

    /// The spending limit's activities as the saga calls them.
    pub struct SpendingContract;

    #[activity_definitions]
    impl SpendingContract {
        /// `ReserveSpending`: the order's total counts against the
        /// customer's spending limit from now on, or the order is refused
        /// with a `SpendingLimitExceeded` failure. Decided once per order.
        #[activity(name = activity::RESERVE_SPENDING)]
        pub fn reserve_spending(order_id: OrderId) -> Result<(), ActivityError> {
            unimplemented!()
        }

        /// Compensation of `ReserveSpending`; returns whether a reservation
        /// was given back.
        #[activity(name = activity::RELEASE_SPENDING)]
        pub fn release_spending(order_id: OrderId) -> Result<bool, ActivityError> {
            unimplemented!()
        }
    }

    /// The marker types the implementation names in `#[activity(definition = ..)]`.
    pub use spending_contract::*;
}
