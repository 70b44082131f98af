//! The support services' payloads: the emails the customer (and the
//! merchant) get, and the shipping request the warehouse gets. The order
//! saga hands these to the `notifications` and `shipping` task queues; they
//! carry everything the message or request needs, so those services never
//! read the order back.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    CustomerId, EmailAddress, FailureReason, Money, OrderId, OrderLine, ShippingAddress, Sku,
};

text_enum!(
    /// The stages that send an email: at most one email per (subject, stage).
    EmailStage {
        /// The order was placed; payment is being processed.
        OrderReceived => "ORDER_RECEIVED",
        /// Paid and stock deducted.
        OrderConfirmed => "ORDER_CONFIRMED",
        /// The order failed (with the reason, and whether money was refunded).
        OrderFailed => "ORDER_FAILED",
        /// Some lines cannot be served: the amended order, the refund, and
        /// the customer's choice (accept or cancel) before the deadline.
        OrderAmended => "ORDER_AMENDED",
        /// To the merchant: a product's stock is at or below its threshold.
        LowStockAlert => "LOW_STOCK_ALERT",
        /// The courier picked up the order's parcel.
        ShipmentDispatched => "SHIPMENT_DISPATCHED",
        /// The courier delivered the order's parcel.
        ShipmentDelivered => "SHIPMENT_DELIVERED",
    }
);

impl EmailStage {
    /// The form used in ids, `Message-ID`s, file and template names:
    /// `order-received`, ...
    pub fn slug(&self) -> &'static str {
        match self {
            Self::OrderReceived => "order-received",
            Self::OrderConfirmed => "order-confirmed",
            Self::OrderFailed => "order-failed",
            Self::OrderAmended => "order-amended",
            Self::LowStockAlert => "low-stock-alert",
            Self::ShipmentDispatched => "shipment-dispatched",
            Self::ShipmentDelivered => "shipment-delivered",
        }
    }
}

/// A customer email about one order at one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEmail {
    /// `OrderReceived`, `OrderConfirmed` or `OrderFailed`.
    pub stage: EmailStage,
    /// The order.
    pub order_id: OrderId,
    /// Who placed it.
    pub customer_id: CustomerId,
    /// Where the email goes.
    pub to: EmailAddress,
    /// The order's lines.
    pub lines: Vec<OrderLine>,
    /// The order's total.
    pub total: Money,
    /// Why it failed (`OrderFailed` only).
    pub reason: Option<FailureReason>,
    /// Whether a captured payment was given back (`OrderFailed` only).
    pub refunded: bool,
    /// Where the order ships (shown in the confirmation).
    pub ship_to: Option<ShippingAddress>,
    /// Where the buyer approves the payment (`OrderReceived`, while the
    /// payment waits for the buyer at the gateway).
    #[serde(default)]
    pub payment_url: Option<String>,
    /// The shipment the email is about (`ShipmentDispatched`,
    /// `ShipmentDelivered`) when it ships from another warehouse than
    /// [`DEFAULT_WAREHOUSE`]: each of an order's shipments gets its own
    /// email. `None` for the order's emails and its `main` shipment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<String>,
    /// `OrderAmended`: the proposal (served and missing lines, refund,
    /// deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amendment: Option<crate::Amendment>,
}

/// A merchant alert: a product's stock fell to or below its threshold.
/// Built by the low-stock monitor; the merchant's address is the
/// notifications service's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LowStockAlert {
    /// The alert's idempotency key, chosen by the caller (e.g. a UUIDv5 of
    /// the sku and the stock event that crossed the threshold): the same
    /// key never emails twice.
    pub alert_id: Uuid,
    /// The product.
    pub sku: Sku,
    /// Its display name.
    pub product_name: String,
    /// Units on hand now.
    pub on_hand: i64,
    /// The product's alert threshold.
    pub threshold: i64,
}

/// One email to send: the input of the notification workflow and of its
/// `SendEmail` activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
// A payload built once and serialized; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Notification {
    /// To the customer, about an order.
    Order(OrderEmail),
    /// To the merchant, about stock.
    LowStock(LowStockAlert),
}

