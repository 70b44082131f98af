//! Conversions between domain/store values and both wire formats.

use ordersaga_domain::{
    Money, OrderId, OrderStatus, PaymentStatus, ShipmentLine, ShipmentStatus, ShippingAddress,
    WarehouseId,
};
use ordersaga_proto::v1 as pb;
use ordersaga_store::{
    AmendmentRecord, AttentionRecord, EventRecord, LowStockAlertRecord, OrderRecord, OrderSummary,
    Product, StockReceipt,
};
use ordersaga_store::{ShipmentRecord, SpendingLimitRecord};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::service::{OrderDetails, PlacedOrder, pending_link};

/// Unix milliseconds as a protobuf timestamp.
pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

/// Unix milliseconds as RFC 3339 text.
pub fn rfc3339(ms: i64) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// Proto enum of an order status.
pub fn pb_status(s: OrderStatus) -> i32 {
    (match s {
        OrderStatus::Pending => pb::OrderStatus::Pending,
        OrderStatus::ActionRequired => pb::OrderStatus::ActionRequired,
        OrderStatus::Confirmed => pb::OrderStatus::Confirmed,
        OrderStatus::Failed => pb::OrderStatus::Failed,
    }) as i32
}

/// Domain status of a proto enum value; `UNSPECIFIED` is `None`.
pub fn status_from_pb(v: i32) -> Result<Option<OrderStatus>, ApiError> {
    match pb::OrderStatus::try_from(v) {
        Ok(pb::OrderStatus::Unspecified) => Ok(None),
        Ok(pb::OrderStatus::Pending) => Ok(Some(OrderStatus::Pending)),
        Ok(pb::OrderStatus::ActionRequired) => Ok(Some(OrderStatus::ActionRequired)),
        Ok(pb::OrderStatus::Confirmed) => Ok(Some(OrderStatus::Confirmed)),
        Ok(pb::OrderStatus::Failed) => Ok(Some(OrderStatus::Failed)),
        Err(_) => Err(ApiError::InvalidArgument(format!(
            "unknown order status {v}"
        ))),
    }
}

fn pb_payment(s: Option<PaymentStatus>) -> i32 {
    (match s {
        None => pb::PaymentStatus::Unspecified,
        Some(PaymentStatus::Pending) => pb::PaymentStatus::Pending,
        Some(PaymentStatus::Captured) => pb::PaymentStatus::Captured,
        Some(PaymentStatus::Declined) => pb::PaymentStatus::Declined,
        Some(PaymentStatus::Refunded) => pb::PaymentStatus::Refunded,
        Some(PaymentStatus::Voided) => pb::PaymentStatus::Voided,
        Some(PaymentStatus::RefundFailed) => pb::PaymentStatus::RefundFailed,
    }) as i32
}

fn pb_money(m: Money) -> Option<pb::Money> {
    Some(pb::Money {
        minor_units: m.minor,
        currency: m.currency.to_string(),
    })
}

impl From<PlacedOrder> for pb::PlaceOrderResponse {
    fn from(p: PlacedOrder) -> Self {
        Self {
            order_id: p.order_id.to_string(),
            transaction_id: p.transaction_id.to_string(),
            status: pb_status(p.status),
            total: pb_money(p.total),
            workflow_id: p.workflow_id,
            approval_url: p.approval_url.unwrap_or_default(),
        }
    }
}

