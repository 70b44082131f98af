//! The order saga as a deterministic Temporal workflow: [`OrderWorkflow`].
//!
//! `PlaceOrder` -> `ProcessPayment` -> `ProcessInventory` -> `ConfirmOrder`;
//! on a business failure or cancellation the compensations registered so far
//! run in reverse (`ReleaseInventory`, `RefundPayment`), then `FailOrder`.
//!
//! The payment step has two modes, fixed per order in its input
//! ([`PaymentMode`]): one synchronous charge through the simulated gateway,
//! or a PayPal-style checkout ([`OrderWorkflow::checkout_payment`]): create
//! the gateway order, publish the buyer's approval link (the `PaymentLink`
//! update answers `PlaceOrder` with it), then wait durably for a verified
//! webhook (the `PaymentEvent` signal), a reconciliation poll of the gateway
//! or the payment deadline, and capture once approved. `CancelOrder` is an
//! update whose validator refuses it after the point of no return.
//!
//! Steps that only write our own database run as *local* activities: they
//! are short, idempotent and need no server round trip of their own. Steps
//! that talk to the payment gateway run as regular activities with
//! heartbeats, so any worker of the fleet can take them over.
//!
//! The saga tells the support services without waiting for them: the
//! step that causes an email or a shipping request (`PlaceOrder`,
//! `ConfirmOrder`, `FailOrder`) commits it to the outbox in its own
//! transaction, and the [`OutboxRelayWorkflow`] of each service delivers it
//! on that service's task queue. The saga starts nothing per message, so
//! these cost it no server round trip; an email outage or an absent
//! notifications fleet never delays or fails an order. (Sagas started
//! before the `outbox-v1` patch start a [`NotificationWorkflow`] per email
//! and a [`ShippingWorkflow`] as abandoned children instead.)
//!
//! This crate must stay deterministic: no clock, randomness, I/O, threads or
//! tokio; only the SDK's workflow context.

#![allow(missing_docs)] // the #[workflow] macros generate undocumented items

pub mod notification;
pub mod relay;
pub mod shipping;

pub use notification::NotificationWorkflow;
pub use relay::{OutboxRelayWorkflow, RelayWorkflowInput};
pub use shipping::ShippingWorkflow;

use std::time::Duration;

use ordersaga_activities::gateway::checkout::{
    CaptureOutcome, GatewayOrderId, OrderStatus as GatewayStatus,
};
use ordersaga_activities::{
    CheckoutInput, ConfirmOrderInput, FailOrderInput, GatewayPaymentInput, OpenPaymentInput,
    OrderActivities, PaymentInput, PlaceOrderInput, SettleInput, Settlement,
};
use ordersaga_domain::names::{
    NOTIFICATIONS_PATCH, NOTIFICATIONS_TASK_QUEUE, ORDER_WORKFLOW_TYPE, OUTBOX_PATCH,
    SHIPPING_TASK_QUEUE, failure, handler, search_attribute,
};
use ordersaga_domain::{
    CheckoutTiming, EmailStage, FailureReason, GatewayEvent, GatewayEventKind, Notification,
    OrderEmail, OrderEvent, OrderInput, OrderOutcome, OrderStatus, OrderView, Outgoing,
    PaymentMode, PaymentStatus, ShipmentLine, ShipmentRequest,
};
use temporalio_common::RetryPolicy;
use temporalio_common::error::IncomingError;
use temporalio_common::protos::temporal::api::failure::v1::failure::FailureInfo;
use temporalio_common::search_attributes::SearchAttributeKey;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityExecutionError, ActivityOptions, ApplicationFailure, ChildWorkflowOptions,
    LocalActivityOptions, ParentClosePolicy, SyncWorkflowContext, TimerOptions, TimerResult,
    WorkflowCancellationToken, WorkflowContext, WorkflowContextView, WorkflowIdReusePolicy,
    WorkflowResult, WorkflowTermination,
};
use temporalio_workflow::ActivityCancellationType;
use temporalio_workflow::ChildWorkflowStartError;

