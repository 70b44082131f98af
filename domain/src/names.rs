//! Stable Temporal names. Running orders are bound to these strings, so they
//! never follow Rust paths: renaming a function must not strand a workflow.

/// The default task queue of the order saga.
pub const ORDERS_TASK_QUEUE: &str = "orders";
/// Workflow type of the order saga.
pub const ORDER_WORKFLOW_TYPE: &str = "OrderWorkflow";
/// Prefix of every order workflow id: `order-{order_id}`.
pub const ORDER_WORKFLOW_ID_PREFIX: &str = "order-";

// ----- notifications and shipping (their own services and task queues) --

/// The Worker Deployment the workers announce by default (Worker
/// Deployment Versioning: docs/operations.md).
pub const WORKER_DEPLOYMENT_NAME: &str = "ordersaga";

/// Task queue of the notifications service (customer and merchant email).
pub const NOTIFICATIONS_TASK_QUEUE: &str = "notifications";
/// Task queue of the shipping service (shipping requests to the warehouse).
pub const SHIPPING_TASK_QUEUE: &str = "shipping";
/// Workflow type delivering one email.
pub const NOTIFICATION_WORKFLOW_TYPE: &str = "NotificationWorkflow";
/// Prefix of notification workflow ids: `notification-{stage}-{subject}`.
pub const NOTIFICATION_WORKFLOW_ID_PREFIX: &str = "notification-";
/// Workflow type creating one shipping request.
pub const SHIPPING_WORKFLOW_TYPE: &str = "ShippingWorkflow";
/// Prefix of shipping workflow ids: `shipping-{order_id}`.
pub const SHIPPING_WORKFLOW_ID_PREFIX: &str = "shipping-";
/// The `patched()` id guarding the saga's notification and shipping
/// commands, so sagas recorded before them replay unchanged.
pub const NOTIFICATIONS_PATCH: &str = "notifications-v1";

/// The `patched()` id of the saga handing its emails and shipping request
/// to the outbox (committed with its own steps) instead of starting a
/// child workflow per message.
pub const OUTBOX_PATCH: &str = "outbox-v1";

/// The `patched()` id of the saga acting on a `CancelOrder` update only
/// after a workflow task boundary (a short timer), i.e. once the update's
/// acceptance is in the history.
pub const DURABLE_CANCEL_PATCH: &str = "durable-cancel-v1";

/// The `patched()` id of the saga letting `ProcessInventory` and
/// `OpenPayment` finish when the workflow is cancelled while they run, so
/// the compensations see what they committed.
pub const FINISH_DB_STEPS_PATCH: &str = "finish-db-steps-v1";
/// The `patched()` id of the outbox relay running each slot's rounds on
/// their own, so a slot that fails or waits out a retry does not hold the
/// other slots at the end of every round.
pub const INDEPENDENT_SLOTS_PATCH: &str = "relay-independent-slots-v1";

/// The `patched()` id of the saga giving every gateway answer a business
/// outcome: a refusal (`GatewayRejected` with a reason) fails the order
/// instead of the workflow, a capture refusal voids the gateway order, a
/// saga that stops on a fault records the order `FAILED` first, and an
/// accepted `CancelOrder` wins over the outcome of the step it interrupted.
pub const GATEWAY_OUTCOMES_PATCH: &str = "gateway-outcomes-v1";

/// The `patched()` id of the checkout wait measured on the workflow clock:
/// the gateway is asked once more at the deadline, and a poll that keeps
/// failing (gateway down) gives up at the deadline.
pub const CHECKOUT_DEADLINE_PATCH: &str = "checkout-deadline-v1";

/// The `patched()` id of the checkout saga ending its last database step's
/// workflow task before it completes, so a late webhook signal that makes
/// the server refuse the completion (`UnhandledCommand`) never re-runs
/// `ConfirmOrder` or `FailOrder`.
pub const QUIET_COMPLETION_PATCH: &str = "quiet-completion-v1";

/// The `patched()` id of the saga whose compensations never stop the
/// unwinding: they retry without end, a refusal parks that one compensation
/// for an operator, money is settled before stock is released, and
/// `FailOrder` always runs.
pub const COMPENSATION_PARKING_PATCH: &str = "compensation-parking-v1";