impl From<OrderDetails> for pb::Order {
    fn from(d: OrderDetails) -> Self {
        let shipments: Vec<pb::Shipment> = match &d {
            OrderDetails::Stored { shipments, .. } => shipments.iter().map(pb_shipment).collect(),
            OrderDetails::Accepted(_) => Vec::new(),
        };
        let j = OrderJson::from(d);
        Self {
            attention: j
                .attention
                .iter()
                .map(|a| pb::ParkedCompensation {
                    compensation: a.compensation.clone(),
                    status: a.status.clone(),
                    reason: a.reason.clone(),
                    parked_at: Some(timestamp(a.parked_at_ms)),
                    closed_by: a.closed_by.clone().unwrap_or_default(),
                    close_reason: a.close_reason.clone().unwrap_or_default(),
                })
                .collect(),
            shipment: shipments.first().cloned(),
            shipments,
            amendment: j.amendment.map(|a| pb::Amendment {
                status: a.status,
                lines: a.lines.into_iter().map(pb_line).collect(),
                missing: a.missing.into_iter().map(pb_line).collect(),
                refund: Some(a.refund.into()),
                deadline: Some(timestamp(a.deadline_ms)),
                refunded: a.refunded.map(Into::into),
            }),
            fulfilment_status: j.fulfilment_status.unwrap_or_default().to_string(),
            approval_url: j.approval_url.unwrap_or_default(),
            workflow_id: j.workflow_id,
            order_id: j.order_id,
            customer_id: j.customer_id.unwrap_or_default(),
            transaction_id: j.transaction_id.unwrap_or_default(),
            status: pb_status(j.status),
            lines: j.lines.into_iter().map(pb_line).collect(),
            total: j.total.map(Into::into),
            payment_status: pb_payment(j.payment_status),
            failure_code: j.failure_code.unwrap_or_default(),
            failure_reason: j.failure_reason.unwrap_or_default(),
            events: j
                .events
                .into_iter()
                .map(|e| pb::OrderEvent {
                    name: e.name,
                    detail: e.detail.unwrap_or_default(),
                    occurred_at: e.occurred_at_ms.map(timestamp),
                })
                .collect(),
            created_at: j.created_at_ms.map(timestamp),
            updated_at: j.updated_at_ms.map(timestamp),
        }
    }
}

/// Proto form of a listed order.
pub fn pb_summary(o: &OrderSummary) -> pb::OrderSummary {
    pb::OrderSummary {
        order_id: o.order_id.to_string(),
        customer_id: o.customer_id.to_string(),
        status: pb_status(o.status),
        total: pb_money(o.total),
        failure_code: o.failure_code.clone().unwrap_or_default(),
        created_at: Some(timestamp(o.created_at_ms)),
        attention: o.attention.clone().unwrap_or_default(),
    }
}

/// Proto form of a product.
pub fn pb_product(p: &Product) -> pb::Product {
    pb::Product {
        sku: p.sku.to_string(),
        name: p.name.clone(),
        price: pb_money(p.price),
        on_hand: p.on_hand,
        low_stock_threshold: p.low_stock_threshold,
        rating_average: p.rating_average().unwrap_or(0.0),
        rating_count: p.rating_count,
        warehouses: Vec::new(),
    }
}

/// Proto form of a stock receipt.
pub fn pb_receipt(r: &StockReceipt) -> pb::StockReceipt {
    pb::StockReceipt {
        receipt_id: r.receipt_id.clone(),
        warehouse: r.warehouse_id.to_string(),
        lines: r
            .lines
            .iter()
            .map(|(sku, quantity)| pb::StockReceiptLine {
                sku: sku.to_string(),
                quantity: *quantity,
            })
            .collect(),
        created_at: Some(timestamp(r.created_at_ms)),
    }
}

/// Proto form of a low-stock alert.
pub fn pb_alert(a: &LowStockAlertRecord) -> pb::LowStockAlert {
    pb::LowStockAlert {
        alert_id: a.alert_id.clone(),
        sku: a.sku.to_string(),
        on_hand: a.on_hand,
        threshold: a.threshold,
        cause: a.cause.clone(),
        created_at: Some(timestamp(a.created_at_ms)),
    }
}

// ----- JSON (HTTP mirror) ------------------------------------------------

/// Money in JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct MoneyJson {
    /// Minor units.
    pub minor_units: i64,
    /// ISO 4217 code.
    pub currency: String,
}

impl From<Money> for MoneyJson {
    fn from(m: Money) -> Self {
        Self {
            minor_units: m.minor,
            currency: m.currency.to_string(),
        }
    }
}

impl From<MoneyJson> for pb::Money {
    fn from(m: MoneyJson) -> Self {
        Self {
            minor_units: m.minor_units,
            currency: m.currency,
        }
    }
}

