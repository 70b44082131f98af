//! The saga's activities, one per domain command, each idempotent. The
//! checkout payment mode has its own (`CreateCheckout`, `OpenPayment`,
//! `GetCheckout`, `CapturePayment`, `SettlePayment`, `VoidPayment`,
//! `RefundCheckout`) over the [`CheckoutGateway`] port.
//!
//! Each implements its contract in [`ordersaga_domain::contracts::order`]
//! (`#[activity(definition = ..)]`: the name, input and output the workflow
//! calls are checked at compile time).
//!
//! Business outcomes (`PaymentDeclined`, `OutOfStock`, and a gateway's
//! refusal or missing configuration as an internal [`FailureReason`]) are
//! non-retryable application failures with the [`FailureReason`] as
//! details; store and transient gateway errors are retryable and follow the
//! workflow's retry policy.
//!
//! The business counters count state changes, not executions: a step's
//! local activity runs again when its workflow task is retried, and only
//! the run whose guarded write changed the row counts.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ordersaga_domain::contracts::order::{
    self as contract, AmendableInventoryInput, CheckoutInput, ConfirmOrderInput, FailOrderInput,
    GatewayPaymentInput, InventoryProcessed, OpenPaymentInput, PaymentInput, PlaceOrderInput,
    RefundAmendmentInput, SettleInput, Settlement,
};
use ordersaga_domain::names::{activity, failure};
use ordersaga_domain::{
    DEFAULT_AMENDMENT_DEADLINE_SECS, FailureReason, InternalCode, Money, OrderId, OrderStatus,
    Outgoing, PartialAvailability,
};
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use crate::gateway::checkout::{
    CaptureOutcome, CheckoutError, CheckoutGateway, CheckoutOrder, CheckoutRequest, GatewayOrderId,
    OrderSnapshot, RefundOutcome, VoidOutcome,
};
use crate::gateway::{ChargeOutcome, ChargeRefund, ChargeRequest, GatewayError, PaymentGateway};
use crate::metrics::BusinessMetrics;
use ordersaga_store::{Deducted, DeductedStock, PaymentLink, Store, StoreError};

/// How often a long gateway call tells Temporal it is still alive; well
/// under the workflow's heartbeat timeout, so a dead worker is noticed fast.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// The key of an accepted amendment's partial refund: one per order (its
/// transaction names the payment).
pub const AMENDMENT_REFUND_KEY: &str = "amendment";

/// The saga's activities and what they need: the store and the gateways
/// (the simulated charge, and the checkout gateway when configured).
pub struct OrderActivities {
    store: Store,
    gateway: Arc<dyn PaymentGateway>,
    checkout: Option<Arc<dyn CheckoutGateway>>,
    /// The web shop's base URL: the gateway sends the buyer back to the
    /// order's page there after approving or cancelling.
    shop_url: Option<String>,
    metrics: BusinessMetrics,
    /// What `ProcessInventoryAmendable` does with a partial shortage
    /// (`ORDERSAGA_PARTIAL_AVAILABILITY`), and the customer's time to decide
    /// (`ORDERSAGA_AMENDMENT_DEADLINE_SECS`). Read here, in an activity,
    /// so the saga gets them in the step's recorded result: a replay on a
    /// worker configured otherwise waits for the same deadline.
    partial: (PartialAvailability, u64),
}

impl OrderActivities {
    /// Activities over this store and gateway, recording no metrics.
    pub fn new(store: Store, gateway: Arc<dyn PaymentGateway>) -> Self {
        Self {
            store,
            gateway,
            checkout: None,
            shop_url: None,
            metrics: BusinessMetrics::noop(),
            partial: (
                PartialAvailability::default(),
                DEFAULT_AMENDMENT_DEADLINE_SECS,
            ),
        }
    }

    /// What a partial shortage does, and how long the customer has to
    /// decide on the amended order.
    pub fn with_partial_availability(
        mut self,
        policy: PartialAvailability,
        deadline_secs: u64,
    ) -> Self {
        self.partial = (policy, deadline_secs);
        self
    }

