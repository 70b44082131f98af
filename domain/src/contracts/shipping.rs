//! The shipping service's activity: [`ShippingContract`]
//! (`RequestShipment`, run by the `ShippingWorkflow` of sagas from before
//! the outbox).

use crate::ShipmentRequest;
use crate::names::activity;

pub use definition::*;

// `#[activity_definitions]` generates undocumented marker types and consts.
#[allow(missing_docs)]
mod definition {
    use temporalio_common::ActivityError;
    use temporalio_macros::activity_definitions;

    use super::*;

    /// The shipping service's activities as workflows call them.
    pub struct ShippingContract;

    #[activity_definitions]
    impl ShippingContract {
        /// `RequestShipment`: the warehouse gets the order's shipping request,
        /// once; returns whether this call created it.
        #[activity(name = activity::REQUEST_SHIPMENT)]
        pub fn request_shipment(request: ShipmentRequest) -> Result<bool, ActivityError> {
            unimplemented!()
        }
    }

    /// The marker types the implementation names in `#[activity(definition = ..)]`.
    pub use shipping_contract::*;
}
