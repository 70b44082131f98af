//! Waiting for an operator (`compensation-parking-v1`): once the order has
//! failed with a compensation parked, the saga stays open, `NeedsAttention`,
//! until an operator retries the parked compensations (`RetryCompensation`:
//! one refused again is parked again) or closes them with a recorded reason
//! (`CloseAttention`). The wait ignores a Temporal cancel (the money is
//! still out); the order is listed as needing attention all along.

use std::error::Error;

use ordersaga_domain::contracts::{AttentionContract, Resolution, ResolveInput};
use ordersaga_domain::{OperatorNote, OrderInput, OrderStatus, SagaStep};
use temporalio_workflow::{
    WaitConditionOptions, WorkflowCancellationToken, WorkflowContext, WorkflowResult,
};

use super::OrderWorkflow;
use super::compensation::Parked;
use super::options::undo_db_step;

/// What an operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OperatorAction {
    /// Run the parked compensations again.
    Retry(OperatorNote),
    /// Close them: nothing more for the saga to do.
    Close(OperatorNote),
}

impl OrderWorkflow {
    /// Refuses an operator action unless a compensation waits for one.
    pub(super) fn awaiting_operator(&self) -> Result<(), Box<dyn Error + Send + Sync>> {
        if self.parked.is_empty() || self.operator.is_some() {
            return Err(format!(
                "order {} has no compensation waiting for an operator (step {})",
                self.view.order_id, self.step
            )
            .into());
        }
        Ok(())
    }

    /// Waits for operators until no compensation is parked. Returns whether
    /// an operator's retry gave money back.
    pub(super) async fn attend(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        mut parked: Vec<Parked>,
        why: &str,
    ) -> WorkflowResult<bool> {
        if parked.is_empty() {
            return Ok(false);
        }
        let mut refunded = false;
        while !parked.is_empty() {
            let waiting: Vec<String> = parked
                .iter()
                .map(|p| format!("{}: {}", p.compensation, p.reason))
                .collect();
            ctx.state_mut(|s| {
                s.parked = parked.clone();
                s.set_step(SagaStep::NeedsAttention);
            });
            ctx.set_current_details(format!("needs attention: {}", waiting.join("; ")));
            // Detached: only an operator (or a terminate) ends the wait.
            let forever = WaitConditionOptions::builder()
                .cancellation_token(WorkflowCancellationToken::new())
                .build();
            let _ = ctx
                .wait_condition_with_options(|s: &Self| s.operator.is_some(), forever)
                .await;
            let action = ctx.state_mut(|s| {
                s.parked.clear();
                s.operator.take()
            });
            Self::made_durable(ctx, "operator action accepted").await;
            match action {
                Some(OperatorAction::Retry(_)) => {
                    let mut still = Vec::new();
                    for p in parked {
                        match Self::undo(ctx, input, p.compensation, why, true).await {
                            Ok(gave_back) => {
                                refunded |= gave_back;
                                let done = Resolution::Completed {
                                    compensation: p.compensation,
                                };
                                Self::resolve(ctx, input, done).await?;
                            }
                            Err(refused) => {
                                still.push(Self::park(ctx, input, p.compensation, &refused).await?);
                            }
                        }
                    }
                    parked = still;
                }
                Some(OperatorAction::Close(note)) => {
                    Self::resolve(ctx, input, Resolution::Closed { note }).await?;
                    parked = Vec::new();
                }
                None => {}
            }
        }
        ctx.state_mut(|s| s.set_step(SagaStep::Done));
        ctx.set_current_details(format!("status: {}", OrderStatus::Failed));
        Ok(refunded)
    }

    async fn resolve(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        resolution: Resolution,
    ) -> WorkflowResult<()> {
        ctx.execute_local_activity(
            AttentionContract::resolve_attention,
            ResolveInput {
                order_id: input.order_id,
                resolution,
            },
            undo_db_step("ResolveAttention", true),
        )
        .await?;
        Ok(())
    }
}
