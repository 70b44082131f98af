//! The API's use cases, independent of transport: validate and price a
//! `PlaceOrder`, start its saga, cancel it, pass the payment gateway's
//! verified webhooks to it, and read orders and products.

use std::collections::HashMap;
use std::time::Duration;

use ordersaga_domain::names::search_attribute;
use ordersaga_domain::{
    CustomerId, EmailAddress, Money, OrderId, OrderInput, OrderLine, OrderStatus, PaymentMode,
    PaymentStatus, ShippingAddress, Sku, TransactionId,
};
use ordersaga_runtime::Secret;
use ordersaga_runtime::auth::{Principal, Role};
use ordersaga_store::ShipmentRecord;
use ordersaga_store::Store;
use ordersaga_store::{OrderQuery, OrderRecord, OrderSummary, PaymentRecord, Product};
use ordersaga_workflows::{EXECUTION_TIMEOUT, OrderWorkflow, WORKFLOW_TASK_TIMEOUT};
use temporalio_client::errors::{
    WorkflowInteractionError, WorkflowStartError, WorkflowUpdateError,
};
use temporalio_client::{
    Client, UntypedWorkflow, WorkflowDescribeOptions, WorkflowExecuteUpdateOptions,
    WorkflowExecutionStatus, WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowStartOptions,
    WorkflowUpdateWithStartOptions,
};
use temporalio_common::search_attributes::{SearchAttributeKey, SearchAttributes};

use crate::access::{
    AMENDMENT_DECIDERS, ANYONE, SHIPMENT_READERS, STAFF, acting_customer, may_see, require,
};
use crate::error::{ApiError, invalid};
use crate::idempotency::{KeyCheck, check_key};
use crate::page::page_request;
use crate::rate::PlaceOrderLimit;

mod emails;
mod webhook;
pub use webhook::{MAX_EVENT_ID, WebhookAck};

/// Most lines one order may have.
pub const MAX_LINES: usize = 100;
/// Most units of one line.
pub const MAX_QUANTITY: i64 = 10_000;
/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// A `PlaceOrder` as it arrives, before validation.
#[derive(Debug, Clone, Default)]
pub struct PlaceOrderCommand {
    /// Who orders: a customer's own id or empty (then the token's subject);
    /// required from an operator.
    pub customer_id: String,
    /// `(sku, quantity)` per line.
    pub lines: Vec<(String, i64)>,
    /// Optional client idempotency key.
    pub idempotency_key: Option<String>,
    /// Where the order's emails go (required).
    pub customer_email: String,
    /// Where the order ships (required), not yet validated.
    pub shipping_address: Option<ShippingAddress>,
}

/// The immediate answer to `PlaceOrder`.
#[derive(Debug, Clone)]
pub struct PlacedOrder {
    /// The order.
    pub order_id: OrderId,
    /// Its payment's transaction id.
    pub transaction_id: TransactionId,
    /// `PENDING`, or the current status when an idempotency key names an
    /// order placed earlier.
    pub status: OrderStatus,
    /// Its total.
    pub total: Money,
    /// Its Temporal workflow id.
    pub workflow_id: String,
    /// Checkout mode: where the customer approves the payment.
    pub approval_url: Option<String>,
}

/// How checkout payments are set up for the orders this API places.
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    /// Simulated or checkout, and the checkout's deadline and poll interval;
    /// carried in every new order's input.
    pub mode: PaymentMode,
    /// How long `PlaceOrder` waits for the approval link before answering
    /// without it (the gateway is slow or down; `GetOrder` shows it later).
    pub link_wait: Duration,
    /// The secret gateway webhooks are signed with; `None`: every webhook
    /// is refused.
    pub webhook_secret: Option<Secret>,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        Self {
            mode: PaymentMode::Simulated,
            link_wait: Duration::from_secs(10),
            webhook_secret: None,
        }
    }
}

