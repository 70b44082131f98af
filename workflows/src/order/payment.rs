//! The payment step, in the order's [`PaymentMode`]: one synchronous charge
//! through the simulated gateway, or a PayPal-style checkout (create the
//! gateway order, publish the buyer's approval link, wait durably for the
//! approval, capture).
//!
//! [`PaymentMode`]: ordersaga_domain::PaymentMode

use std::time::Duration;

use ordersaga_domain::contracts::{
    CaptureOutcome, CheckoutInput, CheckoutStatus, GatewayPaymentInput, OpenPaymentInput,
    OrderContract, PaymentInput, SettleInput, Settlement,
};
use ordersaga_domain::{
    CheckoutTiming, FailureReason, GatewayEventKind, OrderEvent, OrderId, OrderInput, Outgoing,
    PaymentStatus, SagaStep,
};
use temporalio_workflow::{TimerOptions, TimerResult, WorkflowContext};

use super::compensation::Compensation;
use super::failures::already_failed;
use super::options::{charge_step, db_step, detached, gateway_step, within};
use super::{OrderWorkflow, Stop};

/// How long the poll at the deadline may take, retries included, when the
/// gateway does not answer: the wait ends this long after the deadline at
/// the latest.
const LAST_POLL_WINDOW: Duration = Duration::from_secs(10);

/// How the wait for the buyer's approval ended.
enum Approval {
    /// Approved (or already captured): capture.
    Approved,
    /// The buyer cancelled on the approval page.
    Voided,
    /// The deadline passed.
    Expired,
    /// `CancelOrder` arrived.
    CancelRequested(String),
}

impl OrderWorkflow {
    /// Simulated mode: one synchronous charge.
    pub(super) async fn charge(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        undo: &mut Vec<Compensation>,
    ) -> Result<(), Stop> {
        let payment = PaymentInput {
            order_id: input.order_id,
            transaction_id: input.transaction_id,
            amount: input.total,
        };
        // Registered before the charge: a cancellation while it is in flight
        // must still give back whatever it captured.
        undo.push(Compensation::RefundPayment);
        let local = ctx.state(|s| s.local_charge);
        let paid = if local {
            // `local-charge-v1`: no activity task and no workflow task of
            // its own. Detached: a cancel lets the charge end, so the refund
            // never runs before the capture it must undo.
            ctx.execute_local_activity(
                OrderContract::process_payment,
                payment,
                charge_step("ProcessPayment"),
            )
            .await
        } else {
            ctx.execute_activity(
                OrderContract::process_payment,
                payment,
                gateway_step("ProcessPayment", None),
            )
            .await
        };
        if let Err(e) = paid {
            let refused = already_failed(&e).is_some();
            let stop = Self::classify(ctx, e);
            if local && refused {
                // The order failed behind the saga's back. A lost earlier
                // attempt of this workflow task may have charged already:
                // the refund stays registered ([`Self::lost_task`]).
                return Err(stop);
            }
            if let Stop::Business(reason) = &stop {
                // Declined, or refused because the order already failed:
                // nothing was captured, nothing to refund.
                undo.pop();
                if matches!(reason, FailureReason::PaymentDeclined { .. }) {
                    Self::set_payment(ctx, PaymentStatus::Declined);
                    Self::record(ctx, OrderEvent::PaymentProcessFailed);
                }
            }
            return Err(stop);
        }
        Ok(())
    }

