//! The shipping service: the `RequestShipment` activity and the warehouse's
//! list of shipments (`shipments`, one per confirmed order and warehouse,
//! keyed so a retried or replayed request creates nothing twice), and the
//! shipment's life (`shipment-lifecycle-v1`): `RecordDispatch` and
//! `RecordDelivery`, each one guarded transaction that commits the
//! customer's email to the notifications outbox, and `FlagUndispatched`,
//! the alert for a shipment the courier did not pick up in time.

use std::sync::Arc;

use ordersaga_domain::contracts::shipping as contract;
use ordersaga_domain::{
    Currency, DEFAULT_WAREHOUSE, EmailStage, Money, Notification, OrderEmail, OrderLine, Outgoing,
    ShipmentRequest,
};
use ordersaga_store::{Moved, Store};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use crate::activities::store_failure;
use crate::metrics::BusinessMetrics;

/// The shipping service's activities.
pub struct ShippingActivities {
    store: Store,
    metrics: BusinessMetrics,
}

impl ShippingActivities {
    /// Activities over this store, recording no metrics.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            metrics: BusinessMetrics::noop(),
        }
    }

    /// Records the overdue-shipment counter on `metrics`.
    pub fn with_metrics(mut self, metrics: BusinessMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The customer's email of `stage` about the shipment, built from the
    /// order as stored; none for a request without an address to send to.
    async fn email(
        &self,
        request: &ShipmentRequest,
        stage: EmailStage,
    ) -> Result<Vec<Outgoing>, ActivityError> {
        let Some(to) = request.customer_email.clone() else {
            return Ok(Vec::new());
        };
        let order = self
            .store
            .orders()
            .get(&request.order_id)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| {
                store_failure(ordersaga_store::StoreError::OrderNotFound(request.order_id))
            })?;
        let currency = order.summary.total.currency;
        // The parcel's lines, priced as ordered: with several shipments
        // each email lists what that parcel holds.
        let lines: Vec<OrderLine> = request
            .lines
            .iter()
            .map(|l| OrderLine {
                sku: l.sku.clone(),
                quantity: l.quantity,
                unit_price: Money::new(
                    order
                        .lines
                        .iter()
                        .find(|o| o.sku == l.sku)
                        .map_or(0, |o| o.unit_price_minor),
                    currency,
                ),
            })
            .collect();
        // An accepted amendment ships only its lines: the parcel's own sum.
        let amended = order.amendment.is_some();
        let total = if request.warehouse == DEFAULT_WAREHOUSE && !amended {
            order.summary.total
        } else {
            parcel_total(&lines, currency)
        };
        Ok(vec![Outgoing::Email(Notification::Order(OrderEmail {
            stage,
            order_id: request.order_id,
            customer_id: request.customer_id.clone(),
            to,
            lines,
            total,
            reason: None,
            refunded: false,
            ship_to: Some(request.address.clone()),
            amendment: None,
            payment_url: None,
            warehouse: (request.warehouse != DEFAULT_WAREHOUSE).then(|| request.warehouse.clone()),
        }))])
    }
}

/// What a parcel's lines are worth (zero, should a sum not fit).
fn parcel_total(lines: &[OrderLine], currency: Currency) -> Money {
    lines
        .iter()
        .try_fold(Money::new(0, currency), |sum, l| {
            sum.plus(l.unit_price.times(l.quantity)?)
        })
        .unwrap_or(Money::new(0, currency))
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

    /// `FlagUndispatched`: the alert for a shipment the courier has not
    /// picked up in time: counted, logged and flagged on the shipment,
    /// once.
    #[activity(definition = contract::FlagUndispatched)]
    pub async fn flag_undispatched(
        self: Arc<Self>,
        _ctx: ActivityContext,
        request: ShipmentRequest,
    ) -> Result<bool, ActivityError> {
        let flagged = self
            .store
            .shipments()
            .flag_overdue(&request.order_id, &request.warehouse)
            .await
            .map_err(store_failure)?;
        if flagged {
            self.metrics.shipment_overdue();
            tracing::warn!(order_id = %request.order_id, warehouse = %request.warehouse, "shipment not dispatched in time");
        }
        Ok(flagged)
    }

    /// `RecordDispatch`: `DISPATCHED`, `ShipmentDispatched` and the
    /// customer's "on its way" email, once.
    #[activity(definition = contract::RecordDispatch)]
    pub async fn record_dispatch(
        self: Arc<Self>,
        _ctx: ActivityContext,
        request: ShipmentRequest,
    ) -> Result<bool, ActivityError> {
        let email = self.email(&request, EmailStage::ShipmentDispatched).await?;
        let Moved { changed, .. } = self
            .store
            .shipments()
            .dispatch(&request.order_id, &request.warehouse, &email)
            .await
            .map_err(store_failure)?;
        tracing::info!(order_id = %request.order_id, warehouse = %request.warehouse, changed, "ShipmentDispatched");
        Ok(changed)
    }

    /// `RecordDelivery`: `DELIVERED`, `ShipmentDelivered`, the customer's
    /// "delivered" email and, with the order's last shipment,
    /// `OrderCompleted`, once.
    #[activity(definition = contract::RecordDelivery)]
    pub async fn record_delivery(
        self: Arc<Self>,
        _ctx: ActivityContext,
        request: ShipmentRequest,
    ) -> Result<bool, ActivityError> {
        let email = self.email(&request, EmailStage::ShipmentDelivered).await?;
        let moved = self
            .store
            .shipments()
            .deliver(&request.order_id, &request.warehouse, &email)
            .await
            .map_err(store_failure)?;
        tracing::info!(order_id = %request.order_id, warehouse = %request.warehouse, changed = moved.changed, order_completed = moved.order_completed, "ShipmentDelivered");
        Ok(moved.changed)
    }
}
