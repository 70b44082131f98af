//! Undoing the saga: the [`Compensation`]s registered as it advances, run
//! when it stops (a business failure, a cancellation or a bug).
//!
//! Under `compensation-parking-v1` a compensation never stops the
//! unwinding: its steps retry transient faults without end, and one the
//! other side refuses for good (the gateway answers a refund with a 4xx) is
//! *parked* ([`Parked`], recorded by `ParkCompensation`, the payment
//! `REFUND_FAILED`) while the others still run; money is settled before
//! stock is put back. The saga then fails the order and waits for an
//! operator ([`super::attention`]). Older sagas replay as they ran: in
//! reverse, and the first refusal ends the workflow.

use ordersaga_domain::contracts::{
    AttentionContract, GatewayPaymentInput, OrderContract, ParkInput, PaymentInput, SettleInput,
    Settlement, SpendingContract,
};
use ordersaga_domain::{OrderEvent, OrderInput, PaymentMode, PaymentStatus, SagaStep};
use temporalio_workflow::common::error::ApplicationFailure;
use temporalio_workflow::{
    ActivityExecutionError, WorkflowContext, WorkflowResult, WorkflowTermination,
};

pub(super) use ordersaga_domain::Compensation;

use super::OrderWorkflow;
use super::options::{detached, gateway_step, undo_db_step};

/// A compensation waiting for an operator, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Parked {
    /// What could not be undone.
    pub compensation: Compensation,
    /// The refusal, in the refusing side's words.
    pub reason: String,
}

/// What unwinding did.
#[derive(Debug, Default)]
pub(super) struct Unwound {
    /// Money was given back.
    pub refunded: bool,
    /// Compensations refused for good (only under `compensation-parking-v1`).
    pub parked: Vec<Parked>,
}

/// Why one compensation did not finish.
pub(super) enum Refused {
    /// Its step failed for good (retries do not end on anything else).
    Step(Box<ActivityExecutionError>),
    /// A checkout compensation without a gateway order (a bug).
    NoGatewayOrder,
}

impl Refused {
    fn step(err: ActivityExecutionError) -> Self {
        Self::Step(Box::new(err))
    }

    /// The refusal in words: the step's own failure message (a regular
    /// activity wraps it in an activity failure, a local one does not).
    fn reason(&self) -> String {
        match self {
            Self::Step(err) => err
                .reason()
                .map(|cause| cause.failure().message.clone())
                .or_else(|| err.failure().map(|f| f.message.clone()))
                .unwrap_or_else(|| err.to_string()),
            Self::NoGatewayOrder => "checkout compensation without a gateway order".to_string(),
        }
    }

    /// How sagas before `compensation-parking-v1` ended on it.
    fn into_termination(self) -> WorkflowTermination {
        match self {
            Self::Step(err) => (*err).into(),
            Self::NoGatewayOrder => {
                ApplicationFailure::non_retryable("checkout compensation without a gateway order")
                    .into()
            }
        }
    }
}

impl OrderWorkflow {
    /// Runs the registered compensations: in reverse, money first under
    /// `compensation-parking-v1`. They ignore the workflow's cancellation
    /// (detached token): a cancelled order must still be refunded. `why`
    /// is recorded on a voided payment.
    pub(super) async fn compensate(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        undo: &[Compensation],
        why: &str,
    ) -> WorkflowResult<Unwound> {
        let parking = ctx.state(|s| s.parking);
        let mut order: Vec<Compensation> = undo.iter().rev().copied().collect();
        if parking {
            // Stable: refund or void first, then the stock, each class in
            // reverse. Stock must never come back while the money stays.
            order.sort_by_key(|c| !c.settles_money());
        }
        if !order.is_empty() {
            Self::step(ctx, SagaStep::Compensating);
        }
        let mut unwound = Unwound::default();
        for c in order {
            match Self::undo(ctx, input, c, why, parking).await {
                Ok(refunded) => unwound.refunded |= refunded,
                Err(refused) if parking => {
                    let parked = Self::park(ctx, input, c, &refused).await?;
                    unwound.parked.push(parked);
                }
                Err(refused) => return Err(refused.into_termination()),
            }
        }
        Ok(unwound)
    }