impl Notification {
    /// The stage; with [`Self::subject_id`] the email's identity.
    pub fn stage(&self) -> EmailStage {
        match self {
            Self::Order(e) => e.stage,
            Self::LowStock(_) => EmailStage::LowStockAlert,
        }
    }

    /// What the email is about: the order id (with the warehouse for a
    /// shipment from another than the default one), or the alert id.
    pub fn subject_id(&self) -> String {
        match self {
            Self::Order(e) => match e.warehouse.as_deref() {
                Some(w) if w != DEFAULT_WAREHOUSE => format!("{}-{w}", e.order_id),
                _ => e.order_id.to_string(),
            },
            Self::LowStock(a) => a.alert_id.hyphenated().to_string(),
        }
    }

    /// The deterministic `Message-ID` of this email,
    /// `<{stage}.{subject}@ordersaga>`: every retry, replay or re-send of
    /// the same (subject, stage) carries the same one, so a receiving
    /// system can recognise a duplicate.
    pub fn message_id(&self) -> String {
        format!("<{}.{}@ordersaga>", self.stage().slug(), self.subject_id())
    }

    /// The workflow id of its delivery: `notification-{stage}-{subject}`.
    pub fn workflow_id(&self) -> String {
        format!(
            "{}{}-{}",
            crate::names::NOTIFICATION_WORKFLOW_ID_PREFIX,
            self.stage().slug(),
            self.subject_id()
        )
    }
}

/// One line of a shipping request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShipmentLine {
    /// The product.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub sku: Sku,
    /// Units to ship.
    pub quantity: i64,
}

impl From<&OrderLine> for ShipmentLine {
    fn from(line: &OrderLine) -> Self {
        Self {
            sku: line.sku.clone(),
            quantity: line.quantity,
        }
    }
}

/// The warehouse every shipment comes from until stock is held per
/// warehouse (existing shipments, and requests recorded without one).
pub const DEFAULT_WAREHOUSE: &str = "main";

fn default_warehouse() -> String {
    DEFAULT_WAREHOUSE.to_string()
}

/// What the warehouse must ship for a confirmed order: the input of the
/// shipping workflow and its `RequestShipment` activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentRequest {
    /// The order (with the warehouse, the request's idempotency key).
    pub order_id: OrderId,
    /// Who ordered.
    pub customer_id: CustomerId,
    /// What to ship.
    pub lines: Vec<ShipmentLine>,
    /// Where to.
    pub address: ShippingAddress,
    /// The warehouse it ships from; [`DEFAULT_WAREHOUSE`] for requests
    /// recorded before warehouses existed.
    #[serde(default = "default_warehouse")]
    pub warehouse: String,
    /// Where the customer's dispatch and delivery emails go (`None` in
    /// requests recorded before shipments had a life).
    #[serde(default)]
    pub customer_email: Option<EmailAddress>,
    /// How long the shipment's workflow waited for the courier before it
    /// flagged the shipment overdue: filled in by relays that started the
    /// workflow at confirmation (before `shipment-on-dispatch-v1`; the
    /// relay now flags late shipments itself); `None`: no timer.
    #[serde(default)]
    pub dispatch_alert_secs: Option<u64>,
}

impl ShipmentRequest {
    /// The workflow id of the shipment: `shipping-{order_id}` from the
    /// default warehouse (the id sagas before the outbox gave their
    /// request), `shipping-{order_id}-{warehouse}` from any other.
    pub fn workflow_id(&self) -> String {
        shipment_workflow_id(&self.order_id, &self.warehouse)
    }

