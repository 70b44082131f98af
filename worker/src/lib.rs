//! The worker process: polls a Temporal task queue and runs the order saga
//! ([`OrderWorkflow`]) and its activities. Run as many as you like on one
//! task queue; Temporal spreads the work across them.
//!
//! [`WorkerSettings::from_env`] reads the configuration, [`run`] runs until
//! its shutdown future resolves and then drains in-flight work.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ordersaga_activities::connection::{ConnectError, TemporalSettings, connect};
use ordersaga_activities::{BusinessMetrics, OrderActivities, SimulatedGateway, Store, StoreError};
use ordersaga_domain::names::ORDERS_TASK_QUEUE;
use ordersaga_workflows::OrderWorkflow;
use temporalio_common::telemetry::metrics::CoreMeter;
use temporalio_common::telemetry::{
    PrometheusExporterOptions, TelemetryOptions, start_prometheus_metric_exporter,
};
use temporalio_sdk::runtime::RuntimeOptions;
use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

/// Everything a worker process can be told. Defaults suit the local dev
/// stack; each field has an `ORDERSAGA_*` variable (see the README).
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Temporal connection overrides on top of the SDK's envconfig.
    pub temporal: TemporalSettings,
    /// The shop database: `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// The task queue to poll.
    pub task_queue: String,
    /// Workflow tasks processed at once.
    pub max_concurrent_workflow_tasks: usize,
    /// Activities (gateway calls) run at once.
    pub max_concurrent_activities: usize,
    /// Local activities (database steps) run at once.
    pub max_concurrent_local_activities: usize,
    /// Workflows kept in the sticky cache (saves replays).
    pub max_cached_workflows: usize,
    /// How long a workflow task waits for this worker's sticky queue before
    /// any worker may take it (bounds the stall after a worker dies).
    pub sticky_timeout: Duration,
    /// How long in-flight activities get to finish on shutdown.
    pub graceful_shutdown: Duration,
    /// Latency the simulated payment gateway adds to each call.
    pub gateway_latency: Duration,
    /// Where to serve Prometheus `/metrics`, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            temporal: TemporalSettings::default(),
            database_url: "sqlite://.data/ordersaga.db?mode=rwc".to_string(),
            task_queue: ORDERS_TASK_QUEUE.to_string(),
            // The smallest values that kept free slots at peak load on the
            // reference machine; see docs/tuning.md for the sweep.
            max_concurrent_workflow_tasks: 20,
            max_concurrent_activities: 50,
            max_concurrent_local_activities: 50,
            max_cached_workflows: 1000,
            sticky_timeout: Duration::from_secs(10),
            graceful_shutdown: Duration::from_secs(10),
            gateway_latency: Duration::ZERO,
            metrics_addr: None,
        }
    }
}

/// A configuration value that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{name}: cannot parse {value:?}")]
pub struct SettingError {
    name: &'static str,
    value: String,
}

fn env_parse<T: std::str::FromStr>(name: &'static str, into: &mut T) -> Result<(), SettingError> {
    if let Ok(value) = std::env::var(name) {
        *into = value.parse().map_err(|_| SettingError { name, value })?;
    }
    Ok(())
}

fn env_millis(name: &'static str, into: &mut Duration) -> Result<(), SettingError> {
    let mut ms = u64::try_from(into.as_millis()).unwrap_or(u64::MAX);
    env_parse(name, &mut ms)?;
    *into = Duration::from_millis(ms);
    Ok(())
}