    /// Serves checkout-mode payments through `checkout`.
    pub fn with_checkout(mut self, checkout: Arc<dyn CheckoutGateway>) -> Self {
        self.checkout = Some(checkout);
        self
    }

    /// Sends checkout buyers back to the web shop at `url` (its base,
    /// e.g. `http://127.0.0.1:8080`): `<url>/shop/orders/<order id>` once
    /// they approved, with `?payment=cancelled` when they cancelled.
    pub fn with_shop_url(mut self, url: Option<String>) -> Self {
        self.shop_url = url.map(|u| u.trim_end_matches('/').to_string());
        self
    }

    /// The checkout gateway. A worker without one fails the checkout order
    /// at once (`GATEWAY_NOT_CONFIGURED`) and says so in its log, rather
    /// than retrying it for days: a fleet serves checkout orders only with
    /// the gateway configured on every `orders` worker.
    fn checkout(&self) -> Result<&dyn CheckoutGateway, ActivityError> {
        self.checkout.as_deref().ok_or_else(|| {
            tracing::error!(
                "a checkout order reached a worker without a checkout gateway: set ORDERSAGA_PAYPAL_BASE_URL on every orders worker"
            );
            business_failure(
                failure::GATEWAY_NOT_CONFIGURED,
                FailureReason::Internal {
                    code: InternalCode::GatewayNotConfigured,
                    message: "the worker has no checkout gateway".to_string(),
                },
            )
        })
    }

    /// Records business counters on `metrics` (the worker's meter).
    pub fn with_metrics(mut self, metrics: BusinessMetrics) -> Self {
        self.metrics = metrics;
        self
    }
}

pub(crate) fn business_failure(type_name: &str, reason: FailureReason) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(reason.to_string())
            .type_name(type_name.to_string())
            .non_retryable(true)
            .details(reason)
            .build(),
    )
}

/// A step that found its order already failed: refuses with the stored
/// reason, which the saga follows (it compensates and ends with it).
pub(crate) fn already_failed(reason: FailureReason) -> ActivityError {
    business_failure(failure::ORDER_ALREADY_FAILED, reason)
}

pub(crate) fn store_failure(e: StoreError) -> ActivityError {
    match e {
        // The workflow created the order first; its absence is a bug that
        // retrying cannot fix.
        StoreError::OrderNotFound(_) => ActivityError::application(
            ApplicationFailure::builder(e.to_string())
                .type_name(failure::ORDER_NOT_FOUND.to_string())
                .non_retryable(true)
                .build(),
        ),
        other => other.into(),
    }
}

fn gateway_failure(e: GatewayError) -> ActivityError {
    e.into()
}

/// Transient failures and unknown outcomes are retried (the retry asks the
/// gateway first); refusals are final, and carry the order's outcome: an
/// internal failure naming the gateway's answer (refused credentials are a
/// configuration fault).
fn checkout_failure(e: CheckoutError) -> ActivityError {
    if e.is_retryable() {
        return e.into();
    }
    let (type_name, code) = match e {
        CheckoutError::Unauthorized => (
            failure::GATEWAY_NOT_CONFIGURED,
            InternalCode::GatewayNotConfigured,
        ),
        _ => (failure::GATEWAY_REJECTED, InternalCode::GatewayRejected),
    };
    tracing::warn!(error = %e, %code, "the checkout gateway refused for good");
    business_failure(
        type_name,
        FailureReason::Internal {
            code,
            message: e.to_string(),
        },
    )
}

/// Test hook: with `ORDERSAGA_CRASH_AFTER=<step>` the worker process dies
/// (abort, as abrupt as SIGKILL) right after `<step>` committed its effects
/// and before Temporal hears of it: the window recovery must cover. Only the
/// crash tests set it.
fn crash_point(step: &str) {
    if std::env::var("ORDERSAGA_CRASH_AFTER").is_ok_and(|v| v == step) {
        tracing::error!(step, "ORDERSAGA_CRASH_AFTER: aborting the worker");
        std::process::abort();
    }
}

