//! Payment webhooks as the shop reads them: the signature contract
//! (headers, [`sign`], [`verify`], event type names) comes from
//! `ordersaga-webhook-signature`, which the payments sandbox shares;
//! [`PaymentEvent::parse`] reads the PayPal-shaped event body into the few
//! facts the saga acts on.

use serde::Deserialize;

pub use ordersaga_webhook_signature::{
    DEFAULT_TOLERANCE, MAX_SIGNATURES, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookError,
    event_type, sign, unix_seconds, verify,
};

/// What happened to a payment, as one webhook tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentEventKind {
    /// `CHECKOUT.ORDER.APPROVED`: capture may proceed.
    OrderApproved,
    /// `CHECKOUT.ORDER.VOIDED`: the buyer cancelled (or the shop voided).
    OrderVoided,
    /// `PAYMENT.CAPTURE.COMPLETED`.
    CaptureCompleted,
    /// `PAYMENT.CAPTURE.DENIED`.
    CaptureDenied,
    /// `PAYMENT.CAPTURE.REFUNDED`.
    CaptureRefunded,
    /// Any other event type: acknowledge and ignore.
    Other,
}

/// The facts of one (verified) webhook the saga can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentEvent {
    /// The event's id: redeliveries of one event share it, so it is the
    /// natural deduplication key.
    pub event_id: String,
    /// The raw `event_type`.
    pub event_type: String,
    /// What it means.
    pub kind: PaymentEventKind,
    /// The gateway order the event is about.
    pub gateway_order_id: Option<String>,
    /// The `custom_id` we sent when creating the order: our `transactionId`.
    pub custom_id: Option<String>,
    /// The capture, for capture events.
    pub capture_id: Option<String>,
}

/// Why an event body could not be read.
#[derive(Debug, thiserror::Error)]
#[error("webhook body is not a payment event")]
pub struct EventParseError(#[from] serde_json::Error);

#[derive(Deserialize)]
struct RawEvent {
    id: String,
    event_type: String,
    #[serde(default)]
    resource: RawResource,
}

#[derive(Deserialize, Default)]
struct RawResource {
    id: Option<String>,
    custom_id: Option<String>,
    #[serde(default)]
    purchase_units: Vec<RawUnit>,
    #[serde(default)]
    supplementary_data: RawSupplementary,
}

#[derive(Deserialize)]
struct RawUnit {
    custom_id: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawSupplementary {
    #[serde(default)]
    related_ids: RawRelated,
}

#[derive(Deserialize, Default)]
struct RawRelated {
    order_id: Option<String>,
    capture_id: Option<String>,
}

impl PaymentEvent {
    /// Reads an event body. Order events carry the order as `resource`;
    /// capture and refund events carry the capture or refund, with the order
    /// in `supplementary_data.related_ids` (as PayPal does).
    pub fn parse(body: &[u8]) -> Result<Self, EventParseError> {
        let raw: RawEvent = serde_json::from_slice(body)?;
        let kind = match raw.event_type.as_str() {
            event_type::ORDER_APPROVED => PaymentEventKind::OrderApproved,
            event_type::ORDER_VOIDED => PaymentEventKind::OrderVoided,
            event_type::CAPTURE_COMPLETED => PaymentEventKind::CaptureCompleted,
            event_type::CAPTURE_DENIED => PaymentEventKind::CaptureDenied,
            event_type::CAPTURE_REFUNDED => PaymentEventKind::CaptureRefunded,
            _ => PaymentEventKind::Other,
        };
        let r = raw.resource;
        let related = r.supplementary_data.related_ids;
        let order_event = matches!(
            kind,
            PaymentEventKind::OrderApproved | PaymentEventKind::OrderVoided
        );
        let (gateway_order_id, capture_id) = if order_event {
            (r.id, None)
        } else if kind == PaymentEventKind::CaptureRefunded {
            (related.order_id, related.capture_id)
        } else {
            (related.order_id, r.id)
        };
        let custom_id = r
            .custom_id
            .or_else(|| r.purchase_units.into_iter().find_map(|u| u.custom_id));
        Ok(Self {
            event_id: raw.id,
            event_type: raw.event_type,
            kind,
            gateway_order_id,
            custom_id,
            capture_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_yield_order_capture_and_transaction() {
        let approved = br#"{"id":"WH-A","event_type":"CHECKOUT.ORDER.APPROVED",
            "resource":{"id":"ORDER1","status":"APPROVED",
            "purchase_units":[{"custom_id":"txn-1"}]}}"#;
        let e = PaymentEvent::parse(approved).unwrap();
        assert_eq!(e.kind, PaymentEventKind::OrderApproved);
        assert_eq!(e.gateway_order_id.as_deref(), Some("ORDER1"));
        assert_eq!(e.custom_id.as_deref(), Some("txn-1"));
        assert_eq!(e.capture_id, None);

        let captured = br#"{"id":"WH-C","event_type":"PAYMENT.CAPTURE.COMPLETED",
            "resource":{"id":"CAP1","status":"COMPLETED","custom_id":"txn-1",
            "supplementary_data":{"related_ids":{"order_id":"ORDER1"}}}}"#;
        let e = PaymentEvent::parse(captured).unwrap();
        assert_eq!(e.kind, PaymentEventKind::CaptureCompleted);
        assert_eq!(e.gateway_order_id.as_deref(), Some("ORDER1"));
        assert_eq!(e.capture_id.as_deref(), Some("CAP1"));

        let refunded = br#"{"id":"WH-R","event_type":"PAYMENT.CAPTURE.REFUNDED",
            "resource":{"id":"REF1","status":"COMPLETED","custom_id":"txn-1",
            "supplementary_data":{"related_ids":{"order_id":"ORDER1","capture_id":"CAP1"}}}}"#;
        let e = PaymentEvent::parse(refunded).unwrap();
        assert_eq!(e.kind, PaymentEventKind::CaptureRefunded);
        assert_eq!(e.capture_id.as_deref(), Some("CAP1"));

        let other = br#"{"id":"WH-X","event_type":"BILLING.PLAN.CREATED","resource":{}}"#;
        assert_eq!(
            PaymentEvent::parse(other).unwrap().kind,
            PaymentEventKind::Other
        );
        assert!(PaymentEvent::parse(b"not json").is_err());
    }
}