/// The `patched()` id of the saga asking the database before it unwinds:
/// an order the database already says `CONFIRMED` (its `ConfirmOrder`
/// committed in a workflow task that was then lost, and the retried task
/// took a cancel) is confirmed, not refunded.
pub const CONFIRMATION_STANDS_PATCH: &str = "confirmation-stands-v1";

/// The `patched()` id of the saga keeping the payment's status in the
/// `PaymentStatus` search attribute once the payment is decided (captured,
/// declined, voided, refunded or refund failed), so the Web UI can list
/// e.g. the failed orders whose money is still taken.
pub const PAYMENT_STATUS_PATCH: &str = "payment-status-attribute-v1";

/// The `patched()` id of the saga reserving the order's total against the
/// customer's spending limit before the payment (`ReserveSpending`, undone
/// by `ReleaseSpending`), so an order over the limit fails before any
/// charge.
pub const SPENDING_LIMIT_PATCH: &str = "spending-limit-v1";
/// The `patched()` id of the saga asking the customer when some lines of
/// a paid order cannot be served (`ProcessInventoryAmendable`): the served
/// lines are held, the order waits `ACTION_REQUIRED` for `AcceptAmendment`
/// (the missing lines refunded, `RefundAmendment`, the rest shipped) or
/// `CancelOrder` until a deadline (full compensation).
pub const PARTIAL_AVAILABILITY_PATCH: &str = "partial-availability-v1";
/// The `patched()` id of the `ShippingWorkflow` giving the shipment a life
/// after its request: it waits for the courier's `Dispatch` (flagging the
/// shipment if none comes in time) and `Deliver` updates and records each
/// with the customer's email. Shipping workflows started before it end
/// after the request.
pub const SHIPMENT_LIFECYCLE_PATCH: &str = "shipment-lifecycle-v1";

/// The `patched()` id of the saga whose simulated charge is a local
/// activity, so a simulated order's whole forward path runs in its first
/// workflow task (issue 15). A saga with it records no other of the patches
/// above (it implies them all: one marker and one `TemporalChangeVersion`
/// upsert instead of ten), and it upserts the `PaymentStatus` decided
/// before the order ends together with `OrderStatus`, in one command.
pub const LOCAL_CHARGE_PATCH: &str = "local-charge-v1";

/// The `patched()` id of the `ShippingWorkflow` whose store writes
/// (`RequestShipment`, `FlagUndispatched`, `RecordDispatch`,
/// `RecordDelivery`) are local activities: no activity task and no extra
/// workflow task per write (issue 15).
pub const SHIPMENT_LOCAL_STEPS_PATCH: &str = "shipment-local-steps-v1";

/// The `patched()` id of the `ShippingWorkflow` started by the courier's
/// dispatch (issue 15): the shipping relay has stored the request and
/// flags a late courier itself, so the workflow neither requests nor
/// times the wait; it records the dispatch, then the delivery. Implies
/// [`SHIPMENT_LOCAL_STEPS_PATCH`] (one marker).
pub const SHIPMENT_ON_DISPATCH_PATCH: &str = "shipment-on-dispatch-v1";
/// Workflow type relaying one topic of the outbox on its service's queue.
pub const OUTBOX_RELAY_WORKFLOW_TYPE: &str = "OutboxRelayWorkflow";
/// Prefix of relay workflow ids: `outbox-relay-{topic}`.
pub const OUTBOX_RELAY_WORKFLOW_ID_PREFIX: &str = "outbox-relay-";

/// Task queue of the reconciler's runs: a queue (and SDK worker) of its
/// own, because its runs move to a new build at once (auto-upgrade) while
/// the sagas on the orders queue stay on the build that started them
/// (pinned); the SDK sets the versioning behaviour per worker.
pub const RECONCILER_TASK_QUEUE: &str = "reconciler";
/// Workflow type of the reconciler's runs.
pub const RECONCILE_WORKFLOW_TYPE: &str = "ReconcileOrders";
/// Workflow id of the reconciler's runs (the schedule appends the time).
pub const RECONCILE_WORKFLOW_ID: &str = "reconcile-orders";
/// Id of the Temporal Schedule that starts the reconciler.
pub const RECONCILE_SCHEDULE_ID: &str = "ordersaga-reconciler";

