//! `ordersaga-bench`: load for the whole system, measured end to end.
//!
//! It places `n` orders through the API's gRPC `PlaceOrder` (mode `api`) or
//! starts their sagas straight on Temporal the way the API does (mode
//! `start`, the bare start-workflow baseline), at a fixed concurrency
//! (closed loop) or arrival rate (open loop), then waits for every order's
//! saga to end. It reports orders/s; `PlaceOrder` (or start), end-to-end
//! and result-delivery (the saga's close to the tool holding its result)
//! latency percentiles and means; the drain after the last start and the
//! slowest order; failures by kind; CPU seconds and peak RSS
//! of the processes it is told about ([`proc`]); and the server's state
//! transitions per order. Field names follow the peer's `bench.py`, so one
//! report compares both.
//!
//! Payments are auto-approved by the simulated gateway for the default
//! product (`STICKER-01`, 3.99 EUR, 10,000 in the demo stock), so every
//! order should end `CONFIRMED`; anything else is counted as a failure.

pub mod proc;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use ordersaga_domain::names::{failure, search_attribute};
use ordersaga_domain::{
    CustomerId, FailureReason, Money, OrderId, OrderInput, OrderLine, OrderOutcome, OrderStatus,
    Sku, TransactionId,
};
use ordersaga_proto::v1::order_service_client::OrderServiceClient;
use ordersaga_proto::v1::{OrderLineRequest, PlaceOrderRequest};
use ordersaga_runtime::codec::CodecSettings;
use ordersaga_runtime::connection::{TemporalSettings, connect};
use ordersaga_workflows::{EXECUTION_TIMEOUT, OrderWorkflow, WORKFLOW_TASK_TIMEOUT};
use serde_json::{Map, Value, json};
use temporalio_client::{
    Client, HistoryEventFilterType, NamespacedClient, WorkflowFetchHistoryOptions,
    WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowStartOptions,
};
use temporalio_common::data_converters::{SerializationContextData, WorkflowSerializationContext};
use temporalio_common::protos::proto_ts_to_system_time;
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_common::search_attributes::{SearchAttributeKey, SearchAttributes};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tonic::transport::Channel;

use crate::proc::Watched;

/// How orders enter the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `PlaceOrder` over gRPC through the API (the real path).
    Api,
    /// `StartWorkflow` on Temporal directly, as the API would: the baseline
    /// `PlaceOrder`'s latency is compared with.
    Start,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchSettings {
    /// Mode.
    pub mode: Mode,
    /// The API's gRPC endpoint (`http://host:port`), mode `api`.
    pub grpc: String,
    /// The bearer token sent with every `PlaceOrder` (an operator's: it
    /// orders for 100 customers), mode `api`.
    pub token: Option<String>,
    /// Temporal frontend `host:port` (results are awaited there).
    pub temporal: String,
    /// Task queue of the sagas (mode `start`).
    pub task_queue: String,
    /// Orders measured.
    pub n: usize,
    /// Orders in flight (closed loop); ignored when `rate` is set.
    pub concurrency: usize,
    /// Orders started per second (open loop).
    pub rate: Option<f64>,
    /// Orders run before measuring, not reported.
    pub warmup: usize,
    /// Product ordered (one line).
    pub sku: String,
    /// Its unit price in cents (mode `start` prices locally).
    pub unit_price_cents: i64,
    /// Processes to account CPU and memory for.
    pub watched: Vec<Watched>,
    /// The server's Prometheus `/metrics` URL, for state transitions.
    pub server_metrics: Option<String>,
    /// Free text copied into the report.
    pub label: String,
    /// Show a progress line on stderr (only when it is a terminal).
    pub progress: bool,
}

/// What happened to one order.
#[derive(Debug)]
struct Sample {
    placed_ms: f64,
    e2e_ms: f64,
    /// From the server's close of the saga to the load tool holding its
    /// result.
    result_ms: f64,
    started: Instant,
    finished: Instant,
}

#[derive(Default)]
struct Tally {
    samples: Vec<Sample>,
    failures: BTreeMap<String, u64>,
    first_start: Option<Instant>,
}

struct Shared {
    settings: BenchSettings,
    grpc: Option<OrderServiceClient<Channel>>,
    temporal: Client,
    tally: Mutex<Tally>,
    done: AtomicUsize,
}

