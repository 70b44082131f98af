//! The order saga: [`OrderWorkflow`].
//!
//! `PlaceOrder` -> `ReserveSpending` -> `ProcessPayment` -> `ProcessInventory`
//! -> `ConfirmOrder`;
//! on a business failure or cancellation the compensations registered so far
//! run in reverse ([`compensation`]), then `FailOrder`.
//!
//! - this module: the workflow's state, handlers and forward path
//!   (`run -> forward -> confirm`, or `compensate -> fail`);
//! - [`payment`]: the payment step in either mode (simulated charge, or a
//!   PayPal-style checkout that waits durably for the buyer's approval);
//! - [`closing`]: `ConfirmOrder` or `FailOrder`, and the end they record;
//! - [`compensation`]: the undo actions, and parking the ones refused for
//!   good;
//! - [`attention`]: waiting for an operator to retry or close a parked one;
//! - [`durable`]: acting on an update only once its acceptance is durable;
//! - [`failures`]: business outcomes read out of activity failures;
//! - [`outcomes`]: how a stopped saga ends (an accepted cancel wins; a fault
//!   is recorded as an internal failure first) and the quiet completion of
//!   a checkout saga;
//! - [`spending`]: the reservation against the customer's spending limit;
//! - [`amendment`]: partial availability: the amended order proposed when
//!   some lines are short, and the customer's accept or cancel;
//! - [`options`]: retry policy and activity options;
//! - [`legacy`]: what sagas of older generations do differently.
//!
//! The payment mode is fixed per order in its input ([`PaymentMode`]). In
//! checkout mode the `PaymentLink` update answers `PlaceOrder` with the
//! approval link once it exists, the `PaymentEvent` signal carries the
//! verified webhooks, and `CancelOrder` is an update whose validator refuses
//! it after the point of no return ([`SagaStep::past_point_of_no_return`]).
//!
//! The shop database is the arbiter: a step that finds its order already
//! failed refuses with the stored reason, and the saga unwinds and ends with
//! it; a `CancelOrder` is acted on only once its acceptance is durable.
//!
//! Steps that only write our own database run as *local* activities: they
//! are short, idempotent and need no server round trip of their own. Steps
//! that talk to the payment gateway run as regular activities with
//! heartbeats, so any worker of the fleet can take them over; except the
//! simulated charge, whose gateway is the shop's own table: since
//! `local-charge-v1` it is a local activity too, and a simulated order runs
//! its forward path in one workflow task ([`OrderWorkflow::lost_task`] says
//! what that asks of a stop).
//!
//! The saga tells the support services without waiting for them: the step
//! that causes an email or a shipping request (`PlaceOrder`, `OpenPayment`,
//! `ConfirmOrder`, `FailOrder`) commits it to the outbox in its own
//! transaction, and the [`crate::OutboxRelayWorkflow`] of each service
//! delivers it on that service's task queue. The saga starts nothing per
//! message, so these cost it no server round trip; an email outage or an
//! absent notifications fleet never delays or fails an order.

mod amendment;
mod attention;
mod closing;
mod compensation;
mod durable;
mod failures;
mod legacy;
mod options;
mod outcomes;
mod payment;
mod spending;

use std::time::Duration;

use ordersaga_domain::contracts::{GatewayOrderId, OrderContract, PlaceOrderInput};
use ordersaga_domain::names::{
    CHECKOUT_DEADLINE_PATCH, COMPENSATION_PARKING_PATCH, CONFIRMATION_STANDS_PATCH,
    DURABLE_CANCEL_PATCH, FINISH_DB_STEPS_PATCH, GATEWAY_OUTCOMES_PATCH, LOCAL_CHARGE_PATCH,
    NOTIFICATIONS_PATCH, ORDER_WORKFLOW_TYPE, OUTBOX_PATCH, PARTIAL_AVAILABILITY_PATCH,
    PAYMENT_STATUS_PATCH, QUIET_COMPLETION_PATCH, SPENDING_LIMIT_PATCH, handler, search_attribute,
};
use ordersaga_domain::{
    FailureReason, GatewayEvent, GatewayEventKind, Notification, OperatorNote, OrderEvent,
    OrderInput, OrderOutcome, OrderStatus, OrderView, Outgoing, PaymentMode, PaymentStatus,
    SagaStep,
};
use temporalio_workflow::common::SearchAttributeKey;
use temporalio_workflow::{
    ActivityExecutionError, SyncWorkflowContext, WorkflowCancellationToken, WorkflowContext,
    WorkflowContextView, WorkflowResult, WorkflowTermination, workflow, workflow_methods,
};