/// Activity type names, one per domain command.
pub mod activity {
    /// Stores the order `PENDING` and records `OrderPlaced`.
    pub const PLACE_ORDER: &str = "PlaceOrder";
    /// Creates the payment and charges it through the gateway.
    pub const PROCESS_PAYMENT: &str = "ProcessPayment";
    /// Deducts stock for every line, all or nothing.
    pub const PROCESS_INVENTORY: &str = "ProcessInventory";
    /// `partial-availability-v1`: deducts stock for every line, or (policy
    /// `ask`) for the lines that can be served, proposing the amended order.
    pub const PROCESS_INVENTORY_AMENDABLE: &str = "ProcessInventoryAmendable";
    /// Refunds the missing lines of an accepted amendment (part of the
    /// capture, once per order).
    pub const REFUND_AMENDMENT: &str = "RefundAmendment";
    /// Marks the order `CONFIRMED`.
    pub const CONFIRM_ORDER: &str = "ConfirmOrder";
    /// Reads the order's status in the shop database (the arbiter).
    pub const GET_ORDER_STATUS: &str = "GetOrderStatus";
    /// Marks the order `FAILED` with its reason.
    pub const FAIL_ORDER: &str = "FailOrder";
    /// Compensation of `ProcessPayment`: refunds a captured payment.
    pub const REFUND_PAYMENT: &str = "RefundPayment";
    /// Compensation of `ProcessInventory`: puts deducted stock back.
    pub const RELEASE_INVENTORY: &str = "ReleaseInventory";
    /// Reserves the order's total against the customer's spending limit,
    /// or refuses the order (`SpendingLimitExceeded`).
    pub const RESERVE_SPENDING: &str = "ReserveSpending";
    /// Compensation of `ReserveSpending`: the reservation stops counting.
    pub const RELEASE_SPENDING: &str = "ReleaseSpending";
    /// Notifications: records, renders and sends one email, once.
    pub const SEND_EMAIL: &str = "SendEmail";
    /// Shipping: creates the order's shipping request, once.
    pub const REQUEST_SHIPMENT: &str = "RequestShipment";
    /// Shipping: flags a shipment not dispatched in time, once.
    pub const FLAG_UNDISPATCHED: &str = "FlagUndispatched";
    /// Shipping: records the courier's dispatch (and its email), once.
    pub const RECORD_DISPATCH: &str = "RecordDispatch";
    /// Shipping: records the delivery (its email, and the order's
    /// completion with its last shipment), once.
    pub const RECORD_DELIVERY: &str = "RecordDelivery";
    /// Delivers a batch of one topic's outbox messages.
    pub const RELAY_OUTBOX: &str = "RelayOutbox";
    /// Checkout: creates the gateway order (the buyer's approval link).
    pub const CREATE_CHECKOUT: &str = "CreateCheckout";
    /// Checkout: stores the payment `PENDING` with its approval link.
    pub const OPEN_PAYMENT: &str = "OpenPayment";
    /// Checkout: asks the gateway where the order stands (reconciliation).
    pub const GET_CHECKOUT: &str = "GetCheckout";
    /// Checkout: captures the approved order (asking first after a lost
    /// answer).
    pub const CAPTURE_PAYMENT: &str = "CapturePayment";
    /// Checkout: records how the payment ended (captured, declined, voided).
    pub const SETTLE_PAYMENT: &str = "SettlePayment";
    /// Checkout: voids the unapproved gateway order.
    pub const VOID_PAYMENT: &str = "VoidPayment";
    /// Checkout compensation: refunds the capture, at most once.
    pub const REFUND_CHECKOUT: &str = "RefundCheckout";
    /// Reconciler: looks for inconsistencies across orders.
    pub const FIND_INCONSISTENCIES: &str = "FindInconsistencies";
    /// Reconciler: repairs one finding, or lists it for an operator.
    pub const ACT_ON_FINDING: &str = "ActOnFinding";
    /// Reconciler: clears earlier findings a run no longer sees.
    pub const CLEAR_RESOLVED_FINDINGS: &str = "ClearResolvedFindings";
    /// Records a compensation the other side refused for good as needing
    /// an operator (a refused refund: the payment `REFUND_FAILED`).
    pub const PARK_COMPENSATION: &str = "ParkCompensation";
    /// Records how an operator settled a parked compensation (retried
    /// successfully, or closed with a reason).
    pub const RESOLVE_ATTENTION: &str = "ResolveAttention";
}

