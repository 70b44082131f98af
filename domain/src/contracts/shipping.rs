//! The shipping service's activities: [`ShippingContract`]
//! (`RequestShipment`; and the shipment's life under
//! `shipment-lifecycle-v1`: `FlagUndispatched`, `RecordDispatch`,
//! `RecordDelivery`), run by the `ShippingWorkflow`.

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

        /// `FlagUndispatched`: the shipment waited longer than allowed for
        /// the courier: flagged once (metric, log, `dispatch_overdue_at`);
        /// returns whether this call flagged it.
        #[activity(name = activity::FLAG_UNDISPATCHED)]
        pub fn flag_undispatched(request: ShipmentRequest) -> Result<bool, ActivityError> {
            unimplemented!()
        }

        /// `RecordDispatch`: `REQUESTED -> DISPATCHED` with
        /// `ShipmentDispatched` and the customer's email, once; returns
        /// whether this call moved it.
        #[activity(name = activity::RECORD_DISPATCH)]
        pub fn record_dispatch(request: ShipmentRequest) -> Result<bool, ActivityError> {
            unimplemented!()
        }

        /// `RecordDelivery`: `DISPATCHED -> DELIVERED` with
        /// `ShipmentDelivered` and the customer's email, once, and
        /// `OrderCompleted` with the order's last delivery; returns whether
        /// this call moved it.
        #[activity(name = activity::RECORD_DELIVERY)]
        pub fn record_delivery(request: ShipmentRequest) -> Result<bool, ActivityError> {
            unimplemented!()
        }
    }

    /// The marker types the implementation names in `#[activity(definition = ..)]`.
    pub use shipping_contract::*;
}