/// The approval link of a payment that still waits for the buyer.
pub(crate) fn pending_link(payment: Option<&PaymentRecord>) -> Option<String> {
    payment
        .filter(|p| p.status == PaymentStatus::Pending)
        .and_then(|p| p.approval_url.clone())
}

/// Longest `CancelOrder` reason kept.
pub const MAX_CANCEL_REASON: usize = 500;

/// An order as `GetOrder` shows it: the stored record, or (in the moment
/// between the saga's start and its first step) just its acceptance.
#[derive(Debug, Clone)]
pub enum OrderDetails {
    /// From the store, with the order's shipments once it has them.
    Stored {
        /// The order.
        record: Box<OrderRecord>,
        /// Its shipments, one per warehouse it ships from.
        shipments: Vec<ShipmentRecord>,
    },
    /// Its saga runs but has not stored the order yet: `PENDING`.
    Accepted(OrderId),
}

/// The API's use cases over the store and Temporal.
#[derive(Clone)]
pub struct OrderService {
    pub(crate) store: Store,
    pub(crate) client: Client,
    task_queue: String,
    payment: PaymentSettings,
    limit: PlaceOrderLimit,
}

// ----- contact details and shipping (notifications/shipping services) ------

/// The validated email address and shipping address of a `PlaceOrder`.
fn contact_details(cmd: &PlaceOrderCommand) -> Result<(EmailAddress, ShippingAddress), ApiError> {
    if cmd.customer_email.trim().is_empty() {
        return Err(invalid("customer_email is required"));
    }
    let email = EmailAddress::parse(&cmd.customer_email).map_err(|e| invalid(e.to_string()))?;
    let address = cmd
        .shipping_address
        .clone()
        .ok_or_else(|| invalid("shipping_address is required"))?
        .validate()
        .map_err(|e| invalid(e.to_string()))?;
    Ok((email, address))
}

impl OrderService {
    /// A page of shipping requests, newest first (staff only: they hold
    /// postal addresses).
    pub async fn list_shipments(
        &self,
        caller: &Principal,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<(Vec<ShipmentRecord>, Option<String>), ApiError> {
        require(caller, SHIPMENT_READERS, "list shipments")?;
        let (limit, after) = page_request(page_size, page_token)?;
        let (page, next) = self
            .store
            .shipments()
            .list(limit, after)
            .await
            .map_err(ApiError::internal)?;
        Ok((page, next.map(|c| c.to_token())))
    }
}

// ----- end of contact details and shipping -----------------------------------

impl OrderService {
    /// A service starting sagas on `task_queue`, placing at most what
    /// `limit` lets each customer.
    pub fn new(
        store: Store,
        client: Client,
        task_queue: String,
        payment: PaymentSettings,
        limit: PlaceOrderLimit,
    ) -> Self {
        Self {
            store,
            client,
            task_queue,
            payment,
            limit,
        }
    }

