//! Undoing the saga: the [`Compensation`]s registered as it advances, run
//! in reverse when it stops (a business failure, a cancellation or a bug).

use ordersaga_domain::contracts::{
    GatewayPaymentInput, OrderContract, PaymentInput, SettleInput, Settlement,
};
use ordersaga_domain::{OrderEvent, OrderInput, PaymentMode, PaymentStatus, SagaStep};
use temporalio_workflow::common::error::ApplicationFailure;
use temporalio_workflow::{WorkflowContext, WorkflowResult};

use super::OrderWorkflow;
use super::options::{db_step, detached, gateway_step};

/// Undo actions registered as the saga advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compensation {
    /// A charge or capture may have taken money: give it back.
    RefundPayment,
    /// Stock was deducted: put it back.
    ReleaseInventory,
    /// Checkout: the gateway order exists but is not captured; make sure it
    /// never will be.
    VoidPayment,
}

impl OrderWorkflow {
    /// Runs the registered compensations in reverse. They ignore the
    /// workflow's cancellation (detached token): a cancelled order must
    /// still be refunded. `why` is recorded on a voided payment. Returns
    /// whether money was refunded.
    pub(super) async fn compensate(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        undo: &[Compensation],
        why: &str,
    ) -> WorkflowResult<bool> {
        let mut refunded = false;
        if !undo.is_empty() {
            Self::step(ctx, SagaStep::Compensating);
        }
        for c in undo.iter().rev() {
            match c {
                Compensation::ReleaseInventory => {
                    let released = ctx
                        .execute_local_activity(
                            OrderContract::release_inventory,
                            input.order_id,
                            db_step("ReleaseInventory", detached()),
                        )
                        .await?;
                    if released {
                        Self::record(ctx, OrderEvent::InventoryReleased);
                    }
                }
                Compensation::VoidPayment => {
                    let gateway = Self::gateway_payment(ctx, input)?;
                    ctx.execute_activity(
                        OrderContract::void_payment,
                        gateway,
                        gateway_step("VoidPayment", detached()),
                    )
                    .await?;
                    // Voided first, then recorded: the payment never shows
                    // VOIDED while the buyer could still approve it.
                    ctx.execute_local_activity(
                        OrderContract::settle_payment,
                        SettleInput {
                            order_id: input.order_id,
                            settlement: Settlement::Voided {
                                reason: why.to_string(),
                            },
                        },
                        db_step("SettlePayment", detached()),
                    )
                    .await?;
                    Self::set_payment(ctx, PaymentStatus::Voided);
                    Self::record(ctx, OrderEvent::PaymentProcessFailed);
                }
                Compensation::RefundPayment if input.payment != PaymentMode::Simulated => {
                    let gateway = Self::gateway_payment(ctx, input)?;
                    refunded = ctx
                        .execute_activity(
                            OrderContract::refund_checkout,
                            gateway,
                            gateway_step("RefundPayment", detached()),
                        )
                        .await?;
                    if refunded {
                        Self::set_payment(ctx, PaymentStatus::Refunded);
                        Self::record(ctx, OrderEvent::PaymentRefunded);
                    }
                }
                Compensation::RefundPayment => {
                    let payment = PaymentInput {
                        order_id: input.order_id,
                        transaction_id: input.transaction_id,
                        amount: input.total,
                    };
                    refunded = ctx
                        .execute_activity(
                            OrderContract::refund_payment,
                            payment,
                            gateway_step("RefundPayment", detached()),
                        )
                        .await?;
                    if refunded {
                        Self::set_payment(ctx, PaymentStatus::Refunded);
                        Self::record(ctx, OrderEvent::PaymentRefunded);
                    }
                }
            }
        }
        Ok(refunded)
    }

    /// The checkout payment's gateway order, for its compensations.
    fn gateway_payment(
        ctx: &WorkflowContext<Self>,
        input: &OrderInput,
    ) -> WorkflowResult<GatewayPaymentInput> {
        let gateway_order_id = ctx.state(|s| s.gateway_order.clone()).ok_or_else(|| {
            ApplicationFailure::non_retryable("checkout compensation without a gateway order")
        })?;
        Ok(GatewayPaymentInput {
            order_id: input.order_id,
            transaction_id: input.transaction_id,
            gateway_order_id,
        })
    }
}