/// The answer to `POST /v1/orders`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlacedJson {
    order_id: String,
    transaction_id: String,
    #[schema(schema_with = crate::openapi::order_status)]
    status: OrderStatus,
    total: MoneyJson,
    workflow_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    approval_url: Option<String>,
}

impl From<PlacedOrder> for PlacedJson {
    fn from(p: PlacedOrder) -> Self {
        Self {
            order_id: p.order_id.to_string(),
            transaction_id: p.transaction_id.to_string(),
            status: p.status,
            total: p.total.into(),
            workflow_id: p.workflow_id,
            approval_url: p.approval_url,
        }
    }
}

/// An order line in JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineJson {
    sku: String,
    quantity: i64,
    unit_price: MoneyJson,
}

impl From<&ordersaga_domain::OrderLine> for LineJson {
    fn from(l: &ordersaga_domain::OrderLine) -> Self {
        Self {
            sku: l.sku.to_string(),
            quantity: l.quantity,
            unit_price: l.unit_price.into(),
        }
    }
}

fn pb_line(l: LineJson) -> pb::OrderLine {
    pb::OrderLine {
        sku: l.sku,
        quantity: l.quantity,
        unit_price: Some(l.unit_price.into()),
    }
}

/// The amended order an `ACTION_REQUIRED` order proposes (some lines could
/// not be served), and what became of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AmendmentJson {
    /// `PROPOSED` (waiting for the customer), `ACCEPTED`, or `DECLINED`
    /// (cancelled, or the deadline passed: refunded in full).
    #[schema(example = "PROPOSED")]
    pub status: String,
    /// The lines that can be served (their stock is held for the order).
    pub lines: Vec<LineJson>,
    /// The lines that cannot.
    pub missing: Vec<LineJson>,
    /// Refunded on acceptance: the missing lines' amount.
    pub refund: MoneyJson,
    /// Until when the customer may decide (RFC 3339).
    pub deadline: String,
    #[serde(skip)]
    deadline_ms: i64,
    /// `ACCEPTED`: what the gateway gave back.
    pub refunded: Option<MoneyJson>,
}

impl From<&AmendmentRecord> for AmendmentJson {
    fn from(r: &AmendmentRecord) -> Self {
        Self {
            status: r.status.to_string(),
            lines: r.amendment.lines.iter().map(LineJson::from).collect(),
            missing: r.amendment.missing.iter().map(LineJson::from).collect(),
            refund: r.amendment.refund.into(),
            deadline: rfc3339(r.deadline_at_ms),
            deadline_ms: r.deadline_at_ms,
            refunded: r.refunded.map(Into::into),
        }
    }
}

/// A history entry in JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventJson {
    name: String,
    detail: Option<String>,
    occurred_at: Option<String>,
    #[serde(skip)]
    occurred_at_ms: Option<i64>,
}

impl From<&EventRecord> for EventJson {
    fn from(e: &EventRecord) -> Self {
        Self {
            name: e.event.to_string(),
            detail: e.detail.clone(),
            occurred_at: Some(rfc3339(e.occurred_at_ms)),
            occurred_at_ms: Some(e.occurred_at_ms),
        }
    }
}

/// A parked compensation in JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttentionJson {
    compensation: String,
    status: String,
    reason: String,
    parked_at: String,
    #[serde(skip)]
    parked_at_ms: i64,
    closed_by: Option<String>,
    close_reason: Option<String>,
}

impl From<&AttentionRecord> for AttentionJson {
    fn from(a: &AttentionRecord) -> Self {
        Self {
            compensation: a.compensation.to_string(),
            status: a.status.to_string(),
            reason: a.reason.clone(),
            parked_at: rfc3339(a.parked_at_ms),
            parked_at_ms: a.parked_at_ms,
            closed_by: a.closed.as_ref().map(|n| n.operator.clone()),
            close_reason: a.closed.as_ref().map(|n| n.reason.clone()),
        }
    }
}