/// Runs `fut`, heartbeating meanwhile, so a worker that dies during a slow
/// external call is detected after the heartbeat timeout, not the much
/// longer start-to-close timeout.
pub(crate) async fn with_heartbeats<F: Future>(ctx: &ActivityContext, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    loop {
        tokio::select! {
            out = &mut fut => return out,
            _ = tick.tick() => {
                // A heartbeat that cannot be encoded is not worth failing a payment.
                let _ = ctx.record_heartbeat(()).await;
            }
        }
    }
}

impl OrderActivities {
    /// What an amendable deduction that went through left: the order's
    /// low-stock alerts and its allocation, read back (that deduction
    /// reports only its decision).
    async fn processed(
        &self,
        order_id: &OrderId,
        amendment: Option<ordersaga_domain::Amendment>,
    ) -> Result<InventoryProcessed, ActivityError> {
        let stock = self
            .store
            .stock()
            .deducted(order_id)
            .await
            .map_err(store_failure)?;
        Ok(inventory_processed(stock, amendment))
    }

    /// The reason the store holds for an order a step found ended. An order
    /// that ended otherwise (confirmed) is not a business outcome of this
    /// step: a bug, reported as such.
    async fn stored_failure(&self, order_id: &OrderId) -> Result<FailureReason, ActivityError> {
        stored_failure(&self.store, order_id).await
    }
}

/// `InventoryProcessed` from what a deduction left.
fn inventory_processed(
    stock: DeductedStock,
    amendment: Option<ordersaga_domain::Amendment>,
) -> InventoryProcessed {
    InventoryProcessed {
        low_stock_alerts: stock.low_stock_alerts,
        allocations: stock.allocations,
        amendment,
    }
}

/// The reason the store holds for an order a step found ended; see
/// [`OrderActivities::stored_failure`].
pub(crate) async fn stored_failure(
    store: &Store,
    order_id: &OrderId,
) -> Result<FailureReason, ActivityError> {
    store
        .orders()
        .failure(order_id)
        .await
        .map_err(store_failure)?
        .ok_or_else(|| {
            ActivityError::application(
                ApplicationFailure::builder(format!("order {order_id} is not pending"))
                    .type_name(failure::ORDER_NOT_FOUND.to_string())
                    .non_retryable(true)
                    .build(),
            )
        })
}

impl OrderActivities {
    /// `ProcessInventory`'s all-or-nothing deduction (also
    /// `ProcessInventoryAmendable` under the `fail` policy).
    async fn deduct_all(
        &self,
        order_id: OrderId,
    ) -> Result<Option<InventoryProcessed>, ActivityError> {
        let deducted = match self.store.stock().deduct(&order_id).await {
            Ok(deducted) => deducted,
            Err(StoreError::OrderEnded { .. }) => {
                let reason = self.stored_failure(&order_id).await?;
                tracing::warn!(%order_id, %reason, "ProcessInventory refused: the order already failed");
                return Err(already_failed(reason));
            }
            Err(e) => return Err(store_failure(e)),
        };
        crash_point(activity::PROCESS_INVENTORY);
        match deducted {
            Ok(stock) => {
                let processed = inventory_processed(stock, None);
                tracing::info!(%order_id, alerts = processed.low_stock_alerts.len(), warehouses = processed.allocations.len(), "InventoryProcessed");
                Ok(Some(processed))
            }
            Err(shortage) => {
                tracing::info!(%order_id, sku = %shortage.sku, "InventoryProcessFailed");
                Err(business_failure(failure::OUT_OF_STOCK, shortage.into()))
            }
        }
    }
}

#[activities]
impl OrderActivities {
    /// `PlaceOrder`: the order is stored `PENDING`; `OrderPlaced`.
    #[activity(definition = contract::PlaceOrder)]
    pub async fn place_order(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: PlaceOrderInput,
    ) -> Result<(), ActivityError> {
        let order = input.order;
        let created = self
            .store
            .orders()
            .place(&order, &input.outgoing)
            .await
            .map_err(store_failure)?;
        if created {
            self.metrics.order_placed();
        }
        tracing::info!(order_id = %order.order_id, created, "OrderPlaced");
        Ok(())
    }