    /// Runs one compensation (also an operator's retry of a parked one).
    /// Returns whether money was given back.
    pub(super) async fn undo(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        c: Compensation,
        why: &str,
        parking: bool,
    ) -> Result<bool, Refused> {
        let refunded = match c {
            Compensation::ReleaseInventory => {
                let released = ctx
                    .execute_local_activity(
                        OrderContract::release_inventory,
                        input.order_id,
                        undo_db_step("ReleaseInventory", parking),
                    )
                    .await
                    .map_err(Refused::step)?;
                if released {
                    Self::record(ctx, OrderEvent::InventoryReleased);
                }
                false
            }
            Compensation::ReleaseSpending => {
                ctx.execute_local_activity(
                    SpendingContract::release_spending,
                    input.order_id,
                    undo_db_step("ReleaseSpending", parking),
                )
                .await
                .map_err(Refused::step)?;
                false
            }
            Compensation::VoidPayment => {
                let gateway = Self::gateway_payment(ctx, input)?;
                ctx.execute_activity(
                    OrderContract::void_payment,
                    gateway,
                    gateway_step("VoidPayment", detached()),
                )
                .await
                .map_err(Refused::step)?;
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
                    undo_db_step("SettlePayment", parking),
                )
                .await
                .map_err(Refused::step)?;
                Self::set_payment(ctx, PaymentStatus::Voided);
                Self::record(ctx, OrderEvent::PaymentProcessFailed);
                false
            }
            Compensation::RefundPayment if input.payment != PaymentMode::Simulated => {
                let gateway = Self::gateway_payment(ctx, input)?;
                ctx.execute_activity(
                    OrderContract::refund_checkout,
                    gateway,
                    gateway_step("RefundPayment", detached()),
                )
                .await
                .map_err(Refused::step)?
            }
            Compensation::RefundPayment => {
                let payment = PaymentInput {
                    order_id: input.order_id,
                    transaction_id: input.transaction_id,
                    amount: input.total,
                };
                ctx.execute_activity(
                    OrderContract::refund_payment,
                    payment,
                    gateway_step("RefundPayment", detached()),
                )
                .await
                .map_err(Refused::step)?
            }
        };
        if refunded {
            Self::set_payment(ctx, PaymentStatus::Refunded);
            Self::record(ctx, OrderEvent::PaymentRefunded);
        }
        Ok(refunded)
    }

    /// Records `c` as refused for good: it needs an operator.
    pub(super) async fn park(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        c: Compensation,
        refused: &Refused,
    ) -> WorkflowResult<Parked> {
        let reason = refused.reason();
        ctx.execute_local_activity(
            AttentionContract::park_compensation,
            ParkInput {
                order_id: input.order_id,
                compensation: c,
                reason: reason.clone(),
            },
            undo_db_step("ParkCompensation", true),
        )
        .await?;
        if c == Compensation::RefundPayment {
            Self::set_payment(ctx, PaymentStatus::RefundFailed);
            Self::record(ctx, OrderEvent::PaymentRefundFailed);
        }
        Ok(Parked {
            compensation: c,
            reason,
        })
    }

    /// The checkout payment's gateway order, for its compensations.
    fn gateway_payment(
        ctx: &WorkflowContext<Self>,
        input: &OrderInput,
    ) -> Result<GatewayPaymentInput, Refused> {
        let gateway_order_id = ctx
            .state(|s| s.gateway_order.clone())
            .ok_or(Refused::NoGatewayOrder)?;
        Ok(GatewayPaymentInput {
            order_id: input.order_id,
            transaction_id: input.transaction_id,
            gateway_order_id,
        })
    }
}