fn failure_kind(reason: &FailureReason) -> &'static str {
    match reason {
        FailureReason::PaymentDeclined { .. } => failure::PAYMENT_DECLINED,
        FailureReason::PaymentExpired { .. } => "PaymentExpired",
        FailureReason::AmendmentExpired { .. } => "AmendmentExpired",
        FailureReason::OutOfStock { .. } => failure::OUT_OF_STOCK,
        FailureReason::SpendingLimitExceeded { .. } => failure::SPENDING_LIMIT_EXCEEDED,
        FailureReason::Cancelled { .. } => "Cancelled",
        FailureReason::Internal { code, .. } => code.as_str(),
    }
}

fn close_kind(attributes: Option<&Attributes>) -> &'static str {
    match attributes {
        Some(Attributes::WorkflowExecutionFailedEventAttributes(_)) => "workflow_failed",
        Some(Attributes::WorkflowExecutionCanceledEventAttributes(_)) => "workflow_cancelled",
        Some(Attributes::WorkflowExecutionTerminatedEventAttributes(_)) => "workflow_terminated",
        Some(Attributes::WorkflowExecutionTimedOutEventAttributes(_)) => "workflow_timed_out",
        Some(Attributes::WorkflowExecutionContinuedAsNewEventAttributes(_)) => {
            "workflow_continued_as_new"
        }
        _ => "result_error",
    }
}

impl Shared {
    /// Places (or starts) order `i` and waits for its end; `Err` is the
    /// failure kind.
    async fn one(&self, run: &str, i: usize) -> Result<Sample, String> {
        let t0 = Instant::now();
        {
            let mut tally = self.tally.lock().await;
            tally.first_start.get_or_insert(t0);
        }
        let workflow_id = match self.settings.mode {
            Mode::Api => self.place(run, i).await?,
            Mode::Start => self.start(run, i).await?,
        };
        let placed = Instant::now();
        let (outcome, closed_at) = self.wait_for_end(workflow_id).await?;
        let finished = Instant::now();
        // The server stamps the close event with the same host clock.
        let result_delay = SystemTime::now()
            .duration_since(closed_at)
            .unwrap_or_default();
        check_outcome(&outcome)?;
        Ok(Sample {
            placed_ms: ms(placed - t0),
            e2e_ms: ms(finished - t0),
            result_ms: ms(result_delay),
            started: t0,
            finished,
        })
    }

    /// Waits for the saga's close event, as the SDK's `get_result` does
    /// (one long poll for the close event, renewed when it expires), and
    /// also returns when the server closed it, so the report can tell the
    /// order's run from the delivery of its result.
    async fn wait_for_end(
        &self,
        workflow_id: String,
    ) -> Result<(OrderOutcome, SystemTime), String> {
        let handle = self
            .temporal
            .get_workflow_handle::<OrderWorkflow>(workflow_id);
        let options = WorkflowFetchHistoryOptions::builder()
            .skip_archival(true)
            .wait_new_event(true)
            .event_filter_type(HistoryEventFilterType::CloseEvent)
            .build();
        loop {
            let mut events = handle
                .fetch_history(options.clone())
                .into_events()
                .await
                .map_err(|_| "result_error".to_string())?;
            // An empty answer is a long poll that expired first.
            let Some(close) = events.pop() else {
                continue;
            };
            let closed_at = close
                .event_time
                .as_ref()
                .and_then(proto_ts_to_system_time)
                .ok_or_else(|| "close_without_time".to_string())?;
            let attrs = match close.attributes {
                Some(Attributes::WorkflowExecutionCompletedEventAttributes(attrs)) => attrs,
                other => return Err(close_kind(other.as_ref()).to_string()),
            };
            let payload = attrs
                .result
                .and_then(|p| p.payloads.into_iter().next())
                .unwrap_or_default();
            let outcome: OrderOutcome = self
                .temporal
                .data_converter()
                .from_payload(
                    &SerializationContextData::Workflow(WorkflowSerializationContext::new()),
                    payload,
                )
                .await
                .map_err(|_| "bad_result".to_string())?;
            return Ok((outcome, closed_at));
        }
    }