    /// The order's shipments: this request split by the order's stock
    /// `allocation`, one request per warehouse the stock came from, each
    /// with the lines that warehouse gives (in the order's line order).
    /// Unchanged when the allocation names no warehouse but this request's
    /// (an order served from one warehouse, or older than warehouses), so
    /// such an order keeps its one shipment and its workflow id.
    pub fn per_warehouse(self, allocation: &[crate::WarehouseAllocation]) -> Vec<Self> {
        if allocation
            .iter()
            .all(|a| a.warehouse_id.as_str() == self.warehouse)
        {
            return vec![self];
        }
        let position = |sku: &Sku| {
            self.lines
                .iter()
                .position(|l| &l.sku == sku)
                .unwrap_or(usize::MAX)
        };
        allocation
            .iter()
            .filter(|a| !a.lines.is_empty())
            .map(|a| {
                let mut lines = a.lines.clone();
                lines.sort_by(|x, y| {
                    position(&x.sku)
                        .cmp(&position(&y.sku))
                        .then(x.sku.cmp(&y.sku))
                });
                Self {
                    warehouse: a.warehouse_id.as_str().to_string(),
                    lines,
                    ..self.clone()
                }
            })
            .collect()
    }
}

/// The workflow id of the order's shipment from `warehouse`; see
/// [`ShipmentRequest::workflow_id`].
pub fn shipment_workflow_id(order_id: &OrderId, warehouse: &str) -> String {
    let prefix = crate::names::SHIPPING_WORKFLOW_ID_PREFIX;
    if warehouse == DEFAULT_WAREHOUSE {
        format!("{prefix}{order_id}")
    } else {
        format!("{prefix}{order_id}-{warehouse}")
    }
}

text_enum!(
    /// Where a shipment is: `REQUESTED -> DISPATCHED -> DELIVERED`, driven
    /// by the courier's `Dispatch` and `Deliver`.
    ShipmentStatus {
        /// Waiting for the courier.
        Requested => "REQUESTED",
        /// Picked up by the courier.
        Dispatched => "DISPATCHED",
        /// Delivered to the customer. Final.
        Delivered => "DELIVERED",
    }
);

impl ShipmentStatus {
    /// What `Dispatch` makes of a shipment in this status: `DISPATCHED`
    /// (again, for a repeated call), or `None` once it is delivered.
    pub fn dispatched(self) -> Option<Self> {
        match self {
            Self::Requested | Self::Dispatched => Some(Self::Dispatched),
            Self::Delivered => None,
        }
    }

    /// What `Deliver` makes of it: `DELIVERED` (again, for a repeated
    /// call), or `None` while it has not been dispatched.
    pub fn delivered(self) -> Option<Self> {
        match self {
            Self::Dispatched | Self::Delivered => Some(Self::Delivered),
            Self::Requested => None,
        }
    }
}

text_enum!(
    /// Which service a message in the outbox is for. Each topic is relayed
    /// on its service's own task queue.
    Topic {
        /// Emails, relayed by the notifications service.
        Email => "email",
        /// Shipping requests, relayed by the shipping service.
        Shipment => "shipment",
    }
);

/// A message for another service, committed to the outbox in the same
/// transaction as the saga step that caused it, then relayed by that
/// service (see `docs/notifications.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "topic", content = "message", rename_all = "snake_case")]
// A payload built once and serialized; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Outgoing {
    /// An email for the notifications service.
    Email(Notification),
    /// A shipping request for the shipping service.
    Shipment(ShipmentRequest),
}

impl Outgoing {
    /// The service it is for.
    pub fn topic(&self) -> Topic {
        match self {
            Self::Email(_) => Topic::Email,
            Self::Shipment(_) => Topic::Shipment,
        }
    }

    /// The order it is about, if any (a low-stock alert is about none).
    pub fn order_id(&self) -> Option<OrderId> {
        match self {
            Self::Email(Notification::Order(e)) => Some(e.order_id),
            Self::Email(Notification::LowStock(_)) => None,
            Self::Shipment(r) => Some(r.order_id),
        }
    }