    /// `ProcessPayment`: creates the payment `PENDING` with the order's
    /// `transactionId` and charges it; `PaymentProcessed`, or
    /// `PaymentProcessFailed` and a `PaymentDeclined` failure.
    #[activity(definition = contract::ProcessPayment)]
    pub async fn process_payment(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: PaymentInput,
    ) -> Result<(), ActivityError> {
        // No money is taken for an order that has already failed: the
        // payment is created only while the order is pending. (One failed
        // right after is caught by `ConfirmOrder`, and refunded by the
        // saga's compensation.)
        let Some(payment) = self
            .store
            .payments()
            .ensure(&input.order_id, &input.transaction_id, input.amount)
            .await
            .map_err(store_failure)?
        else {
            let reason = self.stored_failure(&input.order_id).await?;
            tracing::warn!(order_id = %input.order_id, %reason, "ProcessPayment refused: the order already failed");
            return Err(already_failed(reason));
        };
        let decline = match payment.status {
            ordersaga_domain::PaymentStatus::Pending => {
                let request = ChargeRequest {
                    transaction_id: input.transaction_id,
                    amount: input.amount,
                };
                let asked = Instant::now();
                let outcome = with_heartbeats(&ctx, self.gateway.charge(&request)).await;
                self.metrics.payment_waited(asked.elapsed());
                let outcome = outcome.map_err(gateway_failure)?;
                let reason = match &outcome {
                    ChargeOutcome::Captured => None,
                    ChargeOutcome::Declined { reason } => Some(reason.as_str()),
                };
                let recorded = self
                    .store
                    .payments()
                    .record_outcome(&input.order_id, reason.map_or(Ok(()), Err))
                    .await
                    .map_err(store_failure)?;
                recorded.decline_reason.filter(|_| reason.is_some())
            }
            ordersaga_domain::PaymentStatus::Declined => {
                Some(payment.decline_reason.unwrap_or_default())
            }
            // Captured by an earlier attempt (or already refunded): done.
            _ => None,
        };
        match decline {
            None => {
                tracing::info!(order_id = %input.order_id, transaction_id = %input.transaction_id, "PaymentProcessed");
                Ok(())
            }
            Some(message) => {
                tracing::info!(order_id = %input.order_id, transaction_id = %input.transaction_id, %message, "PaymentProcessFailed");
                Err(business_failure(
                    failure::PAYMENT_DECLINED,
                    FailureReason::PaymentDeclined { message },
                ))
            }
        }
    }

    /// `ProcessInventory`: deducts stock for every line, all or nothing,
    /// from the warehouses the allocation policy picks; `InventoryProcessed`
    /// with the allocation (one entry per warehouse), or
    /// `InventoryProcessFailed` and an `OutOfStock` failure.
    #[activity(definition = contract::ProcessInventory)]
    pub async fn process_inventory(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: OrderId,
    ) -> Result<Option<InventoryProcessed>, ActivityError> {
        self.deduct_all(order_id).await
    }

