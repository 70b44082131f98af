//! One trace per order: with traces on, an order's spans — the API's
//! `PlaceOrder` request, the Temporal client call, the workflow and its
//! activities on the worker, the gateway's HTTP calls, the database
//! transactions, the relay's delivery and its SMTP send — reach an OTLP
//! receiver as one trace rooted at the API's span, every parent present.
//! The API runs in this process (traces on, exporting to the receiver);
//! the worker is the real binary, so the context crosses processes through
//! Temporal's headers. A worker with traces switched off sends nothing.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use ordersaga_domain::CheckoutTiming;
use ordersaga_proto::v1 as pb;
use ordersaga_runtime::telemetry::{self, LogFormat, TraceSettings};
use ordersaga_tests::otlp::{Received, Receiver};
use ordersaga_tests::{ORDER_TIMEOUT, Stack, eventually, place_request};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::OnceCell;

/// The API's service name here (the test process's spans).
const API_SERVICE: &str = "ordersaga-api-test";

/// Every trace rooted at an API request span for `order_id` whose name
/// `is_request` accepts (the root names the order once the use case knows
/// it): the root and the trace's spans, in the order the roots arrived.
fn api_traces(
    receiver: &Receiver,
    order_id: &str,
    is_request: impl Fn(&str) -> bool,
) -> Vec<(Received, Vec<Received>)> {
    let spans = receiver.spans();
    spans
        .iter()
        .filter(|s| {
            s.service == API_SERVICE
                && s.parent.is_empty()
                && is_request(&s.name)
                && s.attributes.get("order_id").map(String::as_str) == Some(order_id)
        })
        .map(|root| {
            let trace = spans
                .iter()
                .filter(|s| s.trace_id == root.trace_id)
                .cloned()
                .collect();
            (root.clone(), trace)
        })
        .collect()
}

/// The spans of the trace whose root is the API's `PlaceOrder` span for
/// `order_id`.
fn trace_of(receiver: &Receiver, order_id: &str) -> Option<(Received, Vec<Received>)> {
    api_traces(receiver, order_id, |name| {
        name.ends_with("PlaceOrder") || name == "POST /v1/orders"
    })
    .into_iter()
    .next()
}

/// The receiver (`ordersaga_tests::otlp`, keeping every span), started
/// once per test binary, and its endpoint; the test process's own spans
/// (the API's) go there. Both the receiver and the exporter's channel live
/// on a runtime of their own, which outlives each test's.
async fn receiver() -> anyhow::Result<&'static (Receiver, String)> {
    static RECEIVER: OnceCell<(Receiver, String)> = OnceCell::const_new();
    RECEIVER
        .get_or_try_init(|| async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            listener.set_nonblocking(true)?;
            let endpoint = format!("http://{}", listener.local_addr()?);
            let receiver = Receiver::keeping();
            let serving = receiver.clone();
            let settings = TraceSettings {
                endpoint: endpoint.clone(),
                service_name: API_SERVICE.to_string(),
            };
            let (ready, started) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("otlp-receiver".into())
                .spawn(move || -> anyhow::Result<()> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(async move {
                        let traced = telemetry::init_traced(
                            LogFormat::Text,
                            telemetry::env_filter("warn"),
                            tracing_subscriber::fmt::TestWriter::new(),
                            Some(&settings),
                        );
                        let _ = ready.send(traced);
                        let listener = TcpListener::from_std(listener)?;
                        serving.serve(listener, std::future::pending()).await?;
                        anyhow::Ok(())
                    })
                })?;
            started.await??;
            anyhow::Ok((receiver, endpoint))
        })
        .await
}

/// Every span's parent is in the trace, but the root's.
fn assert_linked(root: &Received, trace: &[Received]) {
    let ids: HashSet<&[u8]> = trace.iter().map(|s| s.span_id.as_slice()).collect();
    for span in trace {
        if span.span_id == root.span_id {
            continue;
        }
        assert!(
            ids.contains(span.parent.as_slice()),
            "{} ({}) has a parent outside the trace: {:#?}",
            span.name,
            span.service,
            trace
                .iter()
                .map(|s| (&s.name, hex(&s.span_id), hex(&s.parent)))
                .collect::<Vec<_>>()
        );
    }
}

fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `span` descends from `ancestor` through parents in `trace`.
fn descends(span: &Received, ancestor: &Received, trace: &[Received]) -> bool {
    let by_id: HashMap<&[u8], &Received> =
        trace.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    let mut at = span;
    for _ in 0..trace.len() {
        if at.parent == ancestor.span_id {
            return true;
        }
        match by_id.get(at.parent.as_slice()) {
            Some(parent) => at = parent,
            None => return false,
        }
    }
    false
}

#[tokio::test]
async fn an_order_is_one_trace_from_the_api_through_the_worker_process() -> anyhow::Result<()> {
    let (receiver, endpoint) = receiver().await?;
    let mut stack = Stack::builder()
        .checkout(CheckoutTiming {
            deadline_secs: 600,
            poll_secs: 600,
        })
        .without_worker()
        .start()
        .await?;
    stack.start_smtp(Duration::ZERO).await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let gateway = stack.sandbox()?.paypal_settings().base_url;
    let _worker = stack.spawn_worker_process(&[
        ("ORDERSAGA_PAYPAL_BASE_URL", gateway.as_str()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "ordersaga-worker-traced"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ])?;

    let placed: Value = stack
        .http
        .post(format!("{}/v1/orders", stack.http_base))
        .json(&json!({
            "customer_id": "tess", "customer_email": "tess@example.com",
            "shipping_address": {"name": "Tess", "line1": "1 Test Street", "city": "Berlin",
                                 "postal_code": "10115", "country": "DE"},
            "lines": [{"sku": "MUG-1", "quantity": 1}]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let order_id = placed["order_id"].as_str().context("order_id")?.to_string();
    let approval = placed["approval_url"].as_str().context("approval_url")?;
    stack.sandbox()?.approve(approval).await?;
    let order = stack.terminal_order(&order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    // The courier's dispatch (as the stack's operator) starts the
    // shipment's workflow: a trace of its own, rooted at that request. A
    // workflow's span is exported when the workflow ends, so deliver too.
    // 404 until the shipping relay has stored the shipment.
    let shipment = format!("{}/v1/shipments/{order_id}", stack.http_base);
    eventually("the shipment to take a dispatch", ORDER_TIMEOUT, || {
        let request = stack.http.post(format!("{shipment}/dispatch")).send();
        async move {
            let status = request.await?.status();
            anyhow::ensure!(
                status.is_success() || status == reqwest::StatusCode::NOT_FOUND,
                "dispatch answered {status}"
            );
            Ok(status.is_success().then_some(()))
        }
    })
    .await?;
    stack
        .http
        .post(format!("{shipment}/deliver"))
        .send()
        .await?
        .error_for_status()?;

    // The worker exports every 100 ms, the API every 5 s; a workflow's
    // span ends with it, and the relay sends the confirmation after the
    // last step.
    let (root, trace) = eventually("the order's whole trace", ORDER_TIMEOUT, || {
        let found = trace_of(receiver, &order_id).filter(|(_, trace)| {
            let names: HashSet<&str> = trace.iter().map(|s| s.name.as_str()).collect();
            [
                "smtp send",
                "RunActivity:ConfirmOrder",
                "orders.confirm",
                "RunWorkflow:OrderWorkflow",
            ]
            .iter()
            .all(|n| names.contains(n))
        });
        async move { Ok(found) }
    })
    .await?;

    assert_eq!(root.name, "POST /v1/orders");
    assert_eq!(root.service, API_SERVICE);
    assert_linked(&root, &trace);
    let worker: Vec<&Received> = trace
        .iter()
        .filter(|s| s.service == "ordersaga-worker-traced")
        .collect();
    let of_worker = |name: &str| worker.iter().any(|s| s.name == name);
    // The workflow and its activities, regular and local, on the worker.
    for name in [
        "RunWorkflow:OrderWorkflow",
        "RunActivity:PlaceOrder",
        "RunActivity:CreateCheckout",
        "RunActivity:CapturePayment",
        "RunActivity:ConfirmOrder",
        "smtp send",
        "outbox_message",
    ] {
        assert!(
            of_worker(name),
            "no {name} span from the worker: {worker:#?}"
        );
    }
    // The worker's `activity` span is the log's only: its fields are on
    // the SDK's span, and the activity's own spans are that span's children.
    assert!(!of_worker("activity"), "an activity span was exported");
    for span in worker.iter().filter(|s| s.name.starts_with("RunActivity:")) {
        assert!(
            descends(span, &root, &trace),
            "{} does not descend from the API's span",
            span.name
        );
        assert_eq!(
            span.attributes.get("order_id").map(String::as_str),
            Some(order_id.as_str()),
            "{span:?}"
        );
        assert!(
            span.attributes
                .get("attempt")
                .and_then(|a| a.parse::<u32>().ok())
                .is_some_and(|a| a >= 1),
            "{span:?}"
        );
    }
    let place = worker
        .iter()
        .find(|s| s.name == "orders.place")
        .context("orders.place")?;
    let parent = worker
        .iter()
        .find(|s| s.span_id == place.parent)
        .context("orders.place's parent")?;
    assert_eq!(parent.name, "RunActivity:PlaceOrder");
    // No source locations, threads or busy times: they cost per span.
    assert!(
        worker
            .iter()
            .all(|s| !s.attributes.keys().any(|k| {
                k.starts_with("code.") || k.starts_with("thread.") || k.ends_with("_ns")
            })),
        "{worker:#?}"
    );
    // The gateway's HTTP calls, each a client span with its method.
    assert!(
        worker
            .iter()
            .any(|s| s.attributes.contains_key("http.request.method")),
        "no gateway call in the trace"
    );
    // Database transactions on both sides.
    assert!(
        trace
            .iter()
            .any(|s| s.service == API_SERVICE && s.name == "catalog.get"),
        "no database span from the API"
    );
    // The temporal client call in the API, between the request and the run.
    assert!(
        trace
            .iter()
            .any(|s| s.service == API_SERVICE && s.name.starts_with("UpdateWithStartWorkflow"))
    );
    // The dispatch's trace: the API's request, the update-with-start and
    // the shipment's workflow with its write on the worker.
    let dispatch_root = "POST /v1/shipments/{order_id}/dispatch";
    let dispatch = eventually("the dispatch's trace", ORDER_TIMEOUT, || {
        // The first tries may have been refused (404) before the shipping
        // relay stored the shipment: each is a trace of its own.
        let found = api_traces(receiver, &order_id, |name| name == dispatch_root)
            .into_iter()
            .map(|(_, trace)| trace)
            .find(|trace| {
                ["RunWorkflow:ShippingWorkflow", "RunActivity:RecordDispatch"]
                    .iter()
                    .all(|n| trace.iter().any(|s| s.name == *n))
            });
        async move { Ok(found) }
    })
    .await?;
    assert!(
        dispatch
            .iter()
            .any(|s| s.service == API_SERVICE && s.name.starts_with("UpdateWithStartWorkflow"))
    );
    assert!(
        !trace
            .iter()
            .any(|s| s.name == "RunWorkflow:ShippingWorkflow"),
        "the order's trace holds no shipment's workflow"
    );

    // The confirmation the traced SMTP send delivered.
    let mails = stack.smtp.as_ref().context("smtp")?.messages()?;
    assert!(mails.iter().any(|m| m.to.contains("tess@example.com")));
    Ok(())
}

#[tokio::test]
async fn a_worker_with_traces_off_sends_nothing() -> anyhow::Result<()> {
    let (receiver, endpoint) = receiver().await?;
    let stack = Stack::builder().without_worker().start().await?;
    stack.product("MUG-1", 1_000, 10).await?;
    let mut worker = stack.spawn_worker_process(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "ordersaga-worker-off"),
        ("OTEL_SDK_DISABLED", "true"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ])?;
    let placed = stack
        .grpc
        .clone()
        .place_order(place_request("uma", &[("MUG-1", 1)], ""))
        .await?
        .into_inner();
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);

    // The API's side of the same order arrives (the receiver works) ...
    let (root, _) = eventually("the API's spans", ORDER_TIMEOUT, || {
        let found = trace_of(receiver, &placed.order_id);
        async move { Ok(found) }
    })
    .await?;
    assert_eq!(root.name, "OrderService/PlaceOrder");
    // ... and the worker, stopped (which flushes an exporter), sent none.
    let pid = i32::try_from(worker.id().context("worker pid")?)?;
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on our own child's pid; no memory is touched.
    let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let status = tokio::time::timeout(Duration::from_secs(30), worker.wait()).await??;
    assert!(status.success(), "worker exited with {status}");
    let from_worker: Vec<String> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.service == "ordersaga-worker-off")
        .map(|s| s.name)
        .collect();
    assert!(from_worker.is_empty(), "sent: {from_worker:?}");
    Ok(())
}
