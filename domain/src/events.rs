//! The shop's domain events as published to consumers outside the shop
//! (`docs/events.md`): each event's stable id, CloudEvents `type`, NATS
//! subject and the versioned `data` it carries.
//!
//! The store writes an event's [`OrderEventData`] or [`CatalogEventData`]
//! in the transaction that makes it true; the relay wraps it in a
//! CloudEvents 1.0 envelope. Pure naming and payloads: no I/O. Data carries
//! no personal data beyond the customer id (no email, name or address, and
//! no free text a customer or operator typed).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    CatalogEvent, CustomerId, Money, OrderEvent, OrderId, Sku, TransactionId, WarehouseId,
};

/// The version of every `data` schema below; part of each event's `type`.
pub const SCHEMA_VERSION: u32 = 1;

/// Every NATS subject of the shop's events starts with this token.
pub const SUBJECT_ROOT: &str = "shop";

/// Namespace of the events' UUIDv5 ids.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6465_7273_6167_612d_6576_656e_7473);

/// One domain event, ready to publish: what the store writes to the event
/// outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainEvent {
    /// Stable id: the same event always has the same id (`Nats-Msg-Id`).
    pub id: Uuid,
    /// CloudEvents `type`, e.g. `shop.order.placed.v1`.
    pub event_type: String,
    /// CloudEvents `source`.
    pub source: &'static str,
    /// CloudEvents `subject`: the order id or the sku.
    pub subject: String,
    /// The NATS subject it is published on.
    pub nats_subject: String,
}

/// CloudEvents `source` of order events.
pub const ORDERS_SOURCE: &str = "/ordersaga/orders";
/// CloudEvents `source` of catalog events.
pub const CATALOG_SOURCE: &str = "/ordersaga/catalog";

/// `OrderPlaced` -> `placed`, `PaymentProcessFailed` -> `process_failed`:
/// the event name without its aggregate prefix, in snake case.
fn type_token(name: &str, prefix: &str) -> String {
    let rest = name.strip_prefix(prefix).unwrap_or(name);
    let mut out = String::new();
    for (i, c) in rest.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// CloudEvents `type` of an order event: `shop.order.placed.v1`,
/// `shop.payment.processed.v1`, `shop.inventory.released.v1`,
/// `shop.attention.closed.v1`, `shop.shipment.dispatched.v1`, ...
pub fn order_event_type(event: OrderEvent) -> String {
    let name = event.as_str();
    let (aggregate, prefix) = ["Order", "Payment", "Inventory", "Attention", "Shipment"]
        .into_iter()
        .find(|p| name.starts_with(p))
        .map_or(("order", ""), |p| (p, p));
    format!(
        "{SUBJECT_ROOT}.{}.{}.v{SCHEMA_VERSION}",
        aggregate.to_ascii_lowercase(),
        type_token(name, prefix)
    )
}

/// CloudEvents `type` of a catalog event: `shop.product.created.v1`,
/// `shop.stock.receipt_created.v1`, `shop.stock.low_stock_alert_triggered.v1`,
/// `shop.product.review_rating_submitted.v1`, `shop.product.rating_updated.v1`.
pub fn catalog_event_type(event: CatalogEvent) -> String {
    let name = event.as_str();
    let (aggregate, token) = match event {
        CatalogEvent::ProductCreated | CatalogEvent::ProductRatingUpdated => {
            ("product", type_token(name, "Product"))
        }
        CatalogEvent::ReviewRatingSubmitted => ("product", type_token(name, "")),
        CatalogEvent::StockReceiptCreated => ("stock", type_token(name, "Stock")),
        CatalogEvent::LowStockAlertTriggered => ("stock", type_token(name, "")),
    };
    format!("{SUBJECT_ROOT}.{aggregate}.{token}.v{SCHEMA_VERSION}")
}

/// A sku as one NATS subject token: a sku may hold `.`, which separates
/// tokens, so it becomes `~` (a character no sku has).
pub fn sku_token(sku: &Sku) -> String {
    sku.as_str().replace('.', "~")
}

impl DomainEvent {
    /// The order's `event` (each happens at most once per order).
    pub fn order(order_id: &OrderId, event: OrderEvent) -> Self {
        Self {
            id: Uuid::new_v5(
                &EVENT_ID_NAMESPACE,
                format!("order/{order_id}/{event}").as_bytes(),
            ),
            event_type: order_event_type(event),
            source: ORDERS_SOURCE,
            subject: order_id.to_string(),
            nats_subject: format!("{SUBJECT_ROOT}.orders.{order_id}.{event}"),
        }
    }

    /// The `event` of the order's shipment from `warehouse` (one of
    /// several; the shipment from the default warehouse is [`Self::order`]'s):
    /// once per shipment, so its id names the warehouse.
    pub fn order_shipment(order_id: &OrderId, event: OrderEvent, warehouse: &str) -> Self {
        Self {
            id: Uuid::new_v5(
                &EVENT_ID_NAMESPACE,
                format!("order/{order_id}/{event}/{warehouse}").as_bytes(),
            ),
            ..Self::order(order_id, event)
        }
    }

    /// A catalog event of `sku`, `key` being its unique key in the
    /// product's history (`product-created/<sku>`, `low-stock/<alert>`, ...).
    pub fn catalog(sku: &Sku, event: CatalogEvent, key: &str) -> Self {
        Self {
            id: Uuid::new_v5(&EVENT_ID_NAMESPACE, format!("catalog/{key}").as_bytes()),
            event_type: catalog_event_type(event),
            source: CATALOG_SOURCE,
            subject: sku.to_string(),
            nats_subject: format!("{SUBJECT_ROOT}.catalog.{}.{event}", sku_token(sku)),
        }
    }
}

/// One line of an order, as events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLine {
    /// The product.
    pub sku: Sku,
    /// Units.
    pub quantity: i64,
    /// Price per unit, in the order's currency's minor units.
    pub unit_price_minor: i64,
}

