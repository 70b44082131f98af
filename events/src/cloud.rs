//! An outbox row as a CloudEvents 1.0 event in the JSON format (the
//! `cloudevents-sdk` crate builds and reads the envelope).

use chrono::{DateTime, Utc};
use cloudevents::{AttributesReader, Data, Event, EventBuilder, EventBuilderV10};
use ordersaga_store::StoredEvent;

use crate::EventsError;

/// `datacontenttype` of every event.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// The CloudEvent of a stored event.
pub fn to_cloud_event(e: &StoredEvent) -> Result<Event, EventsError> {
    let bad = |what: &str| EventsError::Malformed(format!("event {} {what}", e.event_id));
    let data: serde_json::Value =
        serde_json::from_str(&e.data).map_err(|_| bad("has data that is not JSON"))?;
    let time: DateTime<Utc> = DateTime::from_timestamp_millis(e.occurred_at_ms)
        .ok_or_else(|| bad("has no valid time"))?;
    EventBuilderV10::new()
        .id(e.event_id.clone())
        .source(e.source.clone())
        .ty(e.event_type.clone())
        .subject(e.subject.clone())
        .time(time)
        .data(DATA_CONTENT_TYPE, data)
        .build()
        .map_err(|err| bad(&err.to_string()))
}

/// The JSON bytes published for a stored event.
pub fn encode(e: &StoredEvent) -> Result<Vec<u8>, EventsError> {
    let event = to_cloud_event(e)?;
    serde_json::to_vec(&event).map_err(|err| EventsError::Malformed(err.to_string()))
}

/// A published message back as a CloudEvent.
pub fn decode(payload: &[u8]) -> Result<Event, EventsError> {
    serde_json::from_slice(payload).map_err(|e| EventsError::Malformed(e.to_string()))
}

/// An event's `data` as JSON (every shop event has JSON data).
pub fn data_json(event: &Event) -> Option<serde_json::Value> {
    match event.data()? {
        Data::Json(v) => Some(v.clone()),
        Data::String(s) => serde_json::from_str(s).ok(),
        Data::Binary(b) => serde_json::from_slice(b).ok(),
    }
}

/// One line for people: time, type, subject, id and the data.
pub fn pretty(event: &Event) -> String {
    let time = event
        .time()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    let data = data_json(event).map(|d| d.to_string()).unwrap_or_default();
    format!(
        "{time}  {:<40} {:<36}  id={}  {data}",
        event.ty(),
        event.subject().unwrap_or_default(),
        event.id()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_event_round_trips_with_the_spec_attributes() {
        let stored = StoredEvent {
            seq: 1,
            event_id: "2b1b9bba-5e1c-5d2b-9b49-9d3c1c0a0e01".to_string(),
            event_type: "shop.order.placed.v1".to_string(),
            source: "/ordersaga/orders".to_string(),
            subject: "8caf".to_string(),
            nats_subject: "shop.orders.8caf.OrderPlaced".to_string(),
            data: r#"{"order_id":"8caf"}"#.to_string(),
            occurred_at_ms: 1_700_000_000_123,
        };
        let bytes = encode(&stored).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["id"], stored.event_id.as_str());
        assert_eq!(json["type"], "shop.order.placed.v1");
        assert_eq!(json["source"], "/ordersaga/orders");
        assert_eq!(json["subject"], "8caf");
        assert_eq!(json["datacontenttype"], "application/json");
        assert_eq!(json["data"]["order_id"], "8caf");
        assert!(
            json["time"]
                .as_str()
                .unwrap()
                .starts_with("2023-11-14T22:13:20.123")
        );
        let back = decode(&bytes).unwrap();
        assert_eq!(back.id(), stored.event_id);
        assert_eq!(data_json(&back).unwrap()["order_id"], "8caf");
    }
}