    /// Checkout mode: create the gateway order and publish its approval
    /// link, wait for approval (webhook signal, reconciliation poll,
    /// deadline or `CancelOrder`), then capture.
    pub(super) async fn checkout_payment(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        timing: CheckoutTiming,
        undo: &mut Vec<Compensation>,
    ) -> Result<(), Stop> {
        let order_id = input.order_id;
        let checkout = ctx
            .execute_activity(
                OrderContract::create_checkout,
                CheckoutInput {
                    order_id,
                    transaction_id: input.transaction_id,
                    amount: input.total,
                    payer_email: input.customer_email.as_ref().map(|e| e.to_string()),
                },
                gateway_step("CreateCheckout", None),
            )
            .await
            .map_err(|e| Self::classify(ctx, e))?;
        let gateway_order_id = checkout.id.clone();
        ctx.state_mut(|s| s.gateway_order = Some(gateway_order_id.clone()));
        undo.push(Compensation::VoidPayment);
        let approval_url = checkout.approve_url.clone();
        // The "order received" email carries the approval link, so it is
        // committed here rather than with `PlaceOrder`.
        let received = input.received_email(Some(approval_url.clone()));
        let outgoing = Self::for_outbox(ctx, received.map(Outgoing::Email));
        ctx.execute_local_activity(
            OrderContract::open_payment,
            OpenPaymentInput {
                order_id,
                transaction_id: input.transaction_id,
                amount: input.total,
                checkout,
                outgoing,
            },
            db_step("OpenPayment", Self::db_step_token(ctx)),
        )
        .await
        .map_err(|e| Self::classify(ctx, e))?;
        ctx.state_mut(|s| s.view.approval_url = Some(approval_url));

        Self::step(ctx, SagaStep::AwaitApproval);
        let gateway = GatewayPaymentInput {
            order_id,
            transaction_id: input.transaction_id,
            gateway_order_id,
        };
        let approval = if ctx.state(|s| s.later.checkout_deadline) {
            Self::await_approval_until_deadline(ctx, &gateway, timing).await?
        } else {
            Self::await_approval(ctx, &gateway, timing).await?
        };
        let reason = match approval {
            Approval::Approved => None,
            Approval::Voided => Some(FailureReason::PaymentDeclined {
                message: "cancelled by the buyer".to_string(),
            }),
            Approval::Expired => Some(FailureReason::PaymentExpired {
                after_secs: timing.deadline_secs,
            }),
            Approval::CancelRequested(message) => Some(FailureReason::Cancelled { message }),
        };
        if let Some(reason) = reason {
            // Never approved: the VoidPayment compensation voids the gateway
            // order and records `PaymentProcessFailed`.
            return Err(Stop::Business(reason));
        }

        Self::step(ctx, SagaStep::CapturePayment);
        // Approved: from here the undo is a refund, registered before the
        // capture so a cancellation while it is in flight gives back
        // whatever it took.
        undo.pop();
        undo.push(Compensation::RefundPayment);
        let captured = ctx
            .execute_activity(
                OrderContract::capture_payment,
                gateway,
                gateway_step("CapturePayment", None),
            )
            .await;
        let captured = match captured {
            Ok(captured) => captured,
            Err(e) => {
                let stop = Self::classify(ctx, e);
                if matches!(stop, Stop::Business(_)) && ctx.state(|s| s.later.gateway_outcomes) {
                    // Refused for good (the buyer cancelled after approving:
                    // ORDER_EXPIRED; ORDER_NOT_APPROVED; PAYER_ACTION_REQUIRED).
                    // Nothing was captured (the adapter resolves an earlier
                    // capture), but the gateway order may still be open:
                    // void it, after the refund, which stays registered in
                    // case an unreadable answer hid a capture.
                    undo.pop();
                    undo.push(Compensation::VoidPayment);
                    undo.push(Compensation::RefundPayment);
                }
                return Err(stop);
            }
        };
        match captured {
            CaptureOutcome::Completed { .. } => {
                Self::settle(ctx, order_id, Settlement::Captured).await
            }
            CaptureOutcome::Declined { reason, .. } => {
                // Nothing taken, nothing to refund.
                undo.pop();
                Self::settle(
                    ctx,
                    order_id,
                    Settlement::Declined {
                        reason: reason.clone(),
                    },
                )
                .await?;
                Self::set_payment(ctx, PaymentStatus::Declined);
                Self::record(ctx, OrderEvent::PaymentProcessFailed);
                Err(Stop::Business(FailureReason::PaymentDeclined {
                    message: reason,
                }))
            }
        }
    }

    /// The wait of sagas recorded before `checkout-deadline-v1`: it counted
    /// only timer time against the deadline (not a poll's retries) and
    /// skipped the poll at the deadline.
    async fn await_approval(
        ctx: &mut WorkflowContext<Self>,
        gateway: &GatewayPaymentInput,
        timing: CheckoutTiming,
    ) -> Result<Approval, Stop> {
        let poll = Duration::from_secs(timing.poll_secs.max(1));
        let mut remaining = Duration::from_secs(timing.deadline_secs);
        loop {
            if let Some(approval) = Self::decided(ctx) {
                return Ok(approval);
            }
            if remaining.is_zero() {
                return Ok(Approval::Expired);
            }
            let wait = poll.min(remaining);
            let timer = TimerOptions::builder(wait)
                .summary("payment reconciliation".to_string())
                .build();
            let woke_by_timer = temporalio_workflow::workflows::select! {
                r = ctx.wait_condition(|s: &Self| {
                    s.payment_event.is_some() || s.cancel_requested.is_some()
                }) => match r {
                    Ok(()) => false,
                    Err(_) => return Err(Self::workflow_cancelled(ctx)),
                },
                r = ctx.timer(timer) => match r {
                    TimerResult::Fired => true,
                    TimerResult::Cancelled => return Err(Self::workflow_cancelled(ctx)),
                },
            };
            if !woke_by_timer {
                continue;
            }
            remaining = remaining.saturating_sub(wait);
            if remaining.is_zero() {
                continue;
            }
            let snapshot = ctx
                .execute_activity(
                    OrderContract::get_checkout,
                    gateway.gateway_order_id.clone(),
                    gateway_step("GetCheckout", None),
                )
                .await
                .map_err(|e| Self::classify(ctx, e))?;
            let polled = match snapshot.status {
                CheckoutStatus::Approved | CheckoutStatus::Completed => {
                    Some(GatewayEventKind::Approved)
                }
                CheckoutStatus::Voided => Some(GatewayEventKind::Voided),
                _ => None,
            };
            ctx.state_mut(|s| {
                if s.payment_event.is_none() {
                    s.payment_event = polled;
                }
            });
        }
    }