    /// `ProcessInventoryAmendable` (`partial-availability-v1`): under the
    /// `fail` policy exactly `ProcessInventory`; under `ask`, when some
    /// products are short and others are not, the served lines are
    /// deducted and held, the order becomes `ACTION_REQUIRED` with the
    /// proposed amendment (and its email) and `OrderAmended`, and the
    /// amendment is returned with the deadline setting.
    #[activity(definition = contract::ProcessInventoryAmendable)]
    pub async fn process_inventory_amendable(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: AmendableInventoryInput,
    ) -> Result<InventoryProcessed, ActivityError> {
        let order = input.order;
        let order_id = order.order_id;
        let (policy, deadline_secs) = self.partial;
        if policy == PartialAvailability::Fail {
            let processed = self.deduct_all(order_id).await?;
            return Ok(processed.unwrap_or(InventoryProcessed {
                low_stock_alerts: Vec::new(),
                allocations: Vec::new(),
                amendment: None,
            }));
        }
        let email = |amendment: &ordersaga_domain::Amendment| -> Vec<Outgoing> {
            order
                .amended_email(amendment)
                .map(Outgoing::Email)
                .into_iter()
                .collect()
        };
        let deducted = match self
            .store
            .stock()
            .deduct_amendable(&order, deadline_secs, email)
            .await
        {
            Ok(deducted) => deducted,
            Err(StoreError::OrderEnded { .. }) => {
                let reason = self.stored_failure(&order_id).await?;
                tracing::warn!(%order_id, %reason, "ProcessInventory refused: the order already failed");
                return Err(already_failed(reason));
            }
            Err(e) => return Err(store_failure(e)),
        };
        crash_point(activity::PROCESS_INVENTORY);
        let amendment = match deducted {
            Deducted::Full => None,
            Deducted::Amended(amendment) => Some(amendment),
            Deducted::Short(shortage) => {
                tracing::info!(%order_id, sku = %shortage.sku, "InventoryProcessFailed");
                return Err(business_failure(failure::OUT_OF_STOCK, shortage.into()));
            }
        };
        let processed = self.processed(&order_id, amendment).await?;
        match &processed.amendment {
            Some(a) => {
                tracing::info!(%order_id, missing = a.missing.len(), refund = %a.refund, "OrderAmended")
            }
            None => {
                tracing::info!(%order_id, alerts = processed.low_stock_alerts.len(), warehouses = processed.allocations.len(), "InventoryProcessed")
            }
        }
        Ok(processed)
    }

    /// `RefundAmendment`: the accepted amendment's missing lines are
    /// refunded as part of the order's capture, once (the gateway key is
    /// per order: `{transactionId}-partial-refund-amendment`), then
    /// recorded (`AmendmentAccepted`, `PaymentPartiallyRefunded`). Returns
    /// the amount refunded.
    #[activity(definition = contract::RefundAmendment)]
    pub async fn refund_amendment(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: RefundAmendmentInput,
    ) -> Result<Money, ActivityError> {
        let checkout = self.checkout()?;
        let refund = async {
            let order = checkout.get_order(&input.gateway_order_id).await?;
            let Some(capture) = order.capture else {
                return Err(CheckoutError::NotFound {
                    operation: "partial-refund",
                    what: "capture".to_string(),
                });
            };
            checkout
                .refund_part(
                    &capture.id,
                    &input.transaction_id,
                    &input.amount,
                    AMENDMENT_REFUND_KEY,
                )
                .await
        };
        let outcome = with_heartbeats(&ctx, refund)
            .await
            .map_err(checkout_failure)?;
        if outcome == RefundOutcome::NothingCaptured {
            return Err(checkout_failure(CheckoutError::NotFound {
                operation: "partial-refund",
                what: "capture".to_string(),
            }));
        }
        let recorded = self
            .store
            .amendments()
            .accept(&input.order_id, input.amount)
            .await
            .map_err(store_failure)?;
        tracing::info!(order_id = %input.order_id, amount = %input.amount, recorded, ?outcome, "PaymentPartiallyRefunded");
        Ok(input.amount)
    }

    /// `ConfirmOrder`: `OrderConfirmed`. Returns the order's status.
    #[activity(definition = contract::ConfirmOrder)]
    pub async fn confirm_order(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ConfirmOrderInput,
    ) -> Result<OrderStatus, ActivityError> {
        let order_id = input.order_id;
        let ended = self
            .store
            .orders()
            .confirm(&order_id, &input.outgoing)
            .await
            .map_err(store_failure)?;
        crash_point(activity::CONFIRM_ORDER);
        let status = ended.status;
        if status == OrderStatus::Failed {
            // Failed by a step this saga no longer remembers (a cancel whose
            // workflow task was lost): the database decides, and the saga
            // compensates what it did since.
            let reason = self.stored_failure(&order_id).await?;
            tracing::warn!(%order_id, %reason, "ConfirmOrder refused: the order already failed");
            return Err(already_failed(reason));
        }
        if ended.changed {
            self.metrics.order_confirmed();
        }
        tracing::info!(%order_id, %status, changed = ended.changed, "OrderConfirmed");
        Ok(status)
    }