    /// Its idempotency key in the outbox: one message per (order, stage)
    /// or per alert, one shipping request per order.
    pub fn key(&self) -> String {
        match self {
            Self::Email(n) => n.workflow_id(),
            Self::Shipment(r) => r.workflow_id(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_deterministic_per_subject_and_stage() {
        let alert = Notification::LowStock(LowStockAlert {
            alert_id: Uuid::from_u128(7),
            sku: Sku::parse("MUG-1").unwrap(),
            product_name: "Mug".into(),
            on_hand: 2,
            threshold: 5,
        });
        assert_eq!(
            alert.message_id(),
            "<low-stock-alert.00000000-0000-0000-0000-000000000007@ordersaga>"
        );
        assert_eq!(alert.message_id(), alert.clone().message_id());
        assert_eq!(
            alert.workflow_id(),
            "notification-low-stock-alert-00000000-0000-0000-0000-000000000007"
        );
        for s in EmailStage::ALL {
            assert_eq!(s.as_str().parse::<EmailStage>().unwrap(), *s);
        }
    }

    #[test]
    fn shipments_are_dispatched_then_delivered_never_backwards() {
        use ShipmentStatus::*;
        assert_eq!(Requested.dispatched(), Some(Dispatched));
        assert_eq!(Dispatched.dispatched(), Some(Dispatched));
        assert_eq!(Delivered.dispatched(), None);
        assert_eq!(Requested.delivered(), None);
        assert_eq!(Dispatched.delivered(), Some(Delivered));
        assert_eq!(Delivered.delivered(), Some(Delivered));
    }

    #[test]
    fn a_request_splits_per_warehouse_of_its_allocation() {
        use crate::{WarehouseAllocation, WarehouseId};
        let line = |sku: &str, quantity| ShipmentLine {
            sku: Sku::parse(sku).unwrap(),
            quantity,
        };
        let old = r#"{"order_id":"6c1f2a5e-3b7d-4e55-9a1f-0b2c3d4e5f60","customer_id":"alice",
            "lines":[],"address":{"name":"A","line1":"1 St","line2":"","city":"B",
            "postal_code":"1","country":"DE"}}"#;
        let mut request: ShipmentRequest = serde_json::from_str(old).unwrap();
        request.lines = vec![line("RUG", 1), line("LAMP", 3)];
        let from = |w: &str, lines: Vec<ShipmentLine>| WarehouseAllocation {
            warehouse_id: WarehouseId::parse(w).unwrap(),
            lines,
        };
        // One warehouse (main), or none recorded: the request as it is.
        let main = [from("main", vec![line("LAMP", 3), line("RUG", 1)])];
        assert_eq!(request.clone().per_warehouse(&main), [request.clone()]);
        assert_eq!(request.clone().per_warehouse(&[]), [request.clone()]);
        // Two: one request each, lines in the order's line order.
        let split = request.clone().per_warehouse(&[
            from("main", vec![line("LAMP", 2), line("RUG", 1)]),
            from("east", vec![line("LAMP", 1)]),
        ]);
        let shape: Vec<_> = split
            .iter()
            .map(|r| (r.warehouse.as_str(), r.lines.clone(), r.workflow_id()))
            .collect();
        assert_eq!(
            shape,
            [
                (
                    "main",
                    vec![line("RUG", 1), line("LAMP", 2)],
                    "shipping-6c1f2a5e-3b7d-4e55-9a1f-0b2c3d4e5f60".to_string()
                ),
                (
                    "east",
                    vec![line("LAMP", 1)],
                    "shipping-6c1f2a5e-3b7d-4e55-9a1f-0b2c3d4e5f60-east".to_string()
                ),
            ]
        );
        assert!(split.iter().all(|r| r.address == request.address));
    }

    #[test]
    fn requests_recorded_before_warehouses_ship_from_main() {
        let old = r#"{"order_id":"6c1f2a5e-3b7d-4e55-9a1f-0b2c3d4e5f60","customer_id":"alice",
            "lines":[],"address":{"name":"A","line1":"1 St","line2":"","city":"B",
            "postal_code":"1","country":"DE"}}"#;
        let request: ShipmentRequest = serde_json::from_str(old).unwrap();
        assert_eq!(request.warehouse, DEFAULT_WAREHOUSE);
        assert_eq!(
            request.workflow_id(),
            "shipping-6c1f2a5e-3b7d-4e55-9a1f-0b2c3d4e5f60"
        );
        let east = shipment_workflow_id(&request.order_id, "east");
        assert_eq!(east, "shipping-6c1f2a5e-3b7d-4e55-9a1f-0b2c3d4e5f60-east");
    }
}