/// `GET /v1/orders/{id}` (and the source of the proto `Order`).
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderJson {
    order_id: String,
    workflow_id: String,
    customer_id: Option<String>,
    transaction_id: Option<String>,
    #[schema(schema_with = crate::openapi::order_status)]
    status: OrderStatus,
    lines: Vec<LineJson>,
    total: Option<MoneyJson>,
    #[schema(schema_with = crate::openapi::payment_status)]
    payment_status: Option<PaymentStatus>,
    /// Checkout mode, while the payment waits for the buyer.
    #[serde(skip_serializing_if = "Option::is_none")]
    approval_url: Option<String>,
    failure_code: Option<String>,
    failure_reason: Option<String>,
    events: Vec<EventJson>,
    created_at: Option<String>,
    updated_at: Option<String>,
    #[serde(skip)]
    created_at_ms: Option<i64>,
    #[serde(skip)]
    updated_at_ms: Option<i64>,
    /// The first of its shipments (kept for clients from before an order
    /// could have several); `null` before it has one.
    shipment: Option<ShipmentJson>,
    /// Its shipments, one per warehouse it ships from, each with its lines
    /// and status.
    shipments: Vec<ShipmentJson>,
    /// The confirmed order's fulfilment, from its shipments: the least
    /// advanced one's (`REQUESTED`, `DISPATCHED`), `COMPLETED` once every
    /// one is delivered; `null` before it has one.
    #[schema(schema_with = crate::openapi::fulfilment_status)]
    fulfilment_status: Option<&'static str>,
    /// Compensations parked for an operator, in any status.
    attention: Vec<AttentionJson>,
    /// `ACTION_REQUIRED` (and after): the amended order proposed when some
    /// lines could not be served.
    #[serde(skip_serializing_if = "Option::is_none")]
    amendment: Option<AmendmentJson>,
}

/// An order's fulfilment from its shipments: the least advanced one says
/// where it is; `COMPLETED` once every one is delivered (`OrderCompleted`).
fn fulfilment(shipments: &[ShipmentRecord]) -> Option<&'static str> {
    let least = shipments.iter().map(|s| s.status).min_by_key(|s| match s {
        ShipmentStatus::Requested => 0,
        ShipmentStatus::Dispatched => 1,
        ShipmentStatus::Delivered => 2,
    })?;
    Some(match least {
        ShipmentStatus::Requested => "REQUESTED",
        ShipmentStatus::Dispatched => "DISPATCHED",
        ShipmentStatus::Delivered => "COMPLETED",
    })
}

impl From<OrderDetails> for OrderJson {
    fn from(d: OrderDetails) -> Self {
        match d {
            OrderDetails::Stored { record, shipments } => {
                let mut j = stored_json(*record);
                j.fulfilment_status = fulfilment(&shipments);
                j.shipments = shipments.iter().map(ShipmentJson::from).collect();
                j.shipment = j.shipments.first().cloned();
                j
            }
            OrderDetails::Accepted(id) => accepted_json(id),
        }
    }
}

fn stored_json(r: OrderRecord) -> OrderJson {
    let s = r.summary;
    let currency = s.total.currency;
    OrderJson {
        order_id: s.order_id.to_string(),
        workflow_id: s.order_id.workflow_id(),
        customer_id: Some(s.customer_id.to_string()),
        transaction_id: Some(s.transaction_id.to_string()),
        status: s.status,
        lines: r
            .lines
            .iter()
            .map(|l| LineJson {
                sku: l.sku.to_string(),
                quantity: l.quantity,
                unit_price: Money::new(l.unit_price_minor, currency).into(),
            })
            .collect(),
        total: Some(s.total.into()),
        approval_url: pending_link(r.payment.as_ref()),
        payment_status: r.payment.map(|p| p.status),
        failure_code: s.failure_code,
        failure_reason: s.failure_reason,
        events: r.events.iter().map(EventJson::from).collect(),
        created_at: Some(rfc3339(s.created_at_ms)),
        updated_at: Some(rfc3339(s.updated_at_ms)),
        created_at_ms: Some(s.created_at_ms),
        updated_at_ms: Some(s.updated_at_ms),
        shipment: None,
        shipments: Vec::new(),
        fulfilment_status: None,
        attention: r.attention.iter().map(AttentionJson::from).collect(),
        amendment: r.amendment.as_ref().map(AmendmentJson::from),
    }
}