    /// `GetOrderStatus`: where the order stands in the shop database, the
    /// arbiter the saga asks before it unwinds.
    #[activity(definition = contract::GetOrderStatus)]
    pub async fn get_order_status(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: OrderId,
    ) -> Result<OrderStatus, ActivityError> {
        let order = self
            .store
            .orders()
            .get(&order_id)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| store_failure(StoreError::OrderNotFound(order_id)))?;
        Ok(order.summary.status)
    }

    /// `FailOrder`: `OrderFailed` with its reason. Returns the order's status.
    #[activity(definition = contract::FailOrder)]
    pub async fn fail_order(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: FailOrderInput,
    ) -> Result<OrderStatus, ActivityError> {
        let ended = self
            .store
            .orders()
            .fail(&input.order_id, &input.reason, &input.outgoing)
            .await
            .map_err(store_failure)?;
        if ended.changed {
            self.metrics.order_failed();
        }
        tracing::info!(order_id = %input.order_id, reason = %input.reason, status = %ended.status, changed = ended.changed, "OrderFailed");
        Ok(ended.status)
    }

    /// Compensation of `ProcessPayment`: refunds the capture, if any;
    /// `PaymentRefunded`. Succeeds when nothing was captured. Returns
    /// whether money was (or had already been) given back.
    #[activity(definition = contract::RefundPayment)]
    pub async fn refund_payment(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: PaymentInput,
    ) -> Result<bool, ActivityError> {
        // Ask the gateway even when our row says PENDING: a charge whose
        // answer was lost may still have captured.
        let outcome = with_heartbeats(&ctx, self.gateway.refund(&input.transaction_id))
            .await
            .map_err(gateway_failure)?;
        let refunded = outcome == ChargeRefund::Refunded;
        if refunded
            && self
                .store
                .payments()
                .record_refund(&input.order_id)
                .await
                .map_err(store_failure)?
        {
            self.metrics.refunded();
        }
        tracing::info!(order_id = %input.order_id, transaction_id = %input.transaction_id, refunded, "RefundPayment");
        Ok(refunded)
    }

    /// Compensation of `ProcessInventory`: puts deducted stock back;
    /// `InventoryReleased`. Succeeds when nothing was deducted.
    #[activity(definition = contract::ReleaseInventory)]
    pub async fn release_inventory(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: OrderId,
    ) -> Result<bool, ActivityError> {
        let released = self
            .store
            .stock()
            .release(&order_id)
            .await
            .map_err(store_failure)?;
        tracing::info!(%order_id, released, "ReleaseInventory");
        Ok(released)
    }
    /// Checkout: creates the gateway order (idempotent by transaction) and
    /// returns the buyer's approval link.
    #[activity(definition = contract::CreateCheckout)]
    pub async fn create_checkout(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: CheckoutInput,
    ) -> Result<CheckoutOrder, ActivityError> {
        let order_page = self
            .shop_url
            .as_ref()
            .map(|shop| format!("{shop}/shop/orders/{}", input.order_id));
        let request = CheckoutRequest {
            transaction_id: input.transaction_id,
            amount: input.amount,
            cancel_url: order_page
                .as_ref()
                .map(|p| format!("{p}?payment=cancelled")),
            return_url: order_page,
            description: Some(format!("Order {}", input.order_id)),
            payer_email: input.payer_email,
        };
        let order = with_heartbeats(&ctx, self.checkout()?.create_order(&request))
            .await
            .map_err(checkout_failure)?;
        tracing::info!(order_id = %input.order_id, gateway_order_id = %order.id, "CreateCheckout");
        Ok(order)
    }

    /// Checkout: the payment `PENDING` with its approval link.
    #[activity(definition = contract::OpenPayment)]
    pub async fn open_payment(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: OpenPaymentInput,
    ) -> Result<(), ActivityError> {
        let link = PaymentLink {
            gateway_order_id: input.checkout.id.to_string(),
            approval_url: input.checkout.approve_url,
        };
        self.store
            .payments()
            .open_checkout(
                &input.order_id,
                &input.transaction_id,
                input.amount,
                &link,
                &input.outgoing,
            )
            .await
            .map_err(store_failure)?;
        Ok(())
    }

    /// Checkout: where the gateway order stands (the reconciliation poll).
    #[activity(definition = contract::GetCheckout)]
    pub async fn get_checkout(
        self: Arc<Self>,
        ctx: ActivityContext,
        id: GatewayOrderId,
    ) -> Result<OrderSnapshot, ActivityError> {
        with_heartbeats(&ctx, self.checkout()?.get_order(&id))
            .await
            .map_err(checkout_failure)
    }

    /// Checkout: captures the approved order. Every attempt asks the gateway
    /// first, so a capture whose answer was lost is found, not repeated.
    #[activity(definition = contract::CapturePayment)]
    pub async fn capture_payment(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: GatewayPaymentInput,
    ) -> Result<CaptureOutcome, ActivityError> {
        let asked = Instant::now();
        let outcome = with_heartbeats(
            &ctx,
            self.checkout()?
                .ensure_captured(&input.gateway_order_id, &input.transaction_id),
        )
        .await;
        self.metrics.payment_waited(asked.elapsed());
        let outcome = outcome.map_err(checkout_failure)?;
        tracing::info!(order_id = %input.order_id, ?outcome, "CapturePayment");
        Ok(outcome)
    }

    /// Checkout: records how the payment ended, once.
    #[activity(definition = contract::SettlePayment)]
    pub async fn settle_payment(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: SettleInput,
    ) -> Result<(), ActivityError> {
        let order_id = input.order_id;
        match &input.settlement {
            Settlement::Captured => {
                self.store
                    .payments()
                    .record_outcome(&order_id, Ok(()))
                    .await
                    .map_err(store_failure)?;
                tracing::info!(%order_id, "PaymentProcessed");
            }
            Settlement::Declined { reason } => {
                self.store
                    .payments()
                    .record_outcome(&order_id, Err(reason))
                    .await
                    .map_err(store_failure)?;
                tracing::info!(%order_id, %reason, "PaymentProcessFailed");
            }
            Settlement::Voided { reason } => {
                self.store
                    .payments()
                    .record_voided(&order_id, reason)
                    .await
                    .map_err(store_failure)?;
                tracing::info!(%order_id, %reason, "PaymentProcessFailed");
            }
        }
        Ok(())
    }

    /// Checkout: makes sure the unapproved gateway order is never captured.
    #[activity(definition = contract::VoidPayment)]
    pub async fn void_payment(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: GatewayPaymentInput,
    ) -> Result<VoidOutcome, ActivityError> {
        let outcome = with_heartbeats(
            &ctx,
            self.checkout()?
                .void(&input.gateway_order_id, &input.transaction_id),
        )
        .await
        .map_err(checkout_failure)?;
        tracing::info!(order_id = %input.order_id, ?outcome, "VoidPayment");
        Ok(outcome)
    }

    /// Checkout compensation: refunds the capture unless it is refunded
    /// already or there is none (asking the gateway first, so a refund
    /// whose answer was lost is not repeated); `PaymentRefunded`. Returns
    /// whether money was (or had already been) given back.
    #[activity(definition = contract::RefundCheckout)]
    pub async fn refund_checkout(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: GatewayPaymentInput,
    ) -> Result<bool, ActivityError> {
        let outcome = with_heartbeats(
            &ctx,
            self.checkout()?
                .ensure_refunded(&input.gateway_order_id, &input.transaction_id),
        )
        .await
        .map_err(checkout_failure)?;
        let refunded = !matches!(outcome, RefundOutcome::NothingCaptured);
        if refunded
            && self
                .store
                .payments()
                .record_refund(&input.order_id)
                .await
                .map_err(store_failure)?
        {
            self.metrics.refunded();
        }
        tracing::info!(order_id = %input.order_id, refunded, "RefundCheckout");
        Ok(refunded)
    }
}