/// The `OrderStatus` search attribute, kept current by the workflow.
pub const ORDER_STATUS_ATTR: SearchAttributeKey<String> =
    SearchAttributeKey::keyword(search_attribute::ORDER_STATUS);

/// Retries infrastructure errors with backoff for as long as the step's
/// timeout allows (an outage is waited out, not turned into failed orders);
/// business outcomes are final.
fn retry_policy() -> RetryPolicy {
    RetryPolicy::builder()
        .initial_interval(Duration::from_millis(100))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(30))
        .non_retryable_error_types([
            failure::PAYMENT_DECLINED,
            failure::OUT_OF_STOCK,
            failure::ORDER_NOT_FOUND,
        ])
        .build()
}

/// Our own database writes: milliseconds each; retried for up to a day.
fn db_step(summary: &str, token: Option<WorkflowCancellationToken>) -> LocalActivityOptions {
    let mut opts = LocalActivityOptions::builder()
        .start_to_close_timeout(Duration::from_secs(10))
        .schedule_to_close_timeout(Duration::from_secs(24 * 3600))
        .retry_policy(retry_policy())
        .summary(summary.to_string())
        .build();
    opts.cancellation_token = token;
    opts
}

/// Gateway calls: heartbeating, so a dead worker's attempt is retried
/// elsewhere within seconds.
fn gateway_step(summary: &str, token: Option<WorkflowCancellationToken>) -> ActivityOptions {
    let mut opts = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .heartbeat_timeout(Duration::from_secs(5))
        .retry_policy(retry_policy())
        // On cancellation wait for the charge attempt to end, so a refund
        // never runs before the capture it must undo.
        .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
        .summary(summary)
        .build();
    opts.cancellation_token = token;
    opts
}

/// The [`FailureReason`] of a non-retryable business failure, if `err` is one.
///
/// Regular activities report an application failure wrapped in an activity
/// failure (`err.reason()`); local activities report it top-level, so its
/// details are decoded from the failure itself.
fn business_reason(err: &ActivityExecutionError) -> Option<FailureReason> {
    if let Some(IncomingError::Application(app)) = err.reason() {
        return if app.is_non_retryable() {
            app.details::<FailureReason>().ok().flatten()
        } else {
            None
        };
    }
    match &err.failure()?.failure_info {
        Some(FailureInfo::ApplicationFailureInfo(info)) if info.non_retryable => {
            let payload = info.details.as_ref()?.payloads.first()?;
            serde_json::from_slice(&payload.data).ok()
        }
        _ => None,
    }
}

/// Undo actions registered as the saga advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compensation {
    RefundPayment,
    ReleaseInventory,
    /// Checkout: the gateway order exists but is not captured; make sure it
    /// never will be.
    VoidPayment,
}

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

/// Steps after which `CancelOrder` is refused: confirmation began (money
/// and stock are committed to the order) or the order is already failing.
const NO_RETURN_STEPS: [&str; 4] = ["ConfirmOrder", "Compensating", "FailOrder", "Done"];

/// Why the forward path stopped.
enum Stop {
    /// A business outcome: the order fails, compensations run.
    Business(FailureReason),
    /// The workflow was cancelled: compensations run, then it ends cancelled.
    Cancelled(String),
    /// Anything else (a bug): compensations run, then the workflow fails so
    /// an operator sees it.
    Broken(Box<ActivityExecutionError>),
    /// The workflow cannot go on (e.g. a child's input did not serialize):
    /// compensations run, then the workflow ends with this.
    Terminated(WorkflowTermination),
}

