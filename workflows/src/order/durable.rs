//! Acting on an update only once its acceptance is durable. An update is
//! accepted inside a workflow task, and its acceptance is in the history
//! only once that task's completion is persisted; effects committed in the
//! same task by local activities would outlive a lost completion. So the
//! saga first crosses a task boundary with a short timer.

use std::time::Duration;

use temporalio_workflow::{TimerOptions, WorkflowCancellationToken, WorkflowContext};

use super::OrderWorkflow;

impl OrderWorkflow {
    /// Acting on it in the same task is a bet: if the completion is lost
    /// (server restart, worker killed), the retried task replays without
    /// the cancel and takes the forward path, while the compensations and
    /// `FailOrder` the first run executed as local activities stay
    /// committed (issue 11, defect 0). So the cancel branch first ends the
    /// task with a short timer: the timer fires only after the completion
    /// carrying the acceptance was persisted, and only then does anything
    /// with a lasting effect run. A timer rather than another command
    /// because it is the cheapest command that forces a new task and costs
    /// the customer a few milliseconds. Histories recorded before
    /// `durable-cancel-v1` replay without it.
    pub(super) async fn cancel_made_durable(ctx: &mut WorkflowContext<Self>) {
        let from_update = ctx.state(|s| s.durable_cancel && s.cancel_requested.is_some());
        if from_update {
            let barrier = TimerOptions::builder(Duration::from_millis(1))
                .summary("cancel accepted".to_string())
                .build();
            // Fired or cancelled, the task boundary has been crossed.
            let _ = ctx.timer(barrier).await;
        }
    }

    /// The same boundary after an operator's update, on a detached token:
    /// a workflow asked to cancel still waits for it.
    pub(super) async fn made_durable(ctx: &mut WorkflowContext<Self>, summary: &str) {
        let barrier = TimerOptions::builder(Duration::from_millis(1))
            .summary(summary.to_string())
            .cancellation_token(WorkflowCancellationToken::new())
            .build();
        let _ = ctx.timer(barrier).await;
    }
}