    async fn place(&self, run: &str, i: usize) -> Result<String, String> {
        let Some(grpc) = &self.grpc else {
            return Err("no_grpc_client".to_string());
        };
        let request = PlaceOrderRequest {
            customer_id: format!("bench-{run}-{}", i % 100),
            lines: vec![OrderLineRequest {
                sku: self.settings.sku.clone(),
                quantity: 1,
            }],
            idempotency_key: String::new(),
            customer_email: "bench@example.com".to_string(),
            shipping_address: Some(ordersaga_proto::v1::ShippingAddress {
                name: "Bench Customer".to_string(),
                line1: "1 Load Street".to_string(),
                line2: String::new(),
                city: "Berlin".to_string(),
                postal_code: "10115".to_string(),
                country: "DE".to_string(),
            }),
        };
        let mut request = tonic::Request::new(request);
        if let Some(token) = &self.settings.token {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| "bad_token".to_string())?;
            request.metadata_mut().insert("authorization", value);
        }
        let response = grpc
            .clone()
            .place_order(request)
            .await
            .map_err(|s| format!("place_order:{:?}", s.code()))?;
        Ok(response.into_inner().workflow_id)
    }

    async fn start(&self, run: &str, i: usize) -> Result<String, String> {
        let input = order_input(&self.settings, run, i).map_err(|_| "bad_input".to_string())?;
        let workflow_id = input.order_id.workflow_id();
        let attr = |name| SearchAttributeKey::<String>::keyword(name);
        // The same options as the API's start, so only the API's own work
        // differs between the two modes.
        let options = WorkflowStartOptions::new(self.settings.task_queue.as_str(), &workflow_id)
            .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
            .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
            .execution_timeout(EXECUTION_TIMEOUT)
            .task_timeout(WORKFLOW_TASK_TIMEOUT)
            .search_attributes(SearchAttributes::new([
                attr(search_attribute::ORDER_ID).value_set(input.order_id.to_string()),
                attr(search_attribute::CUSTOMER_ID).value_set(input.customer_id.to_string()),
                attr(search_attribute::ORDER_STATUS).value_set(OrderStatus::Pending.to_string()),
            ]))
            .static_summary(input.summary())
            .build();
        self.temporal
            .start_workflow(OrderWorkflow::run, input, options)
            .await
            .map_err(|_| "start_workflow".to_string())?;
        Ok(workflow_id)
    }
}

fn check_outcome(outcome: &OrderOutcome) -> Result<(), String> {
    match (&outcome.status, &outcome.reason) {
        (OrderStatus::Confirmed, _) => Ok(()),
        (_, Some(reason)) => Err(format!("order_failed:{}", failure_kind(reason))),
        (status, None) => Err(format!("order_{status}")),
    }
}