    /// Validates and prices the order, then starts its saga. A customer
    /// orders for itself, an operator for anyone; bad input, a wrong role
    /// and a customer over its rate limit are refused before anything is
    /// started or stored.
    pub async fn place_order(
        &self,
        caller: &Principal,
        cmd: PlaceOrderCommand,
    ) -> Result<PlacedOrder, ApiError> {
        let customer_id =
            acting_customer(caller, &cmd.customer_id, &[Role::Operator], "place orders")?;
        self.limit.check(&customer_id)?;
        let (customer_email, shipping_address) = contact_details(&cmd)?;
        if cmd.lines.is_empty() {
            return Err(invalid("an order needs at least one line"));
        }
        if cmd.lines.len() > MAX_LINES {
            return Err(invalid(format!("an order has at most {MAX_LINES} lines")));
        }
        let key = match cmd.idempotency_key.as_deref() {
            None | Some("") => None,
            Some(k) if k.len() > MAX_IDEMPOTENCY_KEY || k.chars().any(char::is_control) => {
                return Err(invalid(format!(
                    "idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters"
                )));
            }
            Some(k) => Some(k),
        };
        let mut wanted = Vec::with_capacity(cmd.lines.len());
        for (n, (sku, quantity)) in cmd.lines.iter().enumerate() {
            let sku = Sku::parse(sku).map_err(|e| invalid(format!("line {}: {e}", n + 1)))?;
            if !(1..=MAX_QUANTITY).contains(quantity) {
                return Err(invalid(format!(
                    "line {}: quantity must be 1 to {MAX_QUANTITY}, got {quantity}",
                    n + 1
                )));
            }
            wanted.push((sku, *quantity));
        }
        let lines = self.price(wanted).await?;
        let mut total: Option<Money> = None;
        for l in &lines {
            let amount = l
                .unit_price
                .times(l.quantity)
                .map_err(|e| invalid(e.to_string()))?;
            total = Some(match total {
                None => amount,
                Some(t) => t.plus(amount).map_err(|e| invalid(e.to_string()))?,
            });
        }
        let total = total.ok_or_else(|| invalid("an order needs at least one line"))?;
        // Refused here, not at the capture after stock was reserved.
        total
            .check_gateway_limit()
            .map_err(|e| invalid(e.to_string()))?;

        // Random, so nobody can name another customer's order; a key maps
        // to its order in the shop database (`check_key`).
        let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
        let mut input = OrderInput {
            order_id,
            transaction_id: TransactionId::for_order(&order_id),
            customer_id,
            lines,
            total,
            customer_email: Some(customer_email),
            shipping_address: Some(shipping_address),
            payment: self.payment.mode,
        };
        let mut total = input.total;
        if let Some(key) = key {
            match check_key(&self.store, key, &input).await? {
                KeyCheck::Start {
                    order_id,
                    first_total,
                } => {
                    input.order_id = order_id;
                    input.transaction_id = TransactionId::for_order(&order_id);
                    total = first_total;
                }
                KeyCheck::Answer(existing) => return Ok(*existing),
            }
        }
        let order_id = input.order_id;
        crate::spans::record_order(&order_id);
        let workflow_id = order_id.workflow_id();
        // Starting is idempotent too (same workflow id): a retry that races
        // the first call's saga before it stored the order starts nothing.
        let approval_url = match self.payment.mode {
            // Simulated: answer at once; nothing to wait for.
            PaymentMode::Simulated => {
                self.start_saga(&input, &workflow_id).await?;
                None
            }
            PaymentMode::Checkout(_) => self.start_checkout_saga(&input, &workflow_id).await?,
        };
        Ok(PlacedOrder {
            order_id,
            transaction_id: input.transaction_id,
            status: OrderStatus::Pending,
            total,
            workflow_id,
            approval_url,
        })
    }

