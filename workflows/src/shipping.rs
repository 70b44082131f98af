//! [`ShippingWorkflow`]: creates one shipping request for a confirmed
//! order, on the `shipping` task queue. Started by the order saga without
//! waiting; the request is idempotent by order id.

use std::time::Duration;

use ordersaga_domain::ShipmentRequest;
use ordersaga_domain::contracts::ShippingContract;
use ordersaga_domain::names::SHIPPING_WORKFLOW_TYPE;
use temporalio_workflow::{
    ActivityCloseTimeouts, ActivityOptions, RetryPolicy, WorkflowContext, WorkflowContextView,
    WorkflowResult, workflow, workflow_methods,
};

#[workflow]
pub struct ShippingWorkflow {
    request: ShipmentRequest,
}

#[workflow_methods]
impl ShippingWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, request: ShipmentRequest) -> Self {
        Self { request }
    }

    /// Hands the request to the warehouse; returns whether this run
    /// created it (false: it already existed).
    #[run(name = SHIPPING_WORKFLOW_TYPE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<bool> {
        let request = ctx.state(|s| s.request.clone());
        let created = ctx
            .execute_activity(
                ShippingContract::request_shipment,
                request,
                // Database writes: an outage is waited out for a day.
                ActivityOptions::with_close_timeouts(
                    ActivityCloseTimeouts::ScheduleAndStartToClose {
                        schedule_to_close: Duration::from_secs(24 * 3600),
                        start_to_close: Duration::from_secs(30),
                    },
                )
                .retry_policy(
                    RetryPolicy::builder()
                        .initial_interval(Duration::from_millis(200))
                        .backoff_coefficient(2.0)
                        .maximum_interval(Duration::from_secs(60))
                        .build(),
                )
                .summary("RequestShipment")
                .build(),
            )
            .await?;
        Ok(created)
    }
}
