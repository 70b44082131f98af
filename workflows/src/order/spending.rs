//! The spending limit's step (`spending-limit-v1`): before any charge the
//! order's total is reserved against the customer's limit
//! (`ReserveSpending`, one transaction that decides racing orders one after
//! the other); an order over it stops with `SPENDING_LIMIT_EXCEEDED`. The
//! reservation is given back by `ReleaseSpending` when the order fails
//! later, and kept when it is confirmed (it counts towards the limit).

use ordersaga_domain::contracts::SpendingContract;
use ordersaga_domain::{Compensation, OrderInput, SagaStep};
use temporalio_workflow::WorkflowContext;

use super::options::db_step;
use super::{OrderWorkflow, Stop};

impl OrderWorkflow {
    /// `ReserveSpending`, with `ReleaseSpending` pushed before it: a
    /// reservation whose answer was lost is still released. A refusal
    /// (over the limit, or the order already failed) reserved nothing.
    pub(super) async fn reserve_spending(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        undo: &mut Vec<Compensation>,
    ) -> Result<(), Stop> {
        Self::step(ctx, SagaStep::ReserveSpending);
        undo.push(Compensation::ReleaseSpending);
        let reserved = ctx
            .execute_local_activity(
                SpendingContract::reserve_spending,
                input.order_id,
                db_step("ReserveSpending", Self::db_step_token(ctx)),
            )
            .await;
        if let Err(e) = reserved {
            let stop = Self::classify(ctx, e);
            if let Stop::Business(_) = &stop {
                undo.pop();
            }
            return Err(stop);
        }
        Self::cancelled(ctx)
    }
}