#[workflow]
pub struct OrderWorkflow {
    input: OrderInput,
    view: OrderView,
    /// Whether this saga starts a child workflow per email and for
    /// shipping (sagas from before the outbox: the `notifications-v1` patch).
    notify: bool,
    /// Whether this saga commits its emails and shipping request to the
    /// outbox (the `outbox-v1` patch).
    outbox: bool,
    /// Checkout: the first gateway event that decided the payment; later
    /// ones (duplicates, out of order) are ignored.
    payment_event: Option<GatewayEventKind>,
    /// Checkout: the gateway's order, once created.
    gateway_order: Option<GatewayOrderId>,
    /// `CancelOrder` was accepted, with the customer's reason.
    cancel_requested: Option<String>,
}

#[workflow_methods]
impl OrderWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: OrderInput) -> Self {
        let view = OrderView {
            order_id: input.order_id,
            status: OrderStatus::Pending,
            payment_status: None,
            step: "Started".to_string(),
            events: Vec::new(),
            reason: None,
            approval_url: None,
        };
        Self {
            input,
            view,
            notify: false,
            outbox: false,
            payment_event: None,
            gateway_order: None,
            cancel_requested: None,
        }
    }

    /// The saga. Business failures complete the workflow with a `FAILED`
    /// outcome; cancellation compensates and ends the workflow cancelled.
    #[run(name = ORDER_WORKFLOW_TYPE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<OrderOutcome> {
        let input = ctx.state(|s| s.input.clone());
        // Decided once, before the first command: sagas recorded before
        // notifications existed replay without them. (Asked later, right
        // after a local activity, the answer could be taken during replay
        // before the SDK has seen the marker.)
        let outbox = ctx.patched(OUTBOX_PATCH);
        let notify = !outbox && ctx.patched(NOTIFICATIONS_PATCH);
        ctx.state_mut(|s| {
            s.outbox = outbox;
            s.notify = notify;
        });
        let mut undo = Vec::new();
        let stop = match Self::forward(ctx, &input, &mut undo).await {
            Ok(()) => return Self::confirm(ctx, &input).await,
            Err(stop) => stop,
        };
        let why = match &stop {
            Stop::Business(reason) => reason.to_string(),
            Stop::Cancelled(message) => FailureReason::Cancelled {
                message: message.clone(),
            }
            .to_string(),
            Stop::Broken(_) | Stop::Terminated(_) => "the saga stopped".to_string(),
        };
        let refunded = Self::compensate(ctx, &input, &undo, &why).await?;
        let reason = match stop {
            Stop::Business(reason) => reason,
            Stop::Cancelled(message) => FailureReason::Cancelled { message },
            Stop::Broken(err) => return Err((*err).into()),
            Stop::Terminated(t) => return Err(t),
        };
        let cancelled = matches!(reason, FailureReason::Cancelled { .. });
        let email = Self::email(&input, EmailStage::OrderFailed, Some(&reason), refunded);
        let outgoing = if outbox {
            email.clone().map(Outgoing::Email).into_iter().collect()
        } else {
            Vec::new()
        };
        Self::fail(ctx, &input, &reason, outgoing).await?;
        if notify {
            Self::notify(ctx, email).await?;
        }
        if cancelled {
            return Err(WorkflowTermination::cancelled());
        }
        Ok(OrderOutcome {
            order_id: input.order_id,
            status: OrderStatus::Failed,
            reason: Some(reason),
            refunded,
        })
    }

    /// The live status of the order.
    #[query(name = handler::GET_STATUS)]
    pub fn get_status(&self, _ctx: &WorkflowContextView) -> OrderView {
        self.view.clone()
    }

    /// A verified gateway webhook, signalled by the API. Only an approval or
    /// a void decides a pending payment; the first one wins, so duplicates
    /// and late or reordered events change nothing.
    #[signal(name = handler::PAYMENT_EVENT)]
    pub fn payment_event(&mut self, _ctx: &mut SyncWorkflowContext<Self>, event: GatewayEvent) {
        let deciding = match event.kind {
            // A capture we did not ask for still means the buyer approved;
            // capturing again finds it (ensure_captured).
            GatewayEventKind::Approved | GatewayEventKind::Captured => {
                Some(GatewayEventKind::Approved)
            }
            GatewayEventKind::Voided => Some(GatewayEventKind::Voided),
            // Consequences of our own capture and refund: their activities
            // already report them.
            GatewayEventKind::CaptureDenied | GatewayEventKind::Refunded => None,
        };
        if self.payment_event.is_none() {
            self.payment_event = deciding;
        }
    }

    /// Answers the buyer's approval link once the gateway order exists, or
    /// `None` when the order will have none (simulated payment, or it ended
    /// before). `PlaceOrder` sends it with the start (update-with-start).
    #[update(name = handler::PAYMENT_LINK)]
    pub async fn payment_link(ctx: &mut WorkflowContext<Self>) -> Option<String> {
        let simulated = ctx.state(|s| s.input.payment == PaymentMode::Simulated);
        if simulated {
            return None;
        }
        // A cancelled workflow answers what it has.
        let _ = ctx
            .wait_condition(|s: &Self| {
                s.view.approval_url.is_some()
                    || s.view.status != OrderStatus::Pending
                    || NO_RETURN_STEPS.contains(&s.view.step.as_str())
            })
            .await;
        ctx.state(|s| s.view.approval_url.clone())
    }

    /// Refuses `CancelOrder` once the order is past the point of no return.
    #[update_validator(cancel_order)]
    fn validate_cancel(
        &self,
        _ctx: &WorkflowContextView,
        _reason: &String,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if self.view.status != OrderStatus::Pending
            || NO_RETURN_STEPS.contains(&self.view.step.as_str())
        {
            return Err(format!(
                "order {} can no longer be cancelled (status {}, step {})",
                self.view.order_id, self.view.status, self.view.step
            )
            .into());
        }
        Ok(())
    }

    /// `CancelOrder`: the saga stops at its next checkpoint; before capture
    /// the gateway order is voided, after capture the payment is refunded.
    /// A repeated cancel is accepted and changes nothing.
    #[update(name = handler::CANCEL_ORDER)]
    pub fn cancel_order(&mut self, _ctx: &mut SyncWorkflowContext<Self>, reason: String) {
        if self.cancel_requested.is_none() {
            self.cancel_requested = Some(reason);
        }
    }

    fn step(ctx: &mut WorkflowContext<Self>, step: &str) {
        ctx.state_mut(|s| s.view.step = step.to_string());
        ctx.set_current_details(format!("step: {step}"));
    }

    fn record(ctx: &mut WorkflowContext<Self>, event: OrderEvent) {
        ctx.state_mut(|s| s.view.events.push(event));
    }

    fn set_payment(ctx: &mut WorkflowContext<Self>, status: PaymentStatus) {
        ctx.state_mut(|s| s.view.payment_status = Some(status));
    }

    async fn forward(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        undo: &mut Vec<Compensation>,
    ) -> Result<(), Stop> {
        let order_id = input.order_id;
        Self::step(ctx, "PlaceOrder");
        // A checkout order's "received" email carries the approval link:
        // it is committed with the link (OpenPayment), not here.
        let checkout = matches!(input.payment, PaymentMode::Checkout(_));
        let outgoing = if ctx.state(|s| s.outbox) && !checkout {
            Self::received(input, None)
        } else {
            Vec::new()
        };
        // Detached: even an order cancelled at once is stored first, so its
        // cancellation has an order to be recorded against.
        ctx.execute_local_activity(
            OrderActivities::place_order,
            PlaceOrderInput {
                order: input.clone(),
                outgoing,
            },
            db_step("PlaceOrder", Some(WorkflowCancellationToken::new())),
        )
        .await
        .map_err(|e| Self::classify(ctx, e))?;
        Self::record(ctx, OrderEvent::OrderPlaced);
        if ctx.state(|s| s.notify) {
            let email = Self::email(input, EmailStage::OrderReceived, None, false);
            Self::notify(ctx, email).await.map_err(Stop::Terminated)?;
        }
        Self::cancelled(ctx)?;

        Self::step(ctx, "ProcessPayment");
        Self::set_payment(ctx, PaymentStatus::Pending);
        if let PaymentMode::Checkout(timing) = input.payment {
            Self::checkout_payment(ctx, input, timing, undo).await?;
        } else {
            Self::charge(ctx, input, undo).await?;
        }
        Self::set_payment(ctx, PaymentStatus::Captured);
        Self::record(ctx, OrderEvent::PaymentProcessed);
        Self::cancelled(ctx)?;

        Self::step(ctx, "ProcessInventory");
        undo.push(Compensation::ReleaseInventory);
        let stocked = ctx
            .execute_local_activity(
                OrderActivities::process_inventory,
                order_id,
                db_step("ProcessInventory", None),
            )
            .await;
        let processed = match stocked {
            Ok(processed) => processed,
            Err(e) => {
                let stop = Self::classify(ctx, e);
                if let Stop::Business(_) = stop {
                    // Short: the deduction was all-or-nothing, nothing to release.
                    undo.pop();
                    Self::record(ctx, OrderEvent::InventoryProcessFailed);
                }
                return Err(stop);
            }
        };
        Self::record(ctx, OrderEvent::InventoryProcessed);
        // MonitorLowStock raised these in the deduction's own transaction,
        // and committed their emails to the outbox with them. Older sagas
        // start an email workflow per alert. (Histories from before alerts
        // were reported carry no alerts here.)
        if ctx.state(|s| s.notify) {
            for alert in processed.map(|p| p.low_stock_alerts).unwrap_or_default() {
                Self::notify(ctx, Some(Notification::LowStock(alert)))
                    .await
                    .map_err(Stop::Terminated)?;
            }
        }
        Self::cancelled(ctx)
    }

    /// Simulated mode: one synchronous charge.
    async fn charge(
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
        let paid = ctx
            .execute_activity(
                OrderActivities::process_payment,
                payment,
                gateway_step("ProcessPayment", None),
            )
            .await;
        if let Err(e) = paid {
            let stop = Self::classify(ctx, e);
            if let Stop::Business(_) = stop {
                // Declined: nothing was captured, nothing to refund.
                undo.pop();
                Self::set_payment(ctx, PaymentStatus::Declined);
                Self::record(ctx, OrderEvent::PaymentProcessFailed);
            }
            return Err(stop);
        }
        Ok(())
    }

    /// Checkout mode: create the gateway order and publish its approval
    /// link, wait for approval (webhook signal, reconciliation poll,
    /// deadline or `CancelOrder`), then capture.
    async fn checkout_payment(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        timing: CheckoutTiming,
        undo: &mut Vec<Compensation>,
    ) -> Result<(), Stop> {
        let order_id = input.order_id;
        let checkout = ctx
            .execute_activity(
                OrderActivities::create_checkout,
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
        let outgoing = if ctx.state(|s| s.outbox) {
            Self::received(input, Some(approval_url.clone()))
        } else {
            Vec::new()
        };
        ctx.execute_local_activity(
            OrderActivities::open_payment,
            OpenPaymentInput {
                order_id,
                transaction_id: input.transaction_id,
                amount: input.total,
                checkout,
                outgoing,
            },
            db_step("OpenPayment", None),
        )
        .await
        .map_err(|e| Self::classify(ctx, e))?;
        ctx.state_mut(|s| s.view.approval_url = Some(approval_url));

        Self::step(ctx, "AwaitApproval");
        let gateway = GatewayPaymentInput {
            order_id,
            transaction_id: input.transaction_id,
            gateway_order_id,
        };
        let reason = match Self::await_approval(ctx, &gateway, timing).await? {
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

        Self::step(ctx, "CapturePayment");
        // Approved: from here the undo is a refund, registered before the
        // capture so a cancellation while it is in flight gives back
        // whatever it took.
        undo.pop();
        undo.push(Compensation::RefundPayment);
        let captured = ctx
            .execute_activity(
                OrderActivities::capture_payment,
                gateway,
                gateway_step("CapturePayment", None),
            )
            .await
            .map_err(|e| Self::classify(ctx, e))?;
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

    /// Waits for the buyer: a webhook or `CancelOrder` wakes the saga at
    /// once; every poll interval it asks the gateway itself (a lost webhook
    /// never leaves the payment stuck); the deadline ends the wait.
    async fn await_approval(
        ctx: &mut WorkflowContext<Self>,
        gateway: &GatewayPaymentInput,
        timing: CheckoutTiming,
    ) -> Result<Approval, Stop> {
        let poll = Duration::from_secs(timing.poll_secs.max(1));
        let mut remaining = Duration::from_secs(timing.deadline_secs);
        loop {
            let decided = ctx.state(|s| {
                if let Some(reason) = &s.cancel_requested {
                    return Some(Approval::CancelRequested(reason.clone()));
                }
                match s.payment_event {
                    Some(GatewayEventKind::Voided) => Some(Approval::Voided),
                    Some(_) => Some(Approval::Approved),
                    None => None,
                }
            });
            if let Some(approval) = decided {
                return Ok(approval);
            }
            if remaining.is_zero() {
                return Ok(Approval::Expired);
            }
            let wait = poll.min(remaining);
            let timer = TimerOptions::builder(wait)
                .summary("payment reconciliation".to_string())
                .build();
            let woke_by_timer = temporalio_sdk::workflows::select! {
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
                    OrderActivities::get_checkout,
                    gateway.gateway_order_id.clone(),
                    gateway_step("GetCheckout", None),
                )
                .await
                .map_err(|e| Self::classify(ctx, e))?;
            let polled = match snapshot.status {
                GatewayStatus::Approved | GatewayStatus::Completed => {
                    Some(GatewayEventKind::Approved)
                }
                GatewayStatus::Voided => Some(GatewayEventKind::Voided),
                _ => None,
            };
            ctx.state_mut(|s| {
                if s.payment_event.is_none() {
                    s.payment_event = polled;
                }
            });
        }
    }

    async fn settle(
        ctx: &mut WorkflowContext<Self>,
        order_id: ordersaga_domain::OrderId,
        settlement: Settlement,
    ) -> Result<(), Stop> {
        ctx.execute_local_activity(
            OrderActivities::settle_payment,
            SettleInput {
                order_id,
                settlement,
            },
            db_step("SettlePayment", Some(WorkflowCancellationToken::new())),
        )
        .await
        .map_err(|e| Self::classify(ctx, e))
    }

    /// Stops the forward path once the workflow has been asked to cancel
    /// (Temporal cancellation), or the customer cancelled (`CancelOrder`).
    fn cancelled(ctx: &WorkflowContext<Self>) -> Result<(), Stop> {
        let token = ctx.cancellation_token();
        if token.is_cancelled() {
            return Err(Stop::Cancelled(token.reason().unwrap_or_default()));
        }
        if let Some(message) = ctx.state(|s| s.cancel_requested.clone()) {
            return Err(Stop::Business(FailureReason::Cancelled { message }));
        }
        Ok(())
    }

    fn workflow_cancelled(ctx: &WorkflowContext<Self>) -> Stop {
        Stop::Cancelled(ctx.cancellation_token().reason().unwrap_or_default())
    }

    fn classify(ctx: &WorkflowContext<Self>, err: ActivityExecutionError) -> Stop {
        let token = ctx.cancellation_token();
        if token.is_cancelled() || err.as_cancelled().is_some() {
            return Stop::Cancelled(token.reason().unwrap_or_default());
        }
        let business = business_reason(&err);
        match business {
            Some(reason) => Stop::Business(reason),
            None => Stop::Broken(Box::new(err)),
        }
    }

    /// Runs the registered compensations in reverse. They ignore the
    /// workflow's cancellation (detached token): a cancelled order must
    /// still be refunded. `why` is recorded on a voided payment. Returns
    /// whether money was refunded.
    async fn compensate(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        undo: &[Compensation],
        why: &str,
    ) -> WorkflowResult<bool> {
        let mut refunded = false;
        if !undo.is_empty() {
            Self::step(ctx, "Compensating");
        }
        for c in undo.iter().rev() {
            match c {
                Compensation::ReleaseInventory => {
                    let released = ctx
                        .execute_local_activity(
                            OrderActivities::release_inventory,
                            input.order_id,
                            db_step("ReleaseInventory", Some(WorkflowCancellationToken::new())),
                        )
                        .await?;
                    if released {
                        Self::record(ctx, OrderEvent::InventoryReleased);
                    }
                }
                Compensation::VoidPayment => {
                    let gateway = Self::gateway_payment(ctx, input)?;
                    ctx.execute_activity(
                        OrderActivities::void_payment,
                        gateway,
                        gateway_step("VoidPayment", Some(WorkflowCancellationToken::new())),
                    )
                    .await?;
                    // Voided first, then recorded: the payment never shows
                    // VOIDED while the buyer could still approve it.
                    ctx.execute_local_activity(
                        OrderActivities::settle_payment,
                        SettleInput {
                            order_id: input.order_id,
                            settlement: Settlement::Voided {
                                reason: why.to_string(),
                            },
                        },
                        db_step("SettlePayment", Some(WorkflowCancellationToken::new())),
                    )
                    .await?;
                    Self::set_payment(ctx, PaymentStatus::Voided);
                    Self::record(ctx, OrderEvent::PaymentProcessFailed);
                }
                Compensation::RefundPayment if input.payment != PaymentMode::Simulated => {
                    let gateway = Self::gateway_payment(ctx, input)?;
                    refunded = ctx
                        .execute_activity(
                            OrderActivities::refund_checkout,
                            gateway,
                            gateway_step("RefundPayment", Some(WorkflowCancellationToken::new())),
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
                            OrderActivities::refund_payment,
                            payment,
                            gateway_step("RefundPayment", Some(WorkflowCancellationToken::new())),
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

    async fn confirm(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
    ) -> WorkflowResult<OrderOutcome> {
        Self::step(ctx, "ConfirmOrder");
        let email = Self::email(input, EmailStage::OrderConfirmed, None, false);
        let shipment = Self::shipment(input);
        let outgoing = if ctx.state(|s| s.outbox) {
            let email = email.clone().map(Outgoing::Email);
            email
                .into_iter()
                .chain(shipment.clone().map(Outgoing::Shipment))
                .collect()
        } else {
            Vec::new()
        };
        // Paid and stock deducted: the point of no return. A cancellation
        // arriving now must not leave money taken for an unconfirmed order.
        ctx.execute_local_activity(
            OrderActivities::confirm_order,
            ConfirmOrderInput {
                order_id: input.order_id,
                outgoing,
            },
            db_step("ConfirmOrder", Some(WorkflowCancellationToken::new())),
        )
        .await?;
        Self::finish(
            ctx,
            OrderStatus::Confirmed,
            None,
            OrderEvent::OrderConfirmed,
        );
        if ctx.state(|s| s.notify) {
            Self::notify(ctx, email).await?;
            Self::ship(ctx, shipment).await?;
        }
        Ok(OrderOutcome {
            order_id: input.order_id,
            status: OrderStatus::Confirmed,
            reason: None,
            refunded: false,
        })
    }

    async fn fail(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        reason: &FailureReason,
        outgoing: Vec<Outgoing>,
    ) -> WorkflowResult<()> {
        Self::step(ctx, "FailOrder");
        ctx.execute_local_activity(
            OrderActivities::fail_order,
            FailOrderInput {
                order_id: input.order_id,
                reason: reason.clone(),
                outgoing,
            },
            db_step("FailOrder", Some(WorkflowCancellationToken::new())),
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

    fn finish(
        ctx: &mut WorkflowContext<Self>,
        status: OrderStatus,
        reason: Option<FailureReason>,
        event: OrderEvent,
    ) {
        ctx.state_mut(|s| {
            s.view.status = status;
            s.view.reason = reason;
            s.view.step = "Done".to_string();
        });
        Self::record(ctx, event);
        ctx.set_current_details(format!("status: {status}"));
        ctx.upsert_search_attributes([ORDER_STATUS_ATTR.value_set(status.to_string())]);
    }

    /// The email of `stage`, if the order has an address to send it to
    /// (sagas placed before email addresses existed have none).
    fn email(
        input: &OrderInput,
        stage: EmailStage,
        reason: Option<&FailureReason>,
        refunded: bool,
    ) -> Option<Notification> {
        let to = input.customer_email.clone()?;
        Some(Notification::Order(OrderEmail {
            stage,
            order_id: input.order_id,
            customer_id: input.customer_id.clone(),
            to,
            lines: input.lines.clone(),
            total: input.total,
            reason: reason.cloned(),
            refunded,
            ship_to: input.shipping_address.clone(),
            payment_url: None,
        }))
    }

    /// The "order received" email for the outbox, with the payment's
    /// approval link while the buyer has yet to approve it.
    fn received(input: &OrderInput, payment_url: Option<String>) -> Vec<Outgoing> {
        let mut email = Self::email(input, EmailStage::OrderReceived, None, false);
        if let Some(Notification::Order(e)) = &mut email {
            e.payment_url = payment_url;
        }
        email.map(Outgoing::Email).into_iter().collect()
    }

    /// Starts the email's delivery on the `notifications` task queue and
    /// returns once it has started, not once it is sent (sagas from before
    /// the outbox).
    async fn notify(
        ctx: &mut WorkflowContext<Self>,
        email: Option<Notification>,
    ) -> WorkflowResult<()> {
        let Some(email) = email else { return Ok(()) };
        let summary = format!("{} email for order {}", email.stage(), email.subject_id());
        let options = Self::fire_and_forget(email.workflow_id(), NOTIFICATIONS_TASK_QUEUE, summary);
        let started = ctx
            .start_child_workflow(NotificationWorkflow::run, email, options)
            .await;
        Self::started(started.map(|_| ()))
    }

    /// The shipping request of a confirmed order, if it has an address
    /// (sagas placed before addresses existed have none).
    fn shipment(input: &OrderInput) -> Option<ShipmentRequest> {
        let address = input.shipping_address.clone()?;
        Some(ShipmentRequest {
            order_id: input.order_id,
            customer_id: input.customer_id.clone(),
            lines: input.lines.iter().map(ShipmentLine::from).collect(),
            address,
        })
    }

    /// Starts the shipping request on the `shipping` task queue, without
    /// waiting for the warehouse (sagas from before the outbox).
    async fn ship(
        ctx: &mut WorkflowContext<Self>,
        request: Option<ShipmentRequest>,
    ) -> WorkflowResult<()> {
        let Some(request) = request else {
            return Ok(());
        };
        let summary = format!("Shipping request for order {}", request.order_id);
        let options = Self::fire_and_forget(request.workflow_id(), SHIPPING_TASK_QUEUE, summary);
        let started = ctx
            .start_child_workflow(ShippingWorkflow::run, request, options)
            .await;
        Self::started(started.map(|_| ()))
    }

    /// A child that outlives the saga (`Abandon`), ignores the saga's
    /// cancellation (a cancelled order still gets its email), and whose id
    /// is never reused (one email per stage, one request per order).
    fn fire_and_forget(
        workflow_id: String,
        task_queue: &str,
        summary: String,
    ) -> ChildWorkflowOptions {
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
    /// started the child (and the order must not fail over an email). Only
    /// a payload that does not serialize (a bug) stops the saga.
    fn started(result: Result<(), ChildWorkflowStartError>) -> WorkflowResult<()> {
        match result {
            Ok(()) | Err(ChildWorkflowStartError::StartFailed { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