/// Names of the workflow's query and signal handlers.
pub mod handler {
    /// Query returning the live [`crate::OrderView`].
    pub const GET_STATUS: &str = "GetStatus";
    /// Signal carrying a verified gateway webhook ([`crate::GatewayEvent`]).
    pub const PAYMENT_EVENT: &str = "PaymentEvent";
    /// Update answering the buyer's approval link once it exists.
    pub const PAYMENT_LINK: &str = "PaymentLink";
    /// Update cancelling the order; rejected after the point of no return.
    pub const CANCEL_ORDER: &str = "CancelOrder";
    /// Update accepting the amended order (some lines short); rejected
    /// unless the saga awaits the customer's decision.
    pub const ACCEPT_AMENDMENT: &str = "AcceptAmendment";
    /// Update asking the saga to run its parked compensations again;
    /// rejected when none is parked.
    pub const RETRY_COMPENSATION: &str = "RetryCompensation";
    /// Update closing the saga's parked compensations with an operator's
    /// reason; rejected when none is parked.
    pub const CLOSE_ATTENTION: &str = "CloseAttention";
    /// Update of a shipment's workflow: the courier picked it up; rejected
    /// once it is delivered.
    pub const DISPATCH: &str = "Dispatch";
    /// Update of a shipment's workflow: the courier delivered it; rejected
    /// while it has not been dispatched.
    pub const DELIVER: &str = "Deliver";
    /// Query of a shipment's workflow: its [`crate::ShipmentStatus`].
    pub const SHIPMENT_STATUS: &str = "ShipmentStatus";
}

/// Application failure type names, matchable in retry policies and the UI.
pub mod failure {
    /// The gateway declined the payment (non-retryable).
    pub const PAYMENT_DECLINED: &str = "PaymentDeclined";
    /// Not enough stock for a line (non-retryable).
    pub const OUT_OF_STOCK: &str = "OutOfStock";
    /// The order would take the customer over the spending limit
    /// (non-retryable).
    pub const SPENDING_LIMIT_EXCEEDED: &str = "SpendingLimitExceeded";
    /// The order is unknown to the store (non-retryable: a bug, not weather).
    pub const ORDER_NOT_FOUND: &str = "OrderNotFound";
    /// A step found its order already failed in the shop database (e.g. by
    /// a cancellation whose workflow task was lost) and refused to act; the
    /// failure carries the stored `FailureReason`, which the saga follows
    /// (non-retryable).
    pub const ORDER_ALREADY_FAILED: &str = "OrderAlreadyFailed";
    /// The checkout gateway refused a call for good (non-retryable).
    pub const GATEWAY_REJECTED: &str = "GatewayRejected";
    /// A checkout order reached a worker without a (working) checkout
    /// gateway (non-retryable: the order fails fast and visibly).
    pub const GATEWAY_NOT_CONFIGURED: &str = "GatewayNotConfigured";
    /// An email was refused for good (bad address) or not delivered within
    /// the retry horizon (non-retryable).
    pub const EMAIL_UNDELIVERABLE: &str = "EmailUndeliverable";
    /// An email could not be delivered this time (relay down or busy);
    /// retried after the notifications service's backoff.
    pub const EMAIL_DELIVERY_FAILED: &str = "EmailDeliveryFailed";
    /// A relay round in which every delivery failed (retried).
    pub const RELAY_DELIVERY_FAILED: &str = "RelayDeliveryFailed";
    /// A relay activity reached a worker that does not serve its topic.
    pub const RELAY_MISCONFIGURED: &str = "RelayMisconfigured";
}

/// Custom search attributes the order workflow maintains. They must be
/// registered on the namespace before the first order (the dev command and the
/// test harness do; for a production cluster see the README).
pub mod search_attribute {
    /// Keyword: the order id.
    pub const ORDER_ID: &str = "OrderId";
    /// Keyword: the customer id.
    pub const CUSTOMER_ID: &str = "CustomerId";
    /// Keyword: the order's current [`crate::OrderStatus`].
    pub const ORDER_STATUS: &str = "OrderStatus";
    /// Keyword: the payment's [`crate::PaymentStatus`] once decided
    /// (sagas with `payment-status-attribute-v1`).
    pub const PAYMENT_STATUS: &str = "PaymentStatus";
    /// All of them with their Temporal type, as `temporal server start-dev
    /// --search-attribute NAME=TYPE` takes them.
    pub const ALL: [(&str, &str); 4] = [
        (ORDER_ID, "Keyword"),
        (CUSTOMER_ID, "Keyword"),
        (ORDER_STATUS, "Keyword"),
        (PAYMENT_STATUS, "Keyword"),
    ];
}