use attention::OperatorAction;
use compensation::{Compensation, Parked};
use failures::business_reason;
use options::{db_step, detached};

/// How long a started saga may run: an abandoned checkout ends long before.
pub const EXECUTION_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long one workflow task of the saga may take before the server hands
/// it to another worker. Its tasks take milliseconds (the worker heartbeats
/// a task at 80% of this while a local step runs longer), so this is how
/// long an order stalls when its worker dies mid-task or the server hands a
/// task to a poll that is gone: at the server's default of 10 s, such an
/// order took 10 s longer (docs/tuning.md).
pub const WORKFLOW_TASK_TIMEOUT: Duration = Duration::from_secs(2);

/// The `OrderStatus` search attribute, kept current by the workflow.
pub const ORDER_STATUS_ATTR: SearchAttributeKey<String> =
    SearchAttributeKey::keyword(search_attribute::ORDER_STATUS);

/// The `PaymentStatus` search attribute (`payment-status-attribute-v1`).
pub const PAYMENT_STATUS_ATTR: SearchAttributeKey<String> =
    SearchAttributeKey::keyword(search_attribute::PAYMENT_STATUS);

/// The generation of the saga a run belongs to, decided once from its
/// patches before the first command, so recorded sagas replay what they did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Generation {
    /// Recorded before notifications existed: no email, no shipping request.
    Original,
    /// `notifications-v1`: a child workflow per email and for shipping
    /// ([`legacy`]).
    ChildWorkflows,
    /// `outbox-v1`: the messages are committed with the step that causes
    /// them.
    Outbox,
}

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
    /// The step `view.step` shows.
    step: SagaStep,
    generation: Generation,
    /// Checkout: the first gateway event that decided the payment; later
    /// ones (duplicates, out of order) are ignored.
    payment_event: Option<GatewayEventKind>,
    /// Checkout: the gateway's order, once created.
    gateway_order: Option<GatewayOrderId>,
    /// `CancelOrder` was accepted, with the customer's reason.
    cancel_requested: Option<String>,
    /// `durable-cancel-v1`: a `CancelOrder` is acted on only once its
    /// acceptance is in the history ([`OrderWorkflow::cancel_made_durable`]).
    durable_cancel: bool,
    /// `finish-db-steps-v1`: a cancelled workflow lets `ProcessInventory`
    /// and `OpenPayment` finish ([`OrderWorkflow::db_step_token`]).
    finish_db_steps: bool,
    /// `gateway-outcomes-v1`, `checkout-deadline-v1`, `quiet-completion-v1`
    /// ([`outcomes`], [`payment`]).
    later: outcomes::Patches,
    /// `compensation-parking-v1`: compensations never stop the unwinding
    /// ([`compensation`]).
    parking: bool,
    /// `confirmation-stands-v1`: the database is asked before unwinding
    /// ([`OrderWorkflow::confirmation_stands`]).
    confirmation_stands: bool,
    /// `payment-status-attribute-v1`: a decided payment status is also the
    /// `PaymentStatus` search attribute ([`OrderWorkflow::set_payment`]).
    payment_attribute: bool,
    /// `spending-limit-v1`: the order's total is reserved against the
    /// customer's spending limit before the payment ([`spending`]).
    spending_limit: bool,
    /// `local-charge-v1`: the simulated charge is a local activity, so the
    /// forward path runs in one workflow task ([`payment`], [`lost_task`]);
    /// the `PaymentStatus` decided before the order ends is upserted with
    /// `OrderStatus` ([`OrderWorkflow::set_payment`]).
    local_charge: bool,
    /// `local-charge-v1`: the `PaymentStatus` waiting for the order's end,
    /// to be upserted with `OrderStatus` in one command.
    payment_attribute_due: Option<PaymentStatus>,
    /// The order has ended (`ConfirmOrder` or `FailOrder` recorded it).
    ended: bool,
    /// `partial-availability-v1`: a checkout order some lines of which are
    /// short may be amended with the customer's consent ([`amendment`]).
    partial_availability: bool,
    /// `AcceptAmendment` was accepted.
    accepted: bool,
    /// Compensations waiting for an operator ([`attention`]).
    parked: Vec<Parked>,
    /// The operator's accepted action, until the saga takes it.
    operator: Option<OperatorAction>,
}