fn accepted_json(id: OrderId) -> OrderJson {
    OrderJson {
        order_id: id.to_string(),
        workflow_id: id.workflow_id(),
        customer_id: None,
        transaction_id: None,
        status: OrderStatus::Pending,
        lines: Vec::new(),
        total: None,
        payment_status: None,
        approval_url: None,
        failure_code: None,
        failure_reason: None,
        events: Vec::new(),
        created_at: None,
        updated_at: None,
        created_at_ms: None,
        updated_at_ms: None,
        shipment: None,
        shipments: Vec::new(),
        fulfilment_status: None,
        attention: Vec::new(),
        amendment: None,
    }
}

/// An order in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryJson {
    order_id: String,
    customer_id: String,
    #[schema(schema_with = crate::openapi::order_status)]
    status: OrderStatus,
    total: MoneyJson,
    failure_code: Option<String>,
    /// Set while a compensation is parked for an operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    attention: Option<String>,
    created_at: String,
}

impl From<&OrderSummary> for SummaryJson {
    fn from(o: &OrderSummary) -> Self {
        Self {
            order_id: o.order_id.to_string(),
            customer_id: o.customer_id.to_string(),
            status: o.status,
            total: o.total.into(),
            failure_code: o.failure_code.clone(),
            attention: o.attention.clone(),
            created_at: rfc3339(o.created_at_ms),
        }
    }
}

/// A product in JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductJson {
    sku: String,
    name: String,
    price: MoneyJson,
    on_hand: i64,
    low_stock_threshold: i64,
    rating_average: Option<f64>,
    rating_count: i64,
    /// Its stock per warehouse (`GET /v1/products/{sku}` only): every
    /// warehouse that holds or held it; the units sum to `on_hand`.
    #[serde(skip_serializing_if = "Option::is_none")]
    warehouses: Option<Vec<WarehouseStockJson>>,
}

/// A product's stock in one warehouse.
#[derive(Debug, Serialize, ToSchema)]
pub struct WarehouseStockJson {
    warehouse: String,
    on_hand: i64,
}

impl ProductJson {
    /// With its stock per warehouse.
    pub fn with_warehouses(mut self, levels: &[(WarehouseId, i64)]) -> Self {
        self.warehouses = Some(
            levels
                .iter()
                .map(|(w, on_hand)| WarehouseStockJson {
                    warehouse: w.to_string(),
                    on_hand: *on_hand,
                })
                .collect(),
        );
        self
    }
}

impl From<&Product> for ProductJson {
    fn from(p: &Product) -> Self {
        Self {
            sku: p.sku.to_string(),
            name: p.name.clone(),
            price: p.price.into(),
            on_hand: p.on_hand,
            low_stock_threshold: p.low_stock_threshold,
            rating_average: p.rating_average(),
            rating_count: p.rating_count,
            warehouses: None,
        }
    }
}

/// A receipt line in JSON (also the request form).
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptLineJson {
    /// The product.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub sku: String,
    /// Units received.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub quantity: i64,
}

/// A stock receipt in JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptJson {
    receipt_id: String,
    warehouse: String,
    lines: Vec<ReceiptLineJson>,
    created_at: String,
}

impl From<&StockReceipt> for ReceiptJson {
    fn from(r: &StockReceipt) -> Self {
        Self {
            receipt_id: r.receipt_id.clone(),
            warehouse: r.warehouse_id.to_string(),
            lines: r
                .lines
                .iter()
                .map(|(sku, quantity)| ReceiptLineJson {
                    sku: sku.to_string(),
                    quantity: *quantity,
                })
                .collect(),
            created_at: rfc3339(r.created_at_ms),
        }
    }
}

/// A low-stock alert in JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertJson {
    alert_id: String,
    sku: String,
    on_hand: i64,
    threshold: i64,
    cause: String,
    created_at: String,
}