    /// Waits for the buyer on the workflow clock (`checkout-deadline-v1`): a
    /// webhook or `CancelOrder` wakes the saga at once; every poll interval,
    /// and once more at the deadline, it asks the gateway itself. A poll
    /// retries a gateway outage only until the deadline (the last one for
    /// [`LAST_POLL_WINDOW`]), so an outage ends the wait on time: nothing
    /// was captured, and the deadline's void makes sure nothing will be.
    async fn await_approval_until_deadline(
        ctx: &mut WorkflowContext<Self>,
        gateway: &GatewayPaymentInput,
        timing: CheckoutTiming,
    ) -> Result<Approval, Stop> {
        let Some(start) = ctx.workflow_time() else {
            return Self::await_approval(ctx, gateway, timing).await;
        };
        let poll = Duration::from_secs(timing.poll_secs.max(1));
        let deadline = start + Duration::from_secs(timing.deadline_secs);
        // The workflow clock: the time of the current task, the same on replay.
        let remaining = |ctx: &WorkflowContext<Self>| {
            let now = ctx.workflow_time().unwrap_or(start);
            deadline.duration_since(now).unwrap_or(Duration::ZERO)
        };
        loop {
            if let Some(approval) = Self::decided(ctx) {
                return Ok(approval);
            }
            let left = remaining(&*ctx);
            if left.is_zero() {
                Self::reconcile(ctx, gateway, LAST_POLL_WINDOW).await?;
                return Ok(Self::decided(ctx).unwrap_or(Approval::Expired));
            }
            if !Self::sleep_unless_decided(ctx, poll.min(left)).await? {
                continue;
            }
            let left = remaining(&*ctx);
            if !left.is_zero() {
                Self::reconcile(ctx, gateway, left).await?;
            }
        }
    }

    /// How the wait is decided so far: `CancelOrder` first, then the first
    /// deciding gateway event.
    fn decided(ctx: &WorkflowContext<Self>) -> Option<Approval> {
        ctx.state(|s| {
            if let Some(reason) = &s.cancel_requested {
                return Some(Approval::CancelRequested(reason.clone()));
            }
            match s.payment_event {
                Some(GatewayEventKind::Voided) => Some(Approval::Voided),
                Some(_) => Some(Approval::Approved),
                None => None,
            }
        })
    }

    /// Sleeps `wait` unless a webhook or `CancelOrder` comes first; whether
    /// the timer fired.
    async fn sleep_unless_decided(
        ctx: &mut WorkflowContext<Self>,
        wait: Duration,
    ) -> Result<bool, Stop> {
        let timer = TimerOptions::builder(wait)
            .summary("payment reconciliation".to_string())
            .build();
        temporalio_workflow::workflows::select! {
            r = ctx.wait_condition(|s: &Self| {
                s.payment_event.is_some() || s.cancel_requested.is_some()
            }) => match r {
                Ok(()) => Ok(false),
                Err(_) => Err(Self::workflow_cancelled(ctx)),
            },
            r = ctx.timer(timer) => match r {
                TimerResult::Fired => Ok(true),
                TimerResult::Cancelled => Err(Self::workflow_cancelled(ctx)),
            },
        }
    }

    /// Asks the gateway where its order stands, retrying for at most
    /// `window`; an approval or void found decides the wait like a webhook.
    /// No answer in time is no news; a refusal (a 4xx) is the order's
    /// outcome.
    async fn reconcile(
        ctx: &mut WorkflowContext<Self>,
        gateway: &GatewayPaymentInput,
        window: Duration,
    ) -> Result<(), Stop> {
        let snapshot = ctx
            .execute_activity(
                OrderContract::get_checkout,
                gateway.gateway_order_id.clone(),
                within("GetCheckout", window),
            )
            .await;
        let snapshot = match snapshot {
            Ok(snapshot) => snapshot,
            Err(e) => {
                return match Self::classify(ctx, e) {
                    Stop::Broken(_) => Ok(()),
                    stop => Err(stop),
                };
            }
        };
        let polled = match snapshot.status {
            CheckoutStatus::Approved | CheckoutStatus::Completed => {
                Some(GatewayEventKind::Approved)
            }
            CheckoutStatus::Voided => Some(GatewayEventKind::Voided),
            _ => None,
        };
        ctx.state_mut(|s| {
            if s.payment_event.is_none() {
                s.payment_event = polled;
            }
        });
        Ok(())
    }

    /// Records how the checkout payment ended.
    async fn settle(
        ctx: &mut WorkflowContext<Self>,
        order_id: OrderId,
        settlement: Settlement,
    ) -> Result<(), Stop> {
        ctx.execute_local_activity(
            OrderContract::settle_payment,
            SettleInput {
                order_id,
                settlement,
            },
            db_step("SettlePayment", detached()),
        )
        .await
        .map_err(|e| Self::classify(ctx, e))
    }
}
