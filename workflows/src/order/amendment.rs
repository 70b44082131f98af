//! Partial availability (`partial-availability-v1`, checkout orders):
//! `ProcessInventoryAmendable` holds the lines that can be served and
//! proposes the amended order when others cannot (the worker's policy
//! `ask`; under `fail` it fails like `ProcessInventory`). The order is
//! `ACTION_REQUIRED` in the database, the live view and the `OrderStatus`
//! search attribute, and the saga waits durably for the customer:
//!
//! - `AcceptAmendment`: `RefundAmendment` gives back the missing lines'
//!   amount as part of the capture (once per order), and the saga goes on
//!   to `ConfirmOrder` with the amended lines (the confirmation email and
//!   the shipment carry only those);
//! - `CancelOrder`, or the deadline (the worker's setting, recorded in the
//!   step's result so a replay waits the same): the order fails, and the
//!   usual compensations refund the capture in full and put the held stock
//!   back.
//!
//! Simulated (card-terminal) orders keep the all-or-nothing rule: that
//! gateway has no partial refunds.

use std::time::Duration;

use ordersaga_domain::contracts::{
    AmendableInventoryInput, InventoryProcessed, OrderContract, RefundAmendmentInput,
};
use ordersaga_domain::{Amendment, FailureReason, OrderEvent, OrderInput, OrderStatus, SagaStep};
use temporalio_workflow::{ActivityExecutionError, TimerOptions, TimerResult, WorkflowContext};

use super::options::{db_step, detached, gateway_step};
use super::{ORDER_STATUS_ATTR, OrderWorkflow, Stop};

impl OrderWorkflow {
    /// `ProcessInventoryAmendable`: the deduction, or the proposal of an
    /// amendment.
    pub(super) async fn process_inventory_amendable(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
    ) -> Result<InventoryProcessed, ActivityExecutionError> {
        ctx.execute_local_activity(
            OrderContract::process_inventory_amendable,
            AmendableInventoryInput {
                order: input.clone(),
            },
            db_step("ProcessInventory", Self::db_step_token(ctx)),
        )
        .await
    }

    /// Shows the proposed amendment, waits for the customer's decision
    /// until the deadline, and on acceptance refunds the missing lines.
    /// `Ok` once the amendment is accepted and refunded; a cancel or the
    /// deadline stops the forward path (the compensations registered
    /// before, the refund and the release of the held stock, undo it all).
    pub(super) async fn await_decision(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        amendment: Amendment,
    ) -> Result<(), Stop> {
        Self::step(ctx, SagaStep::AwaitDecision);
        let deadline = Duration::from_secs(amendment.deadline_secs);
        let refund = amendment.refund;
        ctx.state_mut(|s| {
            s.view.status = OrderStatus::ActionRequired;
            s.view.amendment = Some(amendment.clone());
        });
        Self::record(ctx, OrderEvent::OrderAmended);
        ctx.upsert_search_attributes([
            ORDER_STATUS_ATTR.value_set(OrderStatus::ActionRequired.to_string())
        ]);
        // A cancel accepted while the stock was being processed.
        Self::cancelled(ctx)?;
        let timer = TimerOptions::builder(deadline)
            .summary("amendment deadline".to_string())
            .build();
        let decided = temporalio_workflow::workflows::select! {
            r = ctx.wait_condition(|s: &Self| s.accepted || s.cancel_requested.is_some()) => match r {
                Ok(()) => true,
                Err(_) => return Err(Self::workflow_cancelled(ctx)),
            },
            r = ctx.timer(timer) => match r {
                TimerResult::Fired => false,
                TimerResult::Cancelled => return Err(Self::workflow_cancelled(ctx)),
            },
        };
        // A cancel wins over an acceptance taken in the same task.
        Self::cancelled(ctx)?;
        if !decided {
            return Err(Stop::Business(FailureReason::AmendmentExpired {
                after_secs: deadline.as_secs(),
            }));
        }
        Self::step(ctx, SagaStep::RefundMissing);
        let Some(gateway_order_id) = ctx.state(|s| s.gateway_order.clone()) else {
            // Only checkout orders are amended, and they have one by now.
            return Err(Stop::Business(FailureReason::Internal {
                code: ordersaga_domain::InternalCode::SagaFailed,
                message: "an amended order without a gateway order".to_string(),
            }));
        };
        // Detached: once accepted, the refund runs to its end even if the
        // workflow is cancelled meanwhile (the compensation then refunds
        // what is left of the capture).
        ctx.execute_activity(
            OrderContract::refund_amendment,
            RefundAmendmentInput {
                order_id: input.order_id,
                transaction_id: input.transaction_id,
                gateway_order_id,
                amount: refund,
            },
            gateway_step("RefundAmendment", detached()),
        )
        .await
        .map_err(|e| Self::classify(ctx, e))?;
        Self::record(ctx, OrderEvent::AmendmentAccepted);
        Self::record(ctx, OrderEvent::PaymentPartiallyRefunded);
        Self::record(ctx, OrderEvent::InventoryProcessed);
        Self::cancelled(ctx)
    }

    /// The order as it ships: amended once the customer accepted.
    pub(super) fn as_agreed(ctx: &WorkflowContext<Self>, input: &OrderInput) -> OrderInput {
        ctx.state(|s| match (&s.view.amendment, s.accepted) {
            (Some(amendment), true) => input.amended(amendment),
            _ => input.clone(),
        })
    }
}
