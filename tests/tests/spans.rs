//! One order followed through the logs: every line the API and the worker
//! log about an order is logged inside a span carrying its `order_id` (an
//! API request span, an activity span, an outbox message span), so
//! `grep <order_id>` finds them all. The lines are the real JSON lines of
//! `runtime::telemetry`, captured in memory; API and worker run in this
//! process, each with its own spans.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use ordersaga_runtime::telemetry::{self, LogFormat};
use ordersaga_tests::{Stack, eventually};
use serde_json::{Value, json};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The captured log, shared with the subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// The spans of a line (outermost first) that name `order_id`.
fn spans_of<'a>(line: &'a Value, order_id: &str) -> Vec<&'a str> {
    line["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["order_id"].as_str() == Some(order_id))
        .filter_map(|s| s["name"].as_str())
        .collect()
}

#[tokio::test]
async fn every_line_about_an_order_carries_its_order_id() -> anyhow::Result<()> {
    let log = Captured::default();
    telemetry::init_with(
        LogFormat::Json,
        EnvFilter::new("info,ordersaga_api=debug,temporalio_sdk_core=warn"),
        log.clone(),
    )?;
    let stack = Stack::builder().start().await?;
    stack.product("MUG-1", 1299, 10).await?;

    let placed: Value = stack
        .http
        .post(format!("{}/v1/orders", stack.http_base))
        .json(
            &json!({"customer_id": "erin", "customer_email": "erin@example.com",
            "shipping_address": {"name": "Erin", "line1": "1 Test Street", "city": "Berlin",
                                 "postal_code": "10115", "country": "DE"},
            "lines": [{"sku": "MUG-1", "quantity": 1}]}),
        )
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let order_id = placed["order_id"].as_str().context("order_id")?.to_string();
    let order = stack.terminal_order(&order_id).await?;
    assert_eq!(
        order.status,
        ordersaga_proto::v1::OrderStatus::Confirmed as i32
    );
    // The relay delivers the shipment after the saga ended.
    eventually("the shipment relayed", Duration::from_secs(20), || {
        let lines = log.lines();
        let id = order_id.clone();
        async move {
            Ok(lines
                .iter()
                .any(|l| {
                    l["fields"]["message"] == "shipping requested"
                        && l["fields"]["order_id"].as_str() == Some(id.as_str())
                })
                .then_some(()))
        }
    })
    .await?;

    let lines = log.lines();
    let ours: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("ordersaga"))
        })
        .filter(|l| l.to_string().contains(&order_id))
        .collect();
    for line in &ours {
        assert!(
            !spans_of(line, &order_id).is_empty(),
            "a line about the order outside its spans: {line}"
        );
    }
    let spans: Vec<&str> = ours.iter().flat_map(|l| spans_of(l, &order_id)).collect();
    for expected in ["http", "grpc", "activity", "outbox_message"] {
        assert!(
            spans.contains(&expected),
            "no {expected} span names the order: {spans:?}"
        );
    }
    // The activity spans also name the workflow.
    let workflow_id = format!("order-{order_id}");
    assert!(ours.iter().any(|l| {
        l["fields"]["message"] == "OrderConfirmed"
            && l["span"]["workflow_id"].as_str() == Some(workflow_id.as_str())
    }));
    Ok(())
}