    /// Prices each line from the catalog; unknown skus are NOT_FOUND.
    async fn price(&self, wanted: Vec<(Sku, i64)>) -> Result<Vec<OrderLine>, ApiError> {
        let mut catalog: HashMap<Sku, Product> = HashMap::new();
        let mut lines = Vec::with_capacity(wanted.len());
        for (sku, quantity) in wanted {
            if !catalog.contains_key(&sku) {
                let product = self
                    .store
                    .catalog()
                    .get(&sku)
                    .await
                    .map_err(ApiError::internal)?
                    .ok_or_else(|| ApiError::NotFound(format!("product {sku} not found")))?;
                catalog.insert(sku.clone(), product);
            }
            let unit_price = catalog.get(&sku).map(|p| p.price).ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("product {sku} vanished while pricing"))
            })?;
            lines.push(OrderLine {
                sku,
                quantity,
                unit_price,
            });
        }
        Ok(lines)
    }

    /// Checkout mode: starts the saga and asks it for the approval link in
    /// one call (update-with-start; the update waits until the gateway
    /// order exists). If that takes longer than `link_wait`, the saga is
    /// still started (idempotently) and the order is answered without the
    /// link.
    async fn start_checkout_saga(
        &self,
        input: &OrderInput,
        workflow_id: &str,
    ) -> Result<Option<String>, ApiError> {
        let (attrs, summary, details) = Self::start_metadata(input);
        let options = WorkflowUpdateWithStartOptions::new(
            self.task_queue.as_str(),
            workflow_id,
            WorkflowIdConflictPolicy::UseExisting,
        )
        .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
        .execution_timeout(EXECUTION_TIMEOUT)
        .task_timeout(WORKFLOW_TASK_TIMEOUT)
        .search_attributes(attrs)
        .static_summary(summary)
        .static_details(details)
        // One id per order: a retried PlaceOrder gets the same answer.
        .update_id(format!("payment-link-{}", input.order_id))
        .build();
        let call = self.client.execute_update_with_start_workflow(
            OrderWorkflow::run,
            input.clone(),
            OrderWorkflow::payment_link,
            (),
            options,
        );
        match tokio::time::timeout(self.payment.link_wait, call).await {
            Ok(Ok(link)) => Ok(link),
            Ok(Err(e)) => Err(ApiError::internal(e)),
            Err(_) => {
                tracing::warn!(order_id = %input.order_id, "approval link not ready in time");
                self.start_saga(input, workflow_id).await?;
                Ok(None)
            }
        }
    }

    fn start_metadata(input: &OrderInput) -> (SearchAttributes, String, String) {
        let attr = |name| SearchAttributeKey::<String>::keyword(name);
        let attrs = SearchAttributes::new([
            attr(search_attribute::ORDER_ID).value_set(input.order_id.to_string()),
            attr(search_attribute::CUSTOMER_ID).value_set(input.customer_id.to_string()),
            attr(search_attribute::ORDER_STATUS).value_set(OrderStatus::Pending.to_string()),
        ]);
        let details = input
            .lines
            .iter()
            .map(|l| format!("{} x {} at {}", l.quantity, l.sku, l.unit_price))
            .collect::<Vec<_>>()
            .join("\n");
        (
            attrs,
            input.summary(),
            format!("transaction {}\n{details}", input.transaction_id),
        )
    }

    async fn start_saga(&self, input: &OrderInput, workflow_id: &str) -> Result<(), ApiError> {
        let (attrs, summary, details) = Self::start_metadata(input);
        let options = WorkflowStartOptions::new(self.task_queue.as_str(), workflow_id)
            // Same order id (same idempotency key) -> the saga already
            // running or finished, never a second one.
            .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
            .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
            .execution_timeout(EXECUTION_TIMEOUT)
            .task_timeout(WORKFLOW_TASK_TIMEOUT)
            .search_attributes(attrs)
            .static_summary(summary)
            .static_details(details)
            .build();
        match self
            .client
            .start_workflow(OrderWorkflow::run, input.clone(), options)
            .await
        {
            Ok(_) | Err(WorkflowStartError::AlreadyStarted { .. }) => Ok(()),
            Err(e) => Err(ApiError::internal(e)),
        }
    }

    /// One order; NOT_FOUND when neither the store nor Temporal knows it,
    /// or when it is another customer's.
    pub async fn get_order(
        &self,
        caller: &Principal,
        order_id: &str,
    ) -> Result<OrderDetails, ApiError> {
        let id = OrderId::parse(order_id).map_err(|e| invalid(e.to_string()))?;
        crate::spans::record_order(&id);
        if let Some(record) = self
            .store
            .orders()
            .get(&id)
            .await
            .map_err(ApiError::internal)?
        {
            if !may_see(caller, &record.summary.customer_id) {
                return Err(not_found(&id));
            }
            let shipments = self
                .store
                .shipments()
                .of_order(&id)
                .await
                .map_err(ApiError::internal)?;
            return Ok(OrderDetails::Stored {
                record: Box::new(record),
                shipments,
            });
        }
        // Started, but its first step has not stored it yet (or no worker
        // has picked it up): Temporal alone knows it. `describe` needs no
        // worker, unlike a query, so this answers even when the fleet is down.
        let handle = self
            .client
            .get_workflow_handle::<UntypedWorkflow>(id.workflow_id());
        match handle.describe(WorkflowDescribeOptions::default()).await {
            Ok(d)
                if d.status() == WorkflowExecutionStatus::Running
                    && saga_owner(&d.search_attributes()).is_some_and(|c| may_see(caller, &c)) =>
            {
                Ok(OrderDetails::Accepted(id))
            }
            Ok(_) | Err(WorkflowInteractionError::NotFound(_)) => Err(not_found(&id)),
            Err(e) => Err(ApiError::internal(e)),
        }
    }

    /// Refuses a customer an order that is not its own (or that does not
    /// exist) with NOT_FOUND, before anything is sent to its saga; staff
    /// pass.
    async fn check_owner(&self, caller: &Principal, id: &OrderId) -> Result<(), ApiError> {
        if caller.role != Role::Customer {
            return Ok(());
        }
        let stored = self
            .store
            .orders()
            .get(id)
            .await
            .map_err(ApiError::internal)?;
        let owner = match stored {
            Some(record) => Some(record.summary.customer_id),
            None => {
                let handle = self
                    .client
                    .get_workflow_handle::<UntypedWorkflow>(id.workflow_id());
                match handle.describe(WorkflowDescribeOptions::default()).await {
                    Ok(d) => saga_owner(&d.search_attributes()),
                    Err(WorkflowInteractionError::NotFound(_)) => None,
                    Err(e) => return Err(ApiError::internal(e)),
                }
            }
        };
        match owner {
            Some(owner) if may_see(caller, &owner) => Ok(()),
            _ => Err(not_found(id)),
        }
    }

    /// `CancelOrder`: asks the order's saga to stop. Refused with
    /// FAILED_PRECONDITION once the order ended or its confirmation began
    /// (the saga's update validator decides, or the database once the saga
    /// is gone), NOT_FOUND for an unknown order. Answers once the saga
    /// accepted; it then unwinds on its own.
    pub async fn cancel_order(
        &self,
        caller: &Principal,
        order_id: &str,
        reason: &str,
    ) -> Result<OrderStatus, ApiError> {
        let id = OrderId::parse(order_id).map_err(|e| invalid(e.to_string()))?;
        crate::spans::record_order(&id);
        self.check_owner(caller, &id).await?;
        let reason = reason.trim();
        if reason.len() > MAX_CANCEL_REASON || reason.chars().any(char::is_control) {
            return Err(invalid(format!(
                "reason must be at most {MAX_CANCEL_REASON} printable characters"
            )));
        }
        let reason = if reason.is_empty() {
            "cancelled by the customer"
        } else {
            reason
        };
        // The saga decides, not the database: a row can say FAILED while its
        // saga runs on (a cancel whose workflow task was lost, issue 11), and
        // only the saga can still refund what it took. The database answers
        // only for an order whose saga is gone.
        let handle = self
            .client
            .get_workflow_handle::<OrderWorkflow>(id.workflow_id());
        let options = WorkflowExecuteUpdateOptions::builder()
            .update_id(format!("cancel-{id}"))
            .build();
        match handle
            .execute_update(OrderWorkflow::cancel_order, reason.to_string(), options)
            .await
        {
            Ok(()) => Ok(OrderStatus::Pending),
            Err(WorkflowUpdateError::Failed(failure)) => {
                Err(ApiError::FailedPrecondition(failure.message))
            }
            Err(WorkflowUpdateError::NotFound(_)) => {
                Err(self.saga_gone(&id, "can no longer be cancelled").await)
            }
            Err(e) => Err(ApiError::internal(e)),
        }
    }

    /// The refusal of an update to an order whose saga is gone: the
    /// database says where it stands ("order X is FAILED and ..."), or
    /// NOT_FOUND when it holds no such order.
    async fn saga_gone(&self, id: &OrderId, refused: &str) -> ApiError {
        match self.store.orders().get(id).await {
            Ok(Some(record)) => ApiError::FailedPrecondition(format!(
                "order {id} is {} and {refused}",
                record.summary.status
            )),
            Ok(None) => not_found(id),
            Err(e) => ApiError::internal(e),
        }
    }

    /// `AcceptAmendment`: the customer takes the amended order its saga
    /// proposed (some lines could not be served). Refused with
    /// FAILED_PRECONDITION unless the saga awaits that decision (its
    /// update validator decides, or the database once the saga is gone;
    /// nothing is written either way); a repeat after accepting is
    /// accepted and changes nothing. NOT_FOUND for an unknown order.
    pub async fn accept_amendment(
        &self,
        caller: &Principal,
        order_id: &str,
    ) -> Result<OrderStatus, ApiError> {
        require(caller, AMENDMENT_DECIDERS, "accept an amended order")?;
        let id = OrderId::parse(order_id).map_err(|e| invalid(e.to_string()))?;
        crate::spans::record_order(&id);
        self.check_owner(caller, &id).await?;
        let handle = self
            .client
            .get_workflow_handle::<OrderWorkflow>(id.workflow_id());
        let options = WorkflowExecuteUpdateOptions::builder()
            .update_id(format!("accept-amendment-{id}"))
            .build();
        match handle
            .execute_update(
                OrderWorkflow::accept_amendment,
                caller.subject.clone(),
                options,
            )
            .await
        {
            Ok(()) => Ok(OrderStatus::ActionRequired),
            // The validator's refusal (its message may be encoded by the
            // payload codec): said in the API's words.
            Err(WorkflowUpdateError::Failed(_)) => Err(ApiError::FailedPrecondition(format!(
                "order {id} is not awaiting a decision on an amendment"
            ))),
            Err(WorkflowUpdateError::NotFound(_)) => Err(self
                .saga_gone(&id, "is not awaiting a decision on an amendment")
                .await),
            Err(e) => Err(ApiError::internal(e)),
        }
    }

    /// A page of orders, newest first; with `needs_attention` (operators
    /// only) only those with a compensation parked for an operator. A
    /// customer lists its own orders.
    pub async fn list_orders(
        &self,
        caller: &Principal,
        customer_id: Option<&str>,
        status: Option<OrderStatus>,
        needs_attention: bool,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<(Vec<OrderSummary>, Option<String>), ApiError> {
        require(caller, ANYONE, "list orders")?;
        if needs_attention {
            require(
                caller,
                &[Role::Operator],
                "list the orders that need attention",
            )?;
        }
        let given = customer_id.unwrap_or_default();
        let customer_id = if caller.role == Role::Customer || !given.trim().is_empty() {
            Some(acting_customer(caller, given, STAFF, "list orders")?)
        } else {
            None
        };
        let (limit, after) = page_request(page_size, page_token)?;
        let query = OrderQuery {
            customer_id,
            status,
            needs_attention,
            limit,
            after,
        };
        let (page, next) = self
            .store
            .orders()
            .list(&query)
            .await
            .map_err(ApiError::internal)?;
        Ok((page, next.map(|c| c.to_token())))
    }
}

fn not_found(id: &OrderId) -> ApiError {
    ApiError::NotFound(format!("order {id} not found"))
}

/// The customer a saga was started for (its `CustomerId` search
/// attribute, set at the start).
fn saga_owner(attrs: &SearchAttributes) -> Option<CustomerId> {
    attrs
        .get(&SearchAttributeKey::<String>::keyword(
            search_attribute::CUSTOMER_ID,
        ))
        .and_then(|c| CustomerId::parse(&c).ok())
}
