//! The shipping service: the `RequestShipment` activity and the warehouse's
//! list of shipping requests (`shipments`, one per confirmed order, keyed by
//! the order id so a retried or replayed request creates nothing twice).

use std::sync::Arc;

use ordersaga_domain::ShipmentRequest;
use ordersaga_domain::contracts::shipping as contract;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use ordersaga_store::Store;

/// The shipping service's activities.
pub struct ShippingActivities {
    store: Store,
}

impl ShippingActivities {
    /// Activities over this store.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[activities]
impl ShippingActivities {
    /// `RequestShipment`: the warehouse gets the order's shipping request,
    /// once. Returns whether this call created it.
    #[activity(definition = contract::RequestShipment)]
    pub async fn request_shipment(
        self: Arc<Self>,
        _ctx: ActivityContext,
        request: ShipmentRequest,
    ) -> Result<bool, ActivityError> {
        let created = self.store.shipments().request(&request).await?;
        tracing::info!(order_id = %request.order_id, created, "ShipmentRequested");
        Ok(created)
    }
}
