//! The PayPal JSON of orders, captures and refunds, with their HATEOAS
//! links, as the Orders v2 and Payments v2 APIs render them.

use serde_json::{Value, json};

use crate::App;
use crate::db::{OrderRow, RefundRow};

/// The PayPal JSON of an order.
pub(crate) fn order_json(app: &App, o: &OrderRow) -> Value {
    let self_url = app.url(&format!("/v2/checkout/orders/{}", o.id));
    let mut links = vec![json!({"href": self_url, "rel": "self", "method": "GET"})];
    match o.status.as_str() {
        "CREATED" => links.push(json!({
            "href": app.url(&format!("/checkoutnow?token={}", o.id)),
            "rel": "approve",
            "method": "GET",
        })),
        "APPROVED" => links.push(json!({
            "href": format!("{self_url}/capture"),
            "rel": "capture",
            "method": "POST",
        })),
        _ => {}
    }
    let mut unit = json!({
        "reference_id": "default",
        "amount": {"currency_code": o.currency, "value": o.value},
    });
    for (key, value) in [
        ("custom_id", &o.custom_id),
        ("invoice_id", &o.invoice_id),
        ("description", &o.description),
    ] {
        if let Some(v) = value {
            unit[key] = json!(v);
        }
    }
    if o.capture.is_some() {
        unit["payments"] = json!({"captures": [capture_json(app, o)]});
    }
    let mut order = json!({
        "id": o.id,
        "intent": "CAPTURE",
        "status": o.status,
        "purchase_units": [unit],
        "create_time": o.create_time,
        "update_time": o.update_time,
        "links": links,
    });
    if let Some(email) = &o.payer_email {
        order["payer"] = json!({
            "email_address": email,
            "payer_id": payer_id(email),
        });
    }
    order
}

/// A stable payer id for an email (PayPal's 13-character ids).
pub(crate) fn payer_id(email: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, email.as_bytes())
        .simple()
        .to_string()
        .to_ascii_uppercase()
        .chars()
        .take(13)
        .collect()
}

/// The PayPal JSON of an order's capture (`Value::Null` if none).
pub(crate) fn capture_json(app: &App, o: &OrderRow) -> Value {
    let Some(c) = &o.capture else {
        return Value::Null;
    };
    let capture_url = app.url(&format!("/v2/payments/captures/{}", c.id));
    let mut capture = json!({
        "id": c.id,
        "status": c.status,
        "amount": {"currency_code": o.currency, "value": o.value},
        "final_capture": true,
        "create_time": c.create_time,
        "update_time": o.update_time,
        "supplementary_data": {"related_ids": {"order_id": o.id}},
        "links": [
            {"href": capture_url, "rel": "self", "method": "GET"},
            {"href": format!("{capture_url}/refund"), "rel": "refund", "method": "POST"},
            {"href": app.url(&format!("/v2/checkout/orders/{}", o.id)), "rel": "up", "method": "GET"},
        ],
    });
    if c.status == "DECLINED" {
        capture["status_details"] = json!({"reason": "DECLINED_BY_PROCESSOR"});
    }
    if let Some(v) = &o.custom_id {
        capture["custom_id"] = json!(v);
    }
    if let Some(v) = &o.invoice_id {
        capture["invoice_id"] = json!(v);
    }
    capture
}

/// The PayPal JSON of one of the order's capture's refunds (`Value::Null`
/// if it has no capture).
pub(crate) fn refund_json(app: &App, o: &OrderRow, r: &RefundRow) -> Value {
    let Some(c) = &o.capture else {
        return Value::Null;
    };
    let mut refund = json!({
        "id": r.id,
        "status": "COMPLETED",
        "amount": {"currency_code": o.currency, "value": r.value},
        "create_time": r.create_time,
        "update_time": r.create_time,
        "supplementary_data": {"related_ids": {"order_id": o.id, "capture_id": c.id}},
        "links": [
            {"href": app.url(&format!("/v2/payments/refunds/{}", r.id)), "rel": "self", "method": "GET"},
            {"href": app.url(&format!("/v2/payments/captures/{}", c.id)), "rel": "up", "method": "GET"},
        ],
    });
    if let Some(v) = &o.custom_id {
        refund["custom_id"] = json!(v);
    }
    refund
}