fn order_input(settings: &BenchSettings, run: &str, i: usize) -> anyhow::Result<OrderInput> {
    let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
    let unit_price = Money::new(
        settings.unit_price_cents,
        ordersaga_domain::Currency::parse("EUR")?,
    );
    Ok(OrderInput {
        order_id,
        transaction_id: TransactionId::for_order(&order_id),
        customer_id: CustomerId::parse(&format!("bench-{run}-{}", i % 100))?,
        lines: vec![OrderLine {
            sku: Sku::parse(&settings.sku)?,
            quantity: 1,
            unit_price,
        }],
        total: unit_price,
        customer_email: Some(ordersaga_domain::EmailAddress::parse("bench@example.com")?),
        shipping_address: Some(
            ordersaga_domain::ShippingAddress {
                name: "Bench Customer".to_string(),
                line1: "1 Load Street".to_string(),
                line2: String::new(),
                city: "Berlin".to_string(),
                postal_code: "10115".to_string(),
                country: "DE".to_string(),
            }
            .validate()?,
        ),
        // Benchmarks measure the saga, not a buyer: no checkout.
        payment: ordersaga_domain::PaymentMode::Simulated,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile, the definition `bench.py` uses.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let len = sorted.len() as f64;
    // Python rounds half to even; so must we, to pick the same sample.
    let rank = (q / 100.0 * len + 0.5).round_ties_even() as usize;
    let k = rank.saturating_sub(1).min(sorted.len() - 1);
    sorted.get(k).copied()
}

/// Drives `count` orders; closed loop at `concurrency`, or open loop at `rate`.
async fn drive(
    shared: &Arc<Shared>,
    run: &str,
    count: usize,
    concurrency: usize,
    rate: Option<f64>,
) {
    shared.done.store(0, Ordering::Relaxed);
    *shared.tally.lock().await = Tally::default();
    let mut tasks = JoinSet::new();
    let record = |shared: Arc<Shared>, result: Result<Sample, String>| async move {
        let mut tally = shared.tally.lock().await;
        match result {
            Ok(s) => tally.samples.push(s),
            Err(kind) => *tally.failures.entry(kind).or_default() += 1,
        }
        shared.done.fetch_add(1, Ordering::Relaxed);
    };
    match rate {
        Some(rate) => {
            let every = Duration::from_secs_f64(1.0 / rate.max(0.001));
            let mut tick = tokio::time::interval(every);
            for i in 0..count {
                tick.tick().await;
                let (shared, run) = (shared.clone(), run.to_string());
                tasks.spawn(async move {
                    let result = shared.one(&run, i).await;
                    record(shared, result).await;
                });
            }
        }
        None => {
            let next = Arc::new(AtomicUsize::new(0));
            for _ in 0..concurrency.max(1).min(count.max(1)) {
                let (shared, run, next) = (shared.clone(), run.to_string(), next.clone());
                tasks.spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            break;
                        }
                        let result = shared.one(&run, i).await;
                        record(shared.clone(), result).await;
                    }
                });
            }
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Shows `done/total` on stderr once a second until `total` is reached.
fn spawn_progress(shared: Arc<Shared>, total: usize) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let done = shared.done.load(Ordering::Relaxed);
            let per_s = done as f64 / started.elapsed().as_secs_f64().max(0.001);
            let width = 30;
            let filled = (done * width)
                .checked_div(total)
                .unwrap_or(width)
                .min(width);
            eprint!(
                "\r[{}{}] {done}/{total} orders  {per_s:.1}/s ",
                "#".repeat(filled),
                " ".repeat(width - filled)
            );
            let _ = std::io::stderr().flush();
            if done >= total {
                eprintln!();
                break;
            }
        }
    })
}

/// Sums the server's state-transition counter for the default namespace.
async fn state_transitions(url: &str) -> Option<f64> {
    let body = reqwest::get(url).await.ok()?.text().await.ok()?;
    let mut sum = 0.0;
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("state_transition_count_count")
            && rest.contains("namespace=\"default\"")
        {
            sum += rest.rsplit(' ').next()?.parse::<f64>().ok()?;
        }
    }
    Some(sum)
}