#[workflow_methods]
impl OrderWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: OrderInput) -> Self {
        let step = SagaStep::Started;
        let view = OrderView {
            order_id: input.order_id,
            status: OrderStatus::Pending,
            payment_status: None,
            step: step.to_string(),
            events: Vec::new(),
            reason: None,
            approval_url: None,
            amendment: None,
        };
        Self {
            input,
            view,
            step,
            generation: Generation::Original,
            payment_event: None,
            gateway_order: None,
            cancel_requested: None,
            durable_cancel: false,
            finish_db_steps: false,
            later: outcomes::Patches::default(),
            parking: false,
            confirmation_stands: false,
            payment_attribute: false,
            spending_limit: false,
            local_charge: false,
            payment_attribute_due: None,
            ended: false,
            partial_availability: false,
            accepted: false,
            parked: Vec::new(),
            operator: None,
        }
    }

    /// The saga. Business failures complete the workflow with a `FAILED`
    /// outcome; cancellation compensates and ends the workflow cancelled.
    #[run(name = ORDER_WORKFLOW_TYPE)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<OrderOutcome> {
        let input = ctx.state(|s| s.input.clone());
        // Decided once, before the first command. (Asked later, right after
        // a local activity, the answer could be taken during replay before
        // the SDK has seen the marker.) `local-charge-v1` implies all the
        // earlier patches: a saga with it records no other marker (each
        // marker costs the history a `TemporalChangeVersion` upsert). The
        // build before these changes (the `previous-build` feature, which
        // only the upgrade test builds) does not know the newer patches.
        let local_charge = cfg!(not(feature = "previous-build")) && ctx.patched(LOCAL_CHARGE_PATCH);
        let (generation, durable_cancel, finish_db_steps, later) = if local_charge {
            let later = outcomes::Patches {
                gateway_outcomes: true,
                checkout_deadline: true,
                quiet_completion: true,
            };
            (Generation::Outbox, true, true, later)
        } else {
            let generation = if ctx.patched(OUTBOX_PATCH) {
                Generation::Outbox
            } else if ctx.patched(NOTIFICATIONS_PATCH) {
                Generation::ChildWorkflows
            } else {
                Generation::Original
            };
            let durable_cancel = ctx.patched(DURABLE_CANCEL_PATCH);
            let finish_db_steps = ctx.patched(FINISH_DB_STEPS_PATCH);
            let later = outcomes::Patches {
                gateway_outcomes: ctx.patched(GATEWAY_OUTCOMES_PATCH),
                checkout_deadline: ctx.patched(CHECKOUT_DEADLINE_PATCH),
                quiet_completion: ctx.patched(QUIET_COMPLETION_PATCH),
            };
            (generation, durable_cancel, finish_db_steps, later)
        };
        let parking = local_charge || ctx.patched(COMPENSATION_PARKING_PATCH);
        let confirmation_stands = local_charge || ctx.patched(CONFIRMATION_STANDS_PATCH);
        let payment_attribute = local_charge
            || (cfg!(not(feature = "previous-build")) && ctx.patched(PAYMENT_STATUS_PATCH));
        let spending_limit = local_charge
            || (cfg!(not(feature = "previous-build")) && ctx.patched(SPENDING_LIMIT_PATCH));
        // Asked in every saga after the block above, so a new saga records
        // it next to `local-charge-v1`.
        let partial_availability =
            cfg!(not(feature = "previous-build")) && ctx.patched(PARTIAL_AVAILABILITY_PATCH);
        ctx.state_mut(|s| {
            s.generation = generation;
            s.durable_cancel = durable_cancel;
            s.finish_db_steps = finish_db_steps;
            s.later = later;
            s.parking = parking;
            s.confirmation_stands = confirmation_stands;
            s.payment_attribute = payment_attribute;
            s.spending_limit = spending_limit;
            s.local_charge = local_charge;
            s.partial_availability = partial_availability;
        });
        let mut undo = Vec::new();
        let forward = Self::forward(ctx, &input, &mut undo).await;
        let forward = forward.map_err(|stop| Self::lost_task(ctx, &input, &mut undo, stop));
        let stop = match forward {
            Ok(()) => match Self::confirm(ctx, &input).await? {
                Ok(outcome) => {
                    Self::quiet_completion(ctx).await;
                    return Ok(outcome);
                }
                // The database says the order already failed: undo what this
                // run did and end with the stored reason.
                Err(reason) => Stop::Business(reason),
            },
            Err(stop) => stop,
        };
        let stop = Self::cancel_wins(ctx, stop);
        if let Stop::Business(FailureReason::Cancelled { .. }) = &stop {
            Self::cancel_made_durable(ctx).await;
        }
        let why = match &stop {
            Stop::Business(reason) => reason.to_string(),
            Stop::Cancelled(message) => FailureReason::Cancelled {
                message: message.clone(),
            }
            .to_string(),
            Stop::Broken(_) | Stop::Terminated(_) => "the saga stopped".to_string(),
        };
        let stop = match Self::confirmation_stands(ctx, &input, &undo, stop).await? {
            Ok(confirmed) => return Ok(confirmed),
            Err(stop) => stop,
        };
        let unwound = Self::compensate(ctx, &input, &undo, &why).await?;
        let (reason, fault) = match Self::failure_of(ctx, stop) {
            Ok(failure) => failure,
            // Before `gateway-outcomes-v1` a fault ended the workflow
            // without failing the order; what is parked still waits.
            Err(end) => {
                Self::attend(ctx, &input, unwound.parked, &why).await?;
                return Err(end);
            }
        };
        let cancelled = matches!(reason, FailureReason::Cancelled { .. });
        let email = input.failed_email(&reason, unwound.refunded);
        let outgoing = Self::for_outbox(ctx, email.clone().map(Outgoing::Email));
        Self::fail(ctx, &input, &reason, outgoing).await?;
        Self::notify_by_child(ctx, email).await?;
        // The order is FAILED (and shows so); what is parked waits for an
        // operator, with the saga open to act on the decision.
        let refunded = Self::attend(ctx, &input, unwound.parked, &why).await? || unwound.refunded;
        Self::quiet_completion(ctx).await;
        if let Some(fault) = fault {
            return Err(fault);
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
                    || s.step.past_point_of_no_return()
            })
            .await;
        ctx.state(|s| s.view.approval_url.clone())
    }

    /// Refuses `CancelOrder` once the order is past the point of no return.
    /// An order awaiting the customer's decision on an amendment
    /// (`ACTION_REQUIRED`, only under `partial-availability-v1`) may be
    /// cancelled until the amendment is accepted.
    #[update_validator(cancel_order)]
    fn validate_cancel(
        &self,
        _ctx: &WorkflowContextView,
        _reason: &String,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let open = match self.view.status {
            OrderStatus::Pending => true,
            OrderStatus::ActionRequired => !self.accepted,
            OrderStatus::Confirmed | OrderStatus::Failed => false,
        };
        if !open || self.step.past_point_of_no_return() {
            return Err(format!(
                "order {} can no longer be cancelled (status {}, step {})",
                self.view.order_id, self.view.status, self.step
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

    /// Refuses `AcceptAmendment` unless the saga awaits the customer's
    /// decision on an amendment (or it is accepted already: a repeat).
    #[update_validator(accept_amendment)]
    fn validate_accept(
        &self,
        _ctx: &WorkflowContextView,
        _by: &String,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let awaiting = self.step == SagaStep::AwaitDecision && self.cancel_requested.is_none();
        if !awaiting && !self.accepted {
            return Err(format!(
                "order {} is not awaiting a decision on an amendment (status {}, step {})",
                self.view.order_id, self.view.status, self.step
            )
            .into());
        }
        Ok(())
    }

    /// `AcceptAmendment`: the customer takes the amended order; the saga
    /// refunds the missing lines and goes on. A repeat changes nothing.
    #[update(name = handler::ACCEPT_AMENDMENT)]
    pub fn accept_amendment(&mut self, _ctx: &mut SyncWorkflowContext<Self>, _by: String) {
        self.accepted = true;
    }

    /// Refuses `RetryCompensation` unless a compensation is parked.
    #[update_validator(retry_compensation)]
    fn validate_retry(
        &self,
        _ctx: &WorkflowContextView,
        _note: &OperatorNote,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.awaiting_operator()
    }

    /// `RetryCompensation`: runs the parked compensations again (once the
    /// cause of the refusal is fixed); one refused again is parked again.
    #[update(name = handler::RETRY_COMPENSATION)]
    pub fn retry_compensation(&mut self, _ctx: &mut SyncWorkflowContext<Self>, note: OperatorNote) {
        self.operator = Some(OperatorAction::Retry(note));
    }

    /// Refuses `CloseAttention` unless a compensation is parked.
    #[update_validator(close_attention)]
    fn validate_close(
        &self,
        _ctx: &WorkflowContextView,
        _note: &OperatorNote,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.awaiting_operator()
    }

    /// `CloseAttention`: the parked compensations are closed with the
    /// operator's reason (e.g. refunded by hand); the saga ends.
    #[update(name = handler::CLOSE_ATTENTION)]
    pub fn close_attention(&mut self, _ctx: &mut SyncWorkflowContext<Self>, note: OperatorNote) {
        self.operator = Some(OperatorAction::Close(note));
    }
}

impl OrderWorkflow {
    fn set_step(&mut self, step: SagaStep) {
        self.step = step;
        self.view.step = step.to_string();
    }

    fn step(ctx: &mut WorkflowContext<Self>, step: SagaStep) {
        ctx.state_mut(|s| s.set_step(step));
        ctx.set_current_details(format!("step: {step}"));
    }

    fn record(ctx: &mut WorkflowContext<Self>, event: OrderEvent) {
        ctx.state_mut(|s| s.view.events.push(event));
    }

    /// The payment's status in the live view and, once decided (not
    /// `PENDING`), in the `PaymentStatus` search attribute. Under
    /// `local-charge-v1` a status decided before the order ends waits for
    /// its end ([`OrderWorkflow::finish`]), which upserts it with
    /// `OrderStatus` in one command; a later one (an operator's retried
    /// refund) is upserted at once.
    fn set_payment(ctx: &mut WorkflowContext<Self>, status: PaymentStatus) {
        ctx.state_mut(|s| s.view.payment_status = Some(status));
        if !ctx.state(|s| s.payment_attribute) || status == PaymentStatus::Pending {
            return;
        }
        if ctx.state(|s| s.local_charge && !s.ended) {
            ctx.state_mut(|s| s.payment_attribute_due = Some(status));
        } else {
            ctx.upsert_search_attributes([PAYMENT_STATUS_ATTR.value_set(status.to_string())]);
        }
    }

    /// The messages a step commits to the outbox: all of them in the
    /// outbox generation, none before it.
    fn for_outbox(
        ctx: &WorkflowContext<Self>,
        messages: impl IntoIterator<Item = Outgoing>,
    ) -> Vec<Outgoing> {
        if ctx.state(|s| s.generation) == Generation::Outbox {
            messages.into_iter().collect()
        } else {
            Vec::new()
        }
    }

    async fn forward(
        ctx: &mut WorkflowContext<Self>,
        input: &OrderInput,
        undo: &mut Vec<Compensation>,
    ) -> Result<(), Stop> {
        let order_id = input.order_id;
        Self::step(ctx, SagaStep::PlaceOrder);
        // A checkout order's "received" email carries the approval link:
        // it is committed with the link (OpenPayment), not here.
        let outgoing = match input.payment {
            PaymentMode::Checkout(_) => Vec::new(),
            PaymentMode::Simulated => {
                Self::for_outbox(ctx, input.received_email(None).map(Outgoing::Email))
            }
        };
        // Detached: even an order cancelled at once is stored first, so its
        // cancellation has an order to be recorded against.
        ctx.execute_local_activity(
            OrderContract::place_order,
            PlaceOrderInput {
                order: input.clone(),
                outgoing,
            },
            db_step("PlaceOrder", detached()),
        )
        .await
        .map_err(|e| Self::classify(ctx, e))?;
        Self::record(ctx, OrderEvent::OrderPlaced);
        Self::notify_by_child(ctx, input.received_email(None))
            .await
            .map_err(Stop::Terminated)?;
        Self::cancelled(ctx)?;

        if ctx.state(|s| s.spending_limit) {
            Self::reserve_spending(ctx, input, undo).await?;
        }

        Self::step(ctx, SagaStep::ProcessPayment);
        Self::set_payment(ctx, PaymentStatus::Pending);
        match input.payment {
            PaymentMode::Checkout(timing) => {
                Self::checkout_payment(ctx, input, timing, undo).await?
            }
            PaymentMode::Simulated => Self::charge(ctx, input, undo).await?,
        }
        Self::set_payment(ctx, PaymentStatus::Captured);
        Self::record(ctx, OrderEvent::PaymentProcessed);
        Self::cancelled(ctx)?;

        Self::step(ctx, SagaStep::ProcessInventory);
        undo.push(Compensation::ReleaseInventory);
        // Only checkout orders can give part of their payment back.
        let amendable = ctx.state(|s| s.partial_availability)
            && matches!(input.payment, PaymentMode::Checkout(_));
        let stocked = if amendable {
            Self::process_inventory_amendable(ctx, input)
                .await
                .map(Some)
        } else {
            ctx.execute_local_activity(
                OrderContract::process_inventory,
                order_id,
                db_step("ProcessInventory", Self::db_step_token(ctx)),
            )
            .await
        };
        let processed = match stocked {
            Ok(processed) => processed,
            Err(e) => {
                let stop = Self::classify(ctx, e);
                if let Stop::Business(reason) = &stop {
                    // Short, or refused because the order already failed:
                    // the deduction was all-or-nothing, nothing to release.
                    undo.pop();
                    if matches!(reason, FailureReason::OutOfStock { .. }) {
                        Self::record(ctx, OrderEvent::InventoryProcessFailed);
                    }
                }
                return Err(stop);
            }
        };
        let amendment = processed.as_ref().and_then(|p| p.amendment.clone());
        match amendment {
            // Some lines are short: the customer decides.
            Some(amendment) => Self::await_decision(ctx, input, amendment).await?,
            None => Self::record(ctx, OrderEvent::InventoryProcessed),
        }
        // MonitorLowStock raised these in the deduction's own transaction,
        // and committed their emails to the outbox with them; sagas of the
        // child-workflow generation start an email workflow per alert.
        // (Histories from before alerts were reported carry none here.)
        for alert in processed.map(|p| p.low_stock_alerts).unwrap_or_default() {
            Self::notify_by_child(ctx, Some(Notification::LowStock(alert)))
                .await
                .map_err(Stop::Terminated)?;
        }
        Self::cancelled(ctx)
    }

    /// `local-charge-v1`, simulated: the forward path runs in one workflow
    /// task, and a task whose completion was lost (the worker died, or the
    /// server refused it for a cancel or signal that arrived meanwhile) is
    /// run again from the start. What its lost attempt did is not in the
    /// history: when the rerun stops early, any later step may have been
    /// done (a capture, a deduction). So every forward step's compensation
    /// is registered; each finds nothing to undo when nothing was done.
    /// Not after a step's own outcome, which the lost attempt met as well:
    /// a declined charge (the gateway's booked answer for the transaction),
    /// a spending limit (the stored decision), missing stock (the deduction
    /// is all or nothing, and one already made is found).
    fn lost_task(
        ctx: &WorkflowContext<Self>,
        input: &OrderInput,
        undo: &mut Vec<Compensation>,
        stop: Stop,
    ) -> Stop {
        let applies = ctx.state(|s| s.local_charge) && input.payment == PaymentMode::Simulated;
        let own_outcome = matches!(
            &stop,
            Stop::Business(
                FailureReason::PaymentDeclined { .. }
                    | FailureReason::SpendingLimitExceeded { .. }
                    | FailureReason::OutOfStock { .. }
            )
        );
        if !applies || own_outcome {
            return stop;
        }
        let spending = ctx.state(|s| s.spending_limit);
        let steps = [
            spending.then_some(Compensation::ReleaseSpending),
            Some(Compensation::RefundPayment),
            Some(Compensation::ReleaseInventory),
        ];
        for c in steps.into_iter().flatten() {
            if !undo.contains(&c) {
                undo.push(c);
            }
        }
        stop
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

    /// The cancellation token of a forward database step whose effect a
    /// compensation must see (`ProcessInventory`, `OpenPayment`). With the
    /// workflow's own token a cancel resolves the local activity at once
    /// (the SDK's `TryCancel`) while its transaction may still commit: the
    /// release then finds nothing and the deduction lands on a FAILED order
    /// (issue 11, defect 3). Detached, the step runs to its end and the
    /// checkpoint right after it sees the cancel, with the effect recorded.
    /// The steps take milliseconds, so the cancel waits no longer than that.
    fn db_step_token(ctx: &WorkflowContext<Self>) -> Option<WorkflowCancellationToken> {
        if ctx.state(|s| s.finish_db_steps) {
            detached()
        } else {
            None
        }
    }

    fn workflow_cancelled(ctx: &WorkflowContext<Self>) -> Stop {
        Stop::Cancelled(ctx.cancellation_token().reason().unwrap_or_default())
    }

    fn classify(ctx: &WorkflowContext<Self>, err: ActivityExecutionError) -> Stop {
        let token = ctx.cancellation_token();
        if token.is_cancelled() || err.as_cancelled().is_some() {
            return Stop::Cancelled(token.reason().unwrap_or_default());
        }
        match business_reason(&err) {
            Some(reason) => Stop::Business(reason),
            None => Stop::Broken(Box::new(err)),
        }
    }
}