/// `data` of every order event (schema v1): the order as it stands when
/// the event happened, and what is particular to the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEventData {
    /// The order.
    pub order_id: OrderId,
    /// Who placed it (the only personal data in events).
    pub customer_id: CustomerId,
    /// Its payment's transaction id.
    pub transaction_id: TransactionId,
    /// 1 for the order's first event, then one more per event.
    pub sequence: i64,
    /// The order's total.
    pub total: Money,
    /// The order's lines.
    pub lines: Vec<EventLine>,
    /// The order's status after the event (`PENDING`, `CONFIRMED`, `FAILED`).
    pub status: String,
    /// Payment events: the payment's status after the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_status: Option<String>,
    /// `OrderFailed`: the failure code (`PAYMENT_DECLINED`, `OUT_OF_STOCK`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<String>,
    /// Why, in the shop's or gateway's words (a decline, a shortage, a
    /// refused refund); never text a customer or operator typed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `ShipmentDispatched`, `ShipmentDelivered` of a shipment from another
    /// warehouse than `main`: that warehouse (an order ships once per
    /// warehouse its stock came from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<String>,
}

/// `data` of every catalog event (schema v1); the fields an event does not
/// have are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEventData {
    /// The product.
    pub sku: Option<Sku>,
    /// `ProductCreated`: its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `ProductCreated`: its price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Money>,
    /// `StockReceiptCreated`: the receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_id: Option<String>,
    /// `StockReceiptCreated`: the warehouse the units came into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<WarehouseId>,
    /// `StockReceiptCreated`: units received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i64>,
    /// `StockReceiptCreated`, `LowStockAlertTriggered`: units on hand after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_hand: Option<i64>,
    /// `ProductCreated`, `LowStockAlertTriggered`: the low-stock threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_stock_threshold: Option<i64>,
    /// `LowStockAlertTriggered`: the alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
    /// `LowStockAlertTriggered`: what moved stock (`order:<id>`,
    /// `release:<id>`, `receipt:<id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// `ReviewRatingSubmitted`: who rated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<CustomerId>,
    /// `ReviewRatingSubmitted`: 1 to 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stars: Option<i64>,
    /// `ProductRatingUpdated`: sum of the current ratings' stars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating_sum: Option<i64>,
    /// `ProductRatingUpdated`: how many customers rated it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating_count: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_the_documented_names() {
        assert_eq!(
            order_event_type(OrderEvent::OrderPlaced),
            "shop.order.placed.v1"
        );
        assert_eq!(
            order_event_type(OrderEvent::PaymentProcessFailed),
            "shop.payment.process_failed.v1"
        );
        assert_eq!(
            order_event_type(OrderEvent::InventoryReleased),
            "shop.inventory.released.v1"
        );
        assert_eq!(
            order_event_type(OrderEvent::AttentionClosed),
            "shop.attention.closed.v1"
        );
        assert_eq!(
            catalog_event_type(CatalogEvent::ProductCreated),
            "shop.product.created.v1"
        );
        assert_eq!(
            catalog_event_type(CatalogEvent::LowStockAlertTriggered),
            "shop.stock.low_stock_alert_triggered.v1"
        );
        assert_eq!(
            catalog_event_type(CatalogEvent::StockReceiptCreated),
            "shop.stock.receipt_created.v1"
        );
    }

    #[test]
    fn ids_are_stable_and_subjects_are_single_tokens() {
        let order = OrderId::from_uuid(Uuid::from_u128(7));
        let a = DomainEvent::order(&order, OrderEvent::OrderPlaced);
        assert_eq!(a, DomainEvent::order(&order, OrderEvent::OrderPlaced));
        assert_ne!(
            a.id,
            DomainEvent::order(&order, OrderEvent::OrderConfirmed).id
        );
        assert_eq!(a.nats_subject, format!("shop.orders.{order}.OrderPlaced"));
        let sku: Sku = "CAP.BLUE-1".parse().unwrap();
        let e = DomainEvent::catalog(&sku, CatalogEvent::ProductCreated, "product-created/x");
        assert_eq!(e.nats_subject, "shop.catalog.CAP~BLUE-1.ProductCreated");
        assert_eq!(e.subject, "CAP.BLUE-1");
    }
}
