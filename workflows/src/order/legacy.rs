//! The saga's `notifications-v1` generation: sagas started before the
//! outbox start a [`NotificationWorkflow`] per email and a
//! [`ShippingWorkflow`] as abandoned children instead of committing the
//! messages with their steps. Kept so those histories replay; new sagas
//! (`outbox-v1`) and the oldest (no patch) start nothing here.

use ordersaga_domain::names::{NOTIFICATIONS_TASK_QUEUE, SHIPPING_TASK_QUEUE};
use ordersaga_domain::{Notification, ShipmentRequest};
use temporalio_workflow::{
    ChildWorkflowOptions, ChildWorkflowStartError, ParentClosePolicy, WorkflowCancellationToken,
    WorkflowContext, WorkflowIdReusePolicy, WorkflowResult,
};

use super::{Generation, OrderWorkflow};
use crate::{NotificationWorkflow, ShippingWorkflow};

impl OrderWorkflow {
    /// Child-workflow generation only: starts the email's delivery on the
    /// `notifications` task queue and returns once it has started, not once
    /// it is sent.
    pub(super) async fn notify_by_child(
        ctx: &mut WorkflowContext<Self>,
        email: Option<Notification>,
    ) -> WorkflowResult<()> {
        if ctx.state(|s| s.generation) != Generation::ChildWorkflows {
            return Ok(());
        }
        let Some(email) = email else { return Ok(()) };
        let summary = format!("{} email for order {}", email.stage(), email.subject_id());
        let options = fire_and_forget(email.workflow_id(), NOTIFICATIONS_TASK_QUEUE, summary);
        let started = ctx
            .start_child_workflow(NotificationWorkflow::run, email, options)
            .await;
        started_once(started.map(|_| ()))
    }

    /// Child-workflow generation only: starts the shipping request on the
    /// `shipping` task queue, without waiting for the warehouse.
    pub(super) async fn ship_by_child(
        ctx: &mut WorkflowContext<Self>,
        request: Option<ShipmentRequest>,
    ) -> WorkflowResult<()> {
        if ctx.state(|s| s.generation) != Generation::ChildWorkflows {
            return Ok(());
        }
        let Some(request) = request else {
            return Ok(());
        };
        let summary = format!("Shipping request for order {}", request.order_id);
        let options = fire_and_forget(request.workflow_id(), SHIPPING_TASK_QUEUE, summary);
        let started = ctx
            .start_child_workflow(ShippingWorkflow::run, request, options)
            .await;
        started_once(started.map(|_| ()))
    }
}

/// A child that outlives the saga (`Abandon`), ignores the saga's
/// cancellation (a cancelled order still gets its email), and whose id is
/// never reused (one email per stage, one request per order).
fn fire_and_forget(workflow_id: String, task_queue: &str, summary: String) -> ChildWorkflowOptions {
    ChildWorkflowOptions::builder()
        .workflow_id(workflow_id)
        .task_queue(task_queue.to_string())
        .parent_close_policy(ParentClosePolicy::Abandon)
        .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
        .cancellation_token(WorkflowCancellationToken::new())
        .static_summary(summary)
        .build()
}

/// A refused start is done, not an error: within one namespace the only
/// cause is that the id exists, i.e. an earlier run of this saga already
/// started the child (and the order must not fail over an email). Only a
/// payload that does not serialize (a bug) stops the saga.
fn started_once(result: Result<(), ChildWorkflowStartError>) -> WorkflowResult<()> {
    match result {
        Ok(()) | Err(ChildWorkflowStartError::StartFailed { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
