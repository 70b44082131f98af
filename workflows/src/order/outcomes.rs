//! How a stopped saga ends, and how it completes without a late signal
//! re-running its last database steps:
//!
//! - an accepted `CancelOrder` wins over the business outcome of the step
//!   it interrupted (a charge then declined ends `CANCELLED`, as the API
//!   promised when it answered 200);
//! - a saga that stops on a fault it has no outcome for records the order
//!   `FAILED` (`INTERNAL_ERROR`, compensated, the customer told) before the
//!   workflow fails for an operator, so no order is left `PENDING`;
//! - a checkout saga ends the workflow task of its last database step
//!   before completing (webhooks keep arriving as it completes).
//!
//! Each is guarded by its patch ([`Patches`]); sagas recorded before them
//! replay what they did.

use std::time::Duration;

use ordersaga_domain::{FailureReason, InternalCode, PaymentMode};
use temporalio_workflow::{TimerOptions, WorkflowContext, WorkflowResult, WorkflowTermination};

use super::{OrderWorkflow, Stop};

/// The patches of this module and of the checkout wait, decided once
/// before the first command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Patches {
    /// `gateway-outcomes-v1`: every gateway answer has a business outcome
    /// (see [`ordersaga_domain::names::GATEWAY_OUTCOMES_PATCH`]).
    pub gateway_outcomes: bool,
    /// `checkout-deadline-v1`: the approval wait on the workflow clock.
    pub checkout_deadline: bool,
    /// `quiet-completion-v1`: [`OrderWorkflow::quiet_completion`].
    pub quiet_completion: bool,
}

impl OrderWorkflow {
    /// An accepted `CancelOrder` wins over a business outcome found after
    /// it (a declined charge or capture, a refused gateway call, missing
    /// stock): the customer was told the order is being cancelled. What
    /// was found stays recorded on the payment and in the events.
    pub(super) fn cancel_wins(ctx: &WorkflowContext<Self>, stop: Stop) -> Stop {
        if !ctx.state(|s| s.later.gateway_outcomes) {
            return stop;
        }
        match (stop, ctx.state(|s| s.cancel_requested.clone())) {
            (Stop::Business(reason), Some(message))
                if !matches!(reason, FailureReason::Cancelled { .. }) =>
            {
                Stop::Business(FailureReason::Cancelled { message })
            }
            (stop, _) => stop,
        }
    }

    /// The reason the order is failed with, and the fault the workflow then
    /// fails with, if it stopped on one. Before `gateway-outcomes-v1` a
    /// fault ended the workflow at once, leaving the order `PENDING`.
    pub(super) fn failure_of(
        ctx: &WorkflowContext<Self>,
        stop: Stop,
    ) -> WorkflowResult<(FailureReason, Option<WorkflowTermination>)> {
        let record = ctx.state(|s| s.later.gateway_outcomes);
        Ok(match stop {
            Stop::Business(reason) => (reason, None),
            Stop::Cancelled(message) => (FailureReason::Cancelled { message }, None),
            Stop::Broken(err) if record => {
                let reason = saga_failed(err.to_string());
                (reason, Some((*err).into()))
            }
            Stop::Terminated(end) if record => (saga_failed(end.to_string()), Some(end)),
            Stop::Broken(err) => return Err((*err).into()),
            Stop::Terminated(end) => return Err(end),
        })
    }

    /// Checkout: ends the workflow task that ran the last database step
    /// (`ConfirmOrder` or `FailOrder`) with a short timer before completing.
    /// The gateway's webhooks for the capture, decline or refund arrive as
    /// the saga finishes; a signal that reaches the server while a task
    /// completes the workflow makes it refuse the completion
    /// (`UnhandledCommand`), and the retried task would run that task's
    /// local activities again. Behind the timer the completing task runs
    /// none, so a refused completion costs only its retry. Simulated
    /// orders get no webhooks and skip it.
    pub(super) async fn quiet_completion(ctx: &mut WorkflowContext<Self>) {
        let checkout = ctx.state(|s| {
            s.later.quiet_completion && matches!(s.input.payment, PaymentMode::Checkout(_))
        });
        if checkout {
            let barrier = TimerOptions::builder(Duration::from_millis(1))
                .summary("settled".to_string())
                .build();
            // Fired or cancelled, the task boundary has been crossed.
            let _ = ctx.timer(barrier).await;
        }
    }
}

/// The internal failure of a saga that stopped on a fault.
fn saga_failed(what: String) -> FailureReason {
    FailureReason::Internal {
        code: InternalCode::SagaFailed,
        message: format!("the saga stopped: {what}"),
    }
}
