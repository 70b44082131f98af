//! [`ShippingWorkflow`]: one shipment's life on the `shipping` task queue,
//! id `shipping-{order_id}` (`-{warehouse}` for a warehouse other than the
//! default one).
//!
//! It stores the shipping request (`RequestShipment`, idempotent by order
//! and warehouse) and, since `shipment-lifecycle-v1`, waits for the
//! courier: the `Dispatch` update moves it `REQUESTED -> DISPATCHED`, the
//! `Deliver` update `DISPATCHED -> DELIVERED`, each recorded by an activity
//! (`RecordDispatch`, `RecordDelivery`) that commits the customer's email
//! to the notifications outbox in the same transaction, so each email is
//! sent once. A shipment not dispatched within the request's
//! `dispatch_alert_secs` is flagged once (`FlagUndispatched`: a metric, a
//! log line and the shipment's `dispatch_overdue_at`); the wait goes on.
//!
//! One workflow per shipment, not per order: a shipment is what the
//! courier moves, so each has its own history, its own overdue timer and
//! its own updates, and an order split over warehouses gets one per
//! warehouse with no change here. The order's completion is the store's:
//! the delivery that leaves none of the order's shipments undelivered
//! records `OrderCompleted` in its transaction.
//!
//! The validators refuse a move that does not fit (dispatching a delivered
//! shipment, delivering one not dispatched): a rejected update leaves no
//! trace in the history and writes nothing. A repeated move is accepted and
//! changes nothing (the courier's retry). The updates and the activity
//! that records them are completed in the same workflow task, so an
//! accepted move is never lost with a worker.
//!
//! Shipping workflows started before the patch (by sagas of the child
//! workflow generation) end after the request, as they did.

use std::time::Duration;

use ordersaga_domain::contracts::ShippingContract;
use ordersaga_domain::names::{SHIPMENT_LIFECYCLE_PATCH, SHIPPING_WORKFLOW_TYPE, handler};
use ordersaga_domain::{ShipmentRequest, ShipmentStatus};
use temporalio_workflow::{
    ActivityCloseTimeouts, ActivityOptions, RetryPolicy, SyncWorkflowContext, TimerOptions,
    WorkflowContext, WorkflowContextView, WorkflowResult, workflow, workflow_methods,
};

#[workflow]
pub struct ShippingWorkflow {
    request: ShipmentRequest,
    /// Where the courier has taken it (accepted updates).
    status: ShipmentStatus,
}

/// The shipping service's database writes: an outage is waited out for a
/// day.
fn store_step(summary: &str) -> ActivityOptions {
    ActivityOptions::with_close_timeouts(ActivityCloseTimeouts::ScheduleAndStartToClose {
        schedule_to_close: Duration::from_secs(24 * 3600),
        start_to_close: Duration::from_secs(30),
    })
    .retry_policy(
        RetryPolicy::builder()
            .initial_interval(Duration::from_millis(200))
            .backoff_coefficient(2.0)
            .maximum_interval(Duration::from_secs(60))
            .build(),
    )
    .summary(summary)
    .build()
}

type Refusal = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[workflow_methods]
impl ShippingWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, request: ShipmentRequest) -> Self {
        Self {
            request,
            status: ShipmentStatus::Requested,
        }
    }

    /// Hands the request to the warehouse, then (`shipment-lifecycle-v1`)
    /// follows the shipment until it is delivered. Returns whether this run
    /// created the request (false: it already existed).
    #[run(name = SHIPPING_WORKFLOW_TYPE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<bool> {
        let request = ctx.state(|s| s.request.clone());
        let lifecycle = ctx.patched(SHIPMENT_LIFECYCLE_PATCH);
        let created = ctx
            .execute_activity(
                ShippingContract::request_shipment,
                request.clone(),
                store_step("RequestShipment"),
            )
            .await?;
        if !lifecycle {
            return Ok(created);
        }
        let dispatched = |s: &Self| s.status != ShipmentStatus::Requested;
        if let Some(secs) = request.dispatch_alert_secs {
            let timer = TimerOptions::builder(Duration::from_secs(secs))
                .summary("dispatch-alert".to_string())
                .build();
            let overdue = temporalio_workflow::workflows::select! {
                _ = ctx.wait_condition(dispatched) => false,
                _ = ctx.timer(timer) => true,
            };
            if overdue && !ctx.state(dispatched) {
                ctx.execute_activity(
                    ShippingContract::flag_undispatched,
                    request.clone(),
                    store_step("FlagUndispatched"),
                )
                .await?;
            }
        }
        ctx.wait_condition(dispatched).await?;
        ctx.execute_activity(
            ShippingContract::record_dispatch,
            request.clone(),
            store_step("RecordDispatch"),
        )
        .await?;
        ctx.wait_condition(|s: &Self| s.status == ShipmentStatus::Delivered)
            .await?;
        ctx.execute_activity(
            ShippingContract::record_delivery,
            request,
            store_step("RecordDelivery"),
        )
        .await?;
        Ok(created)
    }

    /// Where the courier has taken the shipment.
    #[query(name = handler::SHIPMENT_STATUS)]
    pub fn shipment_status(&self, _ctx: &WorkflowContextView) -> ShipmentStatus {
        self.status
    }

    /// Refuses `Dispatch` once the shipment is delivered.
    #[update_validator(dispatch)]
    fn validate_dispatch(&self, _ctx: &WorkflowContextView, _input: &()) -> Refusal {
        match self.status.dispatched() {
            Some(_) => Ok(()),
            None => Err(format!(
                "shipment of order {} from {} is {}: it cannot be dispatched",
                self.request.order_id, self.request.warehouse, self.status
            )
            .into()),
        }
    }

    /// `Dispatch`: the courier picked the shipment up. Answers its status.
    #[update(name = handler::DISPATCH)]
    pub fn dispatch(&mut self, _ctx: &mut SyncWorkflowContext<Self>, _input: ()) -> ShipmentStatus {
        if let Some(next) = self.status.dispatched() {
            self.status = next;
        }
        self.status
    }

    /// Refuses `Deliver` while the shipment has not been dispatched.
    #[update_validator(deliver)]
    fn validate_deliver(&self, _ctx: &WorkflowContextView, _input: &()) -> Refusal {
        match self.status.delivered() {
            Some(_) => Ok(()),
            None => Err(format!(
                "shipment of order {} from {} is {}: it must be dispatched before it is delivered",
                self.request.order_id, self.request.warehouse, self.status
            )
            .into()),
        }
    }

    /// `Deliver`: the courier delivered the shipment. Answers its status.
    #[update(name = handler::DELIVER)]
    pub fn deliver(&mut self, _ctx: &mut SyncWorkflowContext<Self>, _input: ()) -> ShipmentStatus {
        if let Some(next) = self.status.delivered() {
            self.status = next;
        }
        self.status
    }
}
