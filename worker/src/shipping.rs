//! How the shipping relay starts a shipment's life: [`TemporalShipments`]
//! starts the shipment's `ShippingWorkflow` on the shipping queue with the
//! worker's client, once per shipment (its workflow id; an existing or
//! ended one counts as started).

use futures::FutureExt;
use futures::future::BoxFuture;
use ordersaga_activities::ShipmentStarter;
use ordersaga_domain::ShipmentRequest;
use ordersaga_domain::names::SHIPPING_TASK_QUEUE;
use ordersaga_workflows::ShippingWorkflow;
use temporalio_client::errors::WorkflowStartError;
use temporalio_client::{
    Client, WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowStartOptions,
};

/// Starts shipments' workflows through a Temporal client.
pub(crate) struct TemporalShipments {
    client: Client,
}

impl TemporalShipments {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }
}

impl ShipmentStarter for TemporalShipments {
    fn start(&self, request: ShipmentRequest) -> BoxFuture<'static, Result<(), String>> {
        let client = self.client.clone();
        async move {
            let options = WorkflowStartOptions::new(SHIPPING_TASK_QUEUE, request.workflow_id())
                // One life per shipment: a retried message attaches to it,
                // and one that ended (delivered) is not started again.
                .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
                .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
                // No personal data: the summary is not encrypted.
                .static_summary(format!(
                    "Shipment of order {} from {}",
                    request.order_id, request.warehouse
                ))
                .build();
            match client
                .start_workflow(ShippingWorkflow::run, request, options)
                .await
            {
                Ok(_) | Err(WorkflowStartError::AlreadyStarted { .. }) => Ok(()),
                Err(e) => Err(format!("starting the shipment's workflow: {e}")),
            }
        }
        .boxed()
    }
}