/// Runs the warm-up and the measured load; returns the report as a flat
/// JSON object (the field names of the peer's `bench.py`).
pub async fn run(settings: BenchSettings) -> anyhow::Result<Map<String, Value>> {
    let temporal = connect(&TemporalSettings {
        address: Some(settings.temporal.clone()),
        namespace: Some("default".to_string()),
        identity: Some("ordersaga-bench".to_string()),
        codec: CodecSettings::load()?,
    })
    .await
    .context("connecting to Temporal")?;
    let grpc = match settings.mode {
        Mode::Api => Some(
            OrderServiceClient::connect(settings.grpc.clone())
                .await
                .with_context(|| format!("connecting to the API at {}", settings.grpc))?,
        ),
        Mode::Start => None,
    };
    let shared = Arc::new(Shared {
        settings: settings.clone(),
        grpc,
        temporal,
        tally: Mutex::new(Tally::default()),
        done: AtomicUsize::new(0),
    });
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    if settings.warmup > 0 {
        drive(
            &shared,
            &format!("{run_id}w"),
            settings.warmup,
            settings.concurrency.min(settings.warmup),
            None,
        )
        .await;
        let tally = shared.tally.lock().await;
        if tally.samples.is_empty() {
            anyhow::bail!("every warm-up order failed: {:?}", tally.failures);
        }
    }

    let cpu0: Vec<Option<f64>> = settings
        .watched
        .iter()
        .map(|w| proc::cpu_seconds(w.pid))
        .collect();
    let st0 = match &settings.server_metrics {
        Some(url) => state_transitions(url).await,
        None => None,
    };
    let progress = (settings.progress && std::io::stderr().is_terminal())
        .then(|| spawn_progress(shared.clone(), settings.n));
    drive(
        &shared,
        &run_id,
        settings.n,
        settings.concurrency,
        settings.rate,
    )
    .await;
    if let Some(p) = progress {
        let _ = p.await;
    }
    let st1 = match &settings.server_metrics {
        Some(url) => {
            // The dev server publishes its counters about once a second:
            // read them after they have caught up with the last order.
            tokio::time::sleep(Duration::from_secs(2)).await;
            state_transitions(url).await
        }
        None => None,
    };

    let tally = shared.tally.lock().await;
    let completed = tally.samples.len();
    let per_order = |x: f64| round(1000.0 * x / completed.max(1) as f64, 2);
    let mut placed: Vec<f64> = tally.samples.iter().map(|s| s.placed_ms).collect();
    let mut e2e: Vec<f64> = tally.samples.iter().map(|s| s.e2e_ms).collect();
    let mut result: Vec<f64> = tally.samples.iter().map(|s| s.result_ms).collect();
    placed.sort_by(f64::total_cmp);
    e2e.sort_by(f64::total_cmp);
    result.sort_by(f64::total_cmp);
    let wall = match (
        tally.first_start,
        tally.samples.iter().map(|s| s.finished).max(),
    ) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => f64::NAN,
    };
    // A closed loop keeps every slot busy until the last order starts; the
    // rest of the wall (the drain) runs below the concurrency, so a slow
    // straggler there lowers orders/s without any order being slower.
    let drain = match (
        tally.samples.iter().map(|s| s.started).max(),
        tally.samples.iter().map(|s| s.finished).max(),
    ) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => f64::NAN,
    };
    let mut r = Map::new();
    r.insert("label".into(), json!(settings.label));
    r.insert(
        "mode".into(),
        json!(match settings.mode {
            Mode::Api => "api",
            Mode::Start => "start",
        }),
    );
    r.insert("n".into(), json!(settings.n));
    r.insert("concurrency".into(), json!(settings.concurrency));
    r.insert("rate".into(), json!(settings.rate));
    r.insert("completed".into(), json!(completed));
    r.insert("errors".into(), json!(tally.failures.values().sum::<u64>()));
    r.insert("failures".into(), json!(tally.failures));
    r.insert("wall_s".into(), json!(round(wall, 3)));
    r.insert("wf_per_s".into(), json!(round(completed as f64 / wall, 2)));
    r.insert("drain_s".into(), json!(round(drain, 3)));
    r.insert("e2e_max_ms".into(), json!(e2e.last().map(|v| round(*v, 2))));
    for (key, xs) in [("start", &placed), ("e2e", &e2e), ("result", &result)] {
        for q in [50.0, 95.0, 99.0] {
            r.insert(
                format!("{key}_p{q:.0}_ms"),
                json!(percentile(xs, q).map(|v| round(v, 2))),
            );
        }
        r.insert(
            format!("{key}_mean_ms"),
            json!(mean(xs).map(|v| round(v, 2))),
        );
    }
    for (w, before) in settings.watched.iter().zip(cpu0) {
        let cpu = match (before, proc::cpu_seconds(w.pid)) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let role = &w.role;
        r.insert(format!("cpu_{role}_s"), json!(cpu.map(|c| round(c, 2))));
        r.insert(format!("{role}_cpu_ms_per_wf"), json!(cpu.map(per_order)));
        let (rss, peak) = proc::rss_mib(w.pid).unzip();
        r.insert(format!("{role}_rss_mb"), json!(rss.map(|v| round(v, 1))));
        r.insert(
            format!("{role}_peak_rss_mb"),
            json!(peak.map(|v| round(v, 1))),
        );
    }
    if let (Some(a), Some(b)) = (st0, st1) {
        r.insert("state_transitions".into(), json!(b - a));
        r.insert(
            "st_per_wf".into(),
            json!(round((b - a) / completed.max(1) as f64, 2)),
        );
    }
    Ok(r)
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank_like_bench_py() {
        // Expected values computed with bench.py's `pct`.
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&xs, 50.0), Some(50.0));
        assert_eq!(percentile(&xs, 95.0), Some(96.0));
        assert_eq!(percentile(&xs, 99.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn mean_averages_and_is_none_when_empty() {
        assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));
        assert_eq!(mean(&[]), None);
    }

    #[test]
    fn reads_this_process_from_proc() {
        let me = std::process::id();
        assert!(proc::cpu_seconds(me).is_some());
        let (rss, peak) = proc::rss_mib(me).unwrap();
        assert!(rss > 0.0 && peak >= rss);
    }
}