impl From<&LowStockAlertRecord> for AlertJson {
    fn from(a: &LowStockAlertRecord) -> Self {
        Self {
            alert_id: a.alert_id.clone(),
            sku: a.sku.to_string(),
            on_hand: a.on_hand,
            threshold: a.threshold,
            cause: a.cause.clone(),
            created_at: rfc3339(a.created_at_ms),
        }
    }
}

// ----- shipping ----------------------------------------------------------

/// Domain address of a proto address (validated later by the service).
pub fn address_from_pb(a: pb::ShippingAddress) -> ShippingAddress {
    ShippingAddress {
        name: a.name,
        line1: a.line1,
        line2: a.line2,
        city: a.city,
        postal_code: a.postal_code,
        country: a.country,
    }
}

fn pb_address(a: &ShippingAddress) -> pb::ShippingAddress {
    pb::ShippingAddress {
        name: a.name.clone(),
        line1: a.line1.clone(),
        line2: a.line2.clone(),
        city: a.city.clone(),
        postal_code: a.postal_code.clone(),
        country: a.country.clone(),
    }
}

/// Proto form of a shipping request.
pub fn pb_shipment(s: &ShipmentRecord) -> pb::Shipment {
    pb::Shipment {
        order_id: s.request.order_id.to_string(),
        customer_id: s.request.customer_id.to_string(),
        status: s.status.to_string(),
        lines: s
            .request
            .lines
            .iter()
            .map(|l| pb::ShipmentLine {
                sku: l.sku.to_string(),
                quantity: l.quantity,
            })
            .collect(),
        address: Some(pb_address(&s.request.address)),
        requested_at: Some(timestamp(s.created_at_ms)),
        warehouse: s.request.warehouse.clone(),
        dispatched_at: s.dispatched_at_ms.map(timestamp),
        delivered_at: s.delivered_at_ms.map(timestamp),
        dispatch_overdue_at: s.dispatch_overdue_at_ms.map(timestamp),
    }
}

/// A shipping request in JSON (`GET /v1/shipments`, and inside an order).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShipmentJson {
    order_id: String,
    customer_id: String,
    warehouse: String,
    #[schema(schema_with = crate::openapi::shipment_status)]
    status: ShipmentStatus,
    /// `{"sku": .., "quantity": ..}` each: the domain's own form.
    lines: Vec<ShipmentLine>,
    address: ShippingAddress,
    requested_at: String,
    dispatched_at: Option<String>,
    delivered_at: Option<String>,
    /// Set when it waited longer than allowed for the courier.
    dispatch_overdue_at: Option<String>,
}

impl From<&ShipmentRecord> for ShipmentJson {
    fn from(s: &ShipmentRecord) -> Self {
        Self {
            order_id: s.request.order_id.to_string(),
            customer_id: s.request.customer_id.to_string(),
            warehouse: s.request.warehouse.clone(),
            status: s.status,
            lines: s.request.lines.clone(),
            address: s.request.address.clone(),
            requested_at: rfc3339(s.created_at_ms),
            dispatched_at: s.dispatched_at_ms.map(rfc3339),
            delivered_at: s.delivered_at_ms.map(rfc3339),
            dispatch_overdue_at: s.dispatch_overdue_at_ms.map(rfc3339),
        }
    }
}

// ----- spending limits -----------------------------------------------------

/// A customer's spending limit over gRPC.
pub fn pb_spending_limit(r: SpendingLimitRecord) -> pb::SpendingLimit {
    pb::SpendingLimit {
        customer_id: r.customer_id.to_string(),
        limit: r.limit.and_then(pb_money),
        spent: r.spent.and_then(pb_money),
    }
}

/// `GET`/`PUT /v1/customers/{id}/spending-limit`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpendingLimitJson {
    customer_id: String,
    /// `null`: no limit.
    limit: Option<MoneyJson>,
    /// What counts against the limit; `null` without one.
    spent: Option<MoneyJson>,
}

impl From<SpendingLimitRecord> for SpendingLimitJson {
    fn from(r: SpendingLimitRecord) -> Self {
        Self {
            customer_id: r.customer_id.to_string(),
            limit: r.limit.map(Into::into),
            spent: r.spent.map(Into::into),
        }
    }
}