impl WorkerSettings {
    /// Defaults overridden by `ORDERSAGA_*` variables; Temporal's own
    /// `TEMPORAL_*` variables are read by envconfig when connecting.
    pub fn from_env() -> Result<Self, SettingError> {
        let mut s = Self::default();
        env_parse("ORDERSAGA_DATABASE_URL", &mut s.database_url)?;
        env_parse("ORDERSAGA_TASK_QUEUE", &mut s.task_queue)?;
        env_parse(
            "ORDERSAGA_MAX_WORKFLOW_TASKS",
            &mut s.max_concurrent_workflow_tasks,
        )?;
        env_parse("ORDERSAGA_MAX_ACTIVITIES", &mut s.max_concurrent_activities)?;
        env_parse(
            "ORDERSAGA_MAX_LOCAL_ACTIVITIES",
            &mut s.max_concurrent_local_activities,
        )?;
        env_parse(
            "ORDERSAGA_MAX_CACHED_WORKFLOWS",
            &mut s.max_cached_workflows,
        )?;
        env_millis("ORDERSAGA_STICKY_TIMEOUT_MS", &mut s.sticky_timeout)?;
        env_millis("ORDERSAGA_GRACEFUL_SHUTDOWN_MS", &mut s.graceful_shutdown)?;
        env_millis("ORDERSAGA_GATEWAY_LATENCY_MS", &mut s.gateway_latency)?;
        if let Ok(addr) = std::env::var("ORDERSAGA_METRICS_ADDR") {
            s.metrics_addr = Some(addr.parse().map_err(|_| SettingError {
                name: "ORDERSAGA_METRICS_ADDR",
                value: addr,
            })?);
        }
        Ok(s)
    }
}

/// Why the worker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The shop database is unreachable or its migrations failed.
    #[error("shop database")]
    Store(#[from] StoreError),
    /// Temporal is unreachable or misconfigured.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The SDK refused the worker's setup or failed while running.
    #[error("temporal worker: {0}")]
    Sdk(String),
}

fn sdk(e: impl std::fmt::Display) -> WorkerError {
    WorkerError::Sdk(e.to_string())
}

/// Runs a worker until `shutdown` resolves, then lets in-flight tasks
/// finish (up to [`WorkerSettings::graceful_shutdown`]) and returns.
///
/// The SDK's worker future is not `Send`: await this on the task that owns
/// the runtime (e.g. in `main`, or a thread with a current-thread runtime).
pub async fn run(
    settings: WorkerSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let store = Store::connect(&settings.database_url).await?;
    let gateway = Arc::new(SimulatedGateway::new(
        store.clone(),
        settings.gateway_latency,
    ));
    let client = connect(&settings.temporal).await?;

    // Kept alive until the worker stops: dropping it stops serving /metrics.
    let metrics_server = settings
        .metrics_addr
        .map(|addr| {
            tracing::info!(%addr, "serving Prometheus metrics");
            start_prometheus_metric_exporter(
                PrometheusExporterOptions::builder()
                    .socket_addr(addr)
                    .build(),
            )
        })
        .transpose()
        .map_err(sdk)?;
    let meter = metrics_server
        .as_ref()
        .map(|m| -> Arc<dyn CoreMeter> { m.meter.clone() });
    // Business counters share the SDK's meter, so /metrics serves both.
    let business = meter
        .as_ref()
        .map_or_else(BusinessMetrics::noop, BusinessMetrics::new);
    let runtime_options = RuntimeOptions::builder()
        .telemetry_options(TelemetryOptions::builder().maybe_metrics(meter).build())
        .build()
        .map_err(sdk)?;
    let runtime = Runtime::from_current_tokio(runtime_options).map_err(sdk)?;

    let tuner = TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(
            settings.max_concurrent_workflow_tasks,
        ))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(
            settings.max_concurrent_activities,
        ))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(
            settings.max_concurrent_local_activities,
        ))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .build();
    let options = WorkerOptions::new(settings.task_queue.as_str())
        .register_workflow::<OrderWorkflow>()
        .map_err(sdk)?
        .register_activities(OrderActivities::new(store.clone(), gateway).with_metrics(business))
        .tuner(tuner)
        .max_cached_workflows(settings.max_cached_workflows)
        .sticky_queue_schedule_to_start_timeout(settings.sticky_timeout)
        .graceful_shutdown_period(settings.graceful_shutdown)
        .build();
    let mut worker = Worker::new(&runtime, client, options).map_err(sdk)?;
    let stop = worker.shutdown_handle();
    tracing::info!(task_queue = %settings.task_queue, "worker polling");

    let running = worker.run();
    tokio::pin!(running);
    let result = tokio::select! {
        r = &mut running => r,
        () = shutdown => {
            tracing::info!("shutdown requested, draining in-flight tasks");
            stop();
            running.await
        }
    };
    store.close().await;
    drop(metrics_server);
    result.map_err(sdk)
}
