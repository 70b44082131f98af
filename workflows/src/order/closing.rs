//! The saga's last steps: `ConfirmOrder` (the point of no return, with the
//! confirmed email and the shipping request) or `FailOrder` (with the
//! failed email), and the end they leave in the live view, the events and
//! the `OrderStatus` search attribute; and before unwinding, the question
//! to the database whether the order is confirmed already.

use ordersaga_domain::contracts::{ConfirmOrderInput, FailOrderInput, OrderContract};
use ordersaga_domain::{
    FailureReason, OrderEvent, OrderInput, OrderOutcome, OrderStatus, Outgoing, SagaStep,
};
use temporalio_workflow::{WorkflowContext, WorkflowResult};

use super::compensation::Compensation;
use super::failures::already_failed;
use super::options::{db_step, detached, undo_db_step};
use super::{ORDER_STATUS_ATTR, OrderWorkflow, PAYMENT_STATUS_ATTR, Stop};

impl OrderWorkflow {
    /// Before unwinding, asks the database (the arbiter) where the order
    /// stands. A workflow task that committed `ConfirmOrder` can be lost
    /// (the server refuses its completion, the worker dies); the retried
    /// task may then take a `CancelOrder` that arrived meanwhile, or stop
    /// on anything else. A confirmed order is final: its confirmation
    /// stands (`ConfirmOrder` again, which changes nothing), and nothing is
    /// refunded or released. Only when something was done that a
    /// compensation would undo, since `ConfirmOrder` comes after them all.
    pub(super) async fn confirmation_stands(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        undo: &[Compensation],
        stop: Stop,
    ) -> WorkflowResult<Result<OrderOutcome, Stop>> {
        if !ctx.state(|s| s.confirmation_stands) || undo.is_empty() {
            return Ok(Err(stop));
        }
        let status = ctx
            .execute_local_activity(
                OrderContract::get_order_status,
                input.order_id,
                db_step("GetOrderStatus", detached()),
            )
            .await?;
        if status != OrderStatus::Confirmed {
            return Ok(Err(stop));
        }
        Ok(match Self::confirm(ctx, input).await? {
            Ok(confirmed) => {
                Self::quiet_completion(ctx).await;
                Ok(confirmed)
            }
            // Not reachable (confirmed is final), but if the database says
            // failed after all, it is the arbiter: unwind with its reason.
            Err(reason) => Err(Stop::Business(reason)),
        })
    }

    /// `ConfirmOrder`, or the reason the database gives for refusing it
    /// (the order already failed).
    pub(super) async fn confirm(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
    ) -> WorkflowResult<Result<OrderOutcome, FailureReason>> {
        Self::step(ctx, SagaStep::ConfirmOrder);
        // An accepted amendment ships (and confirms) only what was agreed.
        let agreed = Self::as_agreed(ctx, input);
        let input = &agreed;
        let email = input.confirmed_email();
        let shipment = input.shipment();
        let outgoing = Self::for_outbox(
            ctx,
            email
                .clone()
                .map(Outgoing::Email)
                .into_iter()
                .chain(shipment.clone().map(Outgoing::Shipment)),
        );
        // Paid and stock deducted: the point of no return. A cancellation
        // arriving now must not leave money taken for an unconfirmed order.
        let confirmed = ctx
            .execute_local_activity(
                OrderContract::confirm_order,
                ConfirmOrderInput {
                    order_id: input.order_id,
                    outgoing,
                },
                db_step("ConfirmOrder", detached()),
            )
            .await;
        if let Err(err) = confirmed {
            return match already_failed(&err) {
                Some(reason) => Ok(Err(reason)),
                None => Err(err.into()),
            };
        }
        Self::finish(
            ctx,
            OrderStatus::Confirmed,
            None,
            OrderEvent::OrderConfirmed,
        );
        Self::notify_by_child(ctx, email).await?;
        Self::ship_by_child(ctx, shipment).await?;
        Ok(Ok(OrderOutcome {
            order_id: input.order_id,
            status: OrderStatus::Confirmed,
            reason: None,
            refunded: false,
        }))
    }

    /// `FailOrder`: the order ends `FAILED` with `reason`, its failed email
    /// committed with it.
    pub(super) async fn fail(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        reason: &FailureReason,
        outgoing: Vec<Outgoing>,
    ) -> WorkflowResult<()> {
        Self::step(ctx, SagaStep::FailOrder);
        let lasting = ctx.state(|s| s.parking);
        ctx.execute_local_activity(
            OrderContract::fail_order,
            FailOrderInput {
                order_id: input.order_id,
                reason: reason.clone(),
                outgoing,
            },
            undo_db_step("FailOrder", lasting),
        )
        .await?;
        Self::finish(
            ctx,
            OrderStatus::Failed,
            Some(reason.clone()),
            OrderEvent::OrderFailed,
        );
        Ok(())
    }

    /// The order's end in the live view, its events and the `OrderStatus`
    /// search attribute.
    pub(super) fn finish(
        ctx: &mut WorkflowContext<Self>,
        status: OrderStatus,
        reason: Option<FailureReason>,
        event: OrderEvent,
    ) {
        ctx.state_mut(|s| {
            s.view.status = status;
            s.view.reason = reason;
            s.set_step(SagaStep::Done);
        });
        Self::record(ctx, event);
        ctx.set_current_details(format!("status: {status}"));
        // `local-charge-v1`: the payment's status decided on the way comes
        // along, one upsert for both (each upsert is a billable Action and
        // a visibility write).
        let payment = ctx.state_mut(|s| {
            s.ended = true;
            s.payment_attribute_due.take()
        });
        let order = ORDER_STATUS_ATTR.value_set(status.to_string());
        match payment {
            Some(payment) => ctx.upsert_search_attributes([
                order,
                PAYMENT_STATUS_ATTR.value_set(payment.to_string()),
            ]),
            None => ctx.upsert_search_attributes([order]),
        }
    }
}
