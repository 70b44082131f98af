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
//!
//! Since `shipment-on-dispatch-v1` the workflow starts with the courier's
//! `Dispatch` (update-with-start from the API): until then a shipment is
//! its row in the shop database, stored by the shipping relay, which also
//! flags it when the courier is late. So a confirmed order starts no
//! second workflow, and the workflow neither stores the request nor times
//! the wait: it records the dispatch, waits for the delivery and records
//! it. A workflow an older relay started at confirmation takes the same
//! path when it runs on this build (the relay had stored the request).
//!
//! Since `shipment-local-steps-v1` the four store writes are local
//! activities: each is one short idempotent transaction in the shop
//! database, so it needs neither an activity task nor a workflow task of
//! its own. The request and the overdue timer go out in the first workflow
//! task, and each courier's update is accepted in the same workflow task
//! whose completion records its write: a worker lost before that loses
//! both, and the update is delivered again with the retried task.

use std::time::Duration;

use ordersaga_domain::contracts::ShippingContract;
use ordersaga_domain::names::{
    SHIPMENT_LIFECYCLE_PATCH, SHIPMENT_LOCAL_STEPS_PATCH, SHIPMENT_ON_DISPATCH_PATCH,
    SHIPPING_WORKFLOW_TYPE, handler,
};
use ordersaga_domain::{ShipmentRequest, ShipmentStatus};
use temporalio_workflow::common::ActivityDefinition;
use temporalio_workflow::{
    ActivityCloseTimeouts, ActivityExecutionError, ActivityOptions, LocalActivityOptions,
    RetryPolicy, SyncWorkflowContext, TimerOptions, WorkflowContext, WorkflowContextView,
    WorkflowResult, workflow, workflow_methods,
};

#[workflow]
pub struct ShippingWorkflow {
    request: ShipmentRequest,
    /// Where the courier has taken it (accepted updates).
    status: ShipmentStatus,
    /// `shipment-local-steps-v1`: the store writes are local activities.
    local_steps: bool,
}

/// A lifecycle move's store write, for [`ShippingWorkflow::write`].
#[derive(Debug, Clone, Copy)]
enum Write {
    FlagUndispatched,
    Dispatch,
    Delivery,
}

/// How long a store write may take, retries included: an outage is waited
/// out for a day.
const STORE_WAIT: Duration = Duration::from_secs(24 * 3600);

/// One attempt of a store write.
const STORE_ATTEMPT: Duration = Duration::from_secs(30);

fn store_retry() -> RetryPolicy {
    RetryPolicy::builder()
        .initial_interval(Duration::from_millis(200))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(60))
        .build()
}

/// The shipping service's database writes as regular activities (before
/// `shipment-local-steps-v1`).
fn store_step(summary: &str) -> ActivityOptions {
    ActivityOptions::with_close_timeouts(ActivityCloseTimeouts::ScheduleAndStartToClose {
        schedule_to_close: STORE_WAIT,
        start_to_close: STORE_ATTEMPT,
    })
    .retry_policy(store_retry())
    .summary(summary)
    .build()
}

/// The same writes as local activities (`shipment-local-steps-v1`), with
/// the same timeouts and retries.
fn local_store_step(summary: &str) -> LocalActivityOptions {
    LocalActivityOptions::builder()
        .schedule_to_close_timeout(STORE_WAIT)
        .start_to_close_timeout(STORE_ATTEMPT)
        .retry_policy(store_retry())
        .summary(summary.to_string())
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
            local_steps: false,
        }
    }

    /// Hands the request to the warehouse (before
    /// `shipment-on-dispatch-v1`), then (`shipment-lifecycle-v1`) follows
    /// the shipment until it is delivered. Returns whether this run created
    /// the request (false: it already existed, or the relay stored it).
    #[run(name = SHIPPING_WORKFLOW_TYPE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<bool> {
        let request = ctx.state(|s| s.request.clone());
        // Each patch implies the ones before it: a workflow records one
        // patch marker, not three.
        let on_dispatch = ctx.patched(SHIPMENT_ON_DISPATCH_PATCH);
        let local_steps = on_dispatch || ctx.patched(SHIPMENT_LOCAL_STEPS_PATCH);
        let lifecycle = local_steps || ctx.patched(SHIPMENT_LIFECYCLE_PATCH);
        ctx.state_mut(|s| s.local_steps = local_steps);
        let created = if on_dispatch {
            false
        } else {
            Self::store(
                ctx,
                ShippingContract::request_shipment,
                "RequestShipment",
                &request,
            )
            .await?
        };
        if !lifecycle {
            return Ok(created);
        }
        let dispatched = |s: &Self| s.status != ShipmentStatus::Requested;
        if let Some(secs) = request.dispatch_alert_secs.filter(|_| !on_dispatch) {
            let timer = TimerOptions::builder(Duration::from_secs(secs))
                .summary("dispatch-alert".to_string())
                .build();
            let overdue = temporalio_workflow::workflows::select! {
                _ = ctx.wait_condition(dispatched) => false,
                _ = ctx.timer(timer) => true,
            };
            if overdue && !ctx.state(dispatched) {
                Self::write(ctx, Write::FlagUndispatched, &request).await?;
            }
        }
        ctx.wait_condition(dispatched).await?;
        Self::write(ctx, Write::Dispatch, &request).await?;
        ctx.wait_condition(|s: &Self| s.status == ShipmentStatus::Delivered)
            .await?;
        Self::write(ctx, Write::Delivery, &request).await?;
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

impl ShippingWorkflow {
    /// Records one of the lifecycle's moves in the store.
    async fn write(
        ctx: &mut WorkflowContext<Self>,
        write: Write,
        request: &ShipmentRequest,
    ) -> Result<bool, ActivityExecutionError> {
        match write {
            Write::FlagUndispatched => {
                Self::store(
                    ctx,
                    ShippingContract::flag_undispatched,
                    "FlagUndispatched",
                    request,
                )
                .await
            }
            Write::Dispatch => {
                Self::store(
                    ctx,
                    ShippingContract::record_dispatch,
                    "RecordDispatch",
                    request,
                )
                .await
            }
            Write::Delivery => {
                Self::store(
                    ctx,
                    ShippingContract::record_delivery,
                    "RecordDelivery",
                    request,
                )
                .await
            }
        }
    }

    /// One store write: a local activity under `shipment-local-steps-v1`,
    /// a regular one before.
    async fn store<AD>(
        ctx: &mut WorkflowContext<Self>,
        activity: AD,
        summary: &str,
        request: &ShipmentRequest,
    ) -> Result<AD::Output, ActivityExecutionError>
    where
        AD: ActivityDefinition<Input = ShipmentRequest>,
    {
        if ctx.state(|s| s.local_steps) {
            ctx.execute_local_activity(activity, request.clone(), local_store_step(summary))
                .await
        } else {
            ctx.execute_activity(activity, request.clone(), store_step(summary))
                .await
        }
    }
}
