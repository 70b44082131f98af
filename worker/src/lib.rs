//! The worker process: polls Temporal task queues and runs what each queue
//! carries. Run as many as you like per queue; Temporal spreads the work.
//!
//! - `orders`: the order saga ([`OrderWorkflow`]) and its activities;
//! - `notifications`: [`NotificationWorkflow`] and `SendEmail` (SMTP or the
//!   local mailbox);
//! - `shipping`: [`ShippingWorkflow`] and `RequestShipment`.
//!
//! One process serves any subset ([`WorkerSettings::queues`], `--queues`),
//! so each service can be deployed and scaled as its own fleet, with its own
//! concurrency limits. [`WorkerSettings::from_env`] reads the configuration,
//! [`run`] runs until its shutdown future resolves and then drains
//! in-flight work.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ordersaga_activities::gateway::paypal::{BuildError, PayPalGateway, PayPalSettings};
use ordersaga_activities::mail::MailError;
use ordersaga_activities::{
    BusinessMetrics, Delivery, EmailRetry, MailSettings, Mailer, NotificationActivities,
    OrderActivities, RelayActivities, RelaySettings, ShippingActivities, SimulatedGateway,
    SmtpSettings, SmtpTls,
};
use ordersaga_domain::Topic;
use ordersaga_domain::names::{NOTIFICATIONS_TASK_QUEUE, ORDERS_TASK_QUEUE, SHIPPING_TASK_QUEUE};
use ordersaga_runtime::connection::{ConnectError, TemporalSettings, connect};
use ordersaga_store::{Store, StoreError};
use ordersaga_workflows::{
    NotificationWorkflow, OrderWorkflow, OutboxRelayWorkflow, RelayWorkflowInput, ShippingWorkflow,
};
use temporalio_client::errors::WorkflowStartError;
use temporalio_client::{Client, WorkflowIdConflictPolicy, WorkflowStartOptions};
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
    /// The services this process runs (`--queues`); default all.
    pub queues: Vec<Queue>,
    /// The order saga's task queue.
    pub task_queue: String,
    /// `orders`: workflow tasks processed at once.
    pub max_concurrent_workflow_tasks: usize,
    /// `orders`: activities (gateway calls) run at once.
    pub max_concurrent_activities: usize,
    /// `orders`: local activities (database steps) run at once.
    pub max_concurrent_local_activities: usize,
    /// `notifications`: concurrency limits.
    pub notifications: QueueLimits,
    /// `shipping`: concurrency limits.
    pub shipping: QueueLimits,
    /// `notifications`: templates' settings and where email goes.
    pub mail: MailSettings,
    /// `notifications`: delivery retry backoff and horizon.
    pub email_retry: EmailRetry,
    /// How outbox relay slots claim, poll and lease (both services).
    pub relay: RelaySettings,
    /// `notifications`: email relay slots (activities) running at once,
    /// spread over the notifications workers.
    pub email_relay_slots: u32,
    /// `shipping`: shipping-request relay slots running at once.
    pub shipping_relay_slots: u32,
    /// Workflows kept in the sticky cache (saves replays).
    pub max_cached_workflows: usize,
    /// How long a workflow task waits for this worker's sticky queue before
    /// any worker may take it (bounds the stall after a worker dies).
    pub sticky_timeout: Duration,
    /// How long in-flight activities get to finish on shutdown.
    pub graceful_shutdown: Duration,
    /// Latency the simulated payment gateway adds to each call.
    pub gateway_latency: Duration,
    /// The checkout gateway (our payments sandbox or PayPal) for orders in
    /// checkout mode; `None`: this worker serves simulated payments only.
    pub paypal: Option<PayPalSettings>,
    /// Where to serve Prometheus `/metrics`, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            temporal: TemporalSettings::default(),
            database_url: "sqlite://.data/ordersaga.db?mode=rwc".to_string(),
            queues: Queue::ALL.to_vec(),
            task_queue: ORDERS_TASK_QUEUE.to_string(),
            // The smallest values that kept free slots at peak load on the
            // reference machine; see docs/tuning.md for the sweep.
            max_concurrent_workflow_tasks: 20,
            max_concurrent_activities: 50,
            max_concurrent_local_activities: 50,
            notifications: QueueLimits {
                max_workflow_tasks: 10,
                // Each is an SMTP session: the relay's connection limit
                // matters more than our CPU.
                max_activities: 10,
            },
            shipping: QueueLimits {
                max_workflow_tasks: 10,
                max_activities: 20,
            },
            mail: MailSettings::default(),
            email_retry: EmailRetry::default(),
            relay: RelaySettings::default(),
            // Each slot delivers a batch at a time, concurrently: two keep
            // SMTP busy at the reference load (docs/tuning.md).
            email_relay_slots: 2,
            shipping_relay_slots: 1,
            max_cached_workflows: 1000,
            sticky_timeout: Duration::from_secs(10),
            graceful_shutdown: Duration::from_secs(10),
            gateway_latency: Duration::ZERO,
            paypal: None,
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

/// A service (and its task queue) a worker process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    /// The order saga.
    Orders,
    /// Customer and merchant email.
    Notifications,
    /// Shipping requests to the warehouse.
    Shipping,
}

impl Queue {
    /// Every service.
    pub const ALL: [Queue; 3] = [Queue::Orders, Queue::Notifications, Queue::Shipping];

    /// The name used by `--queues` and in `ORDERSAGA_<QUEUE>_*` variables.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Orders => "orders",
            Self::Notifications => "notifications",
            Self::Shipping => "shipping",
        }
    }
}

/// Parses a `--queues` value: comma-separated service names, e.g.
/// `notifications,shipping`; duplicates are ignored.
pub fn parse_queues(value: &str) -> Result<Vec<Queue>, SettingError> {
    let mut queues = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let queue = Queue::ALL
            .into_iter()
            .find(|q| q.as_str() == name)
            .ok_or_else(|| SettingError {
                name: "--queues (orders, notifications, shipping)",
                value: value.to_string(),
            })?;
        if !queues.contains(&queue) {
            queues.push(queue);
        }
    }
    if queues.is_empty() {
        return Err(SettingError {
            name: "--queues (orders, notifications, shipping)",
            value: value.to_string(),
        });
    }
    Ok(queues)
}

/// Concurrency of one service's worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Workflow tasks processed at once.
    pub max_workflow_tasks: usize,
    /// Activities run at once.
    pub max_activities: usize,
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
        if let Ok(value) = std::env::var("ORDERSAGA_QUEUES") {
            s.queues = parse_queues(&value)?;
        }
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
        // Per-queue names; the orders ones override the older unprefixed
        // variables above.
        env_parse(
            "ORDERSAGA_ORDERS_MAX_WORKFLOW_TASKS",
            &mut s.max_concurrent_workflow_tasks,
        )?;
        env_parse(
            "ORDERSAGA_ORDERS_MAX_ACTIVITIES",
            &mut s.max_concurrent_activities,
        )?;
        env_parse(
            "ORDERSAGA_ORDERS_MAX_LOCAL_ACTIVITIES",
            &mut s.max_concurrent_local_activities,
        )?;
        env_parse(
            "ORDERSAGA_NOTIFICATIONS_MAX_WORKFLOW_TASKS",
            &mut s.notifications.max_workflow_tasks,
        )?;
        env_parse(
            "ORDERSAGA_NOTIFICATIONS_MAX_ACTIVITIES",
            &mut s.notifications.max_activities,
        )?;
        env_parse(
            "ORDERSAGA_SHIPPING_MAX_WORKFLOW_TASKS",
            &mut s.shipping.max_workflow_tasks,
        )?;
        env_parse(
            "ORDERSAGA_SHIPPING_MAX_ACTIVITIES",
            &mut s.shipping.max_activities,
        )?;
        mail_from_env(&mut s.mail)?;
        env_millis(
            "ORDERSAGA_EMAIL_RETRY_INITIAL_MS",
            &mut s.email_retry.initial,
        )?;
        env_millis("ORDERSAGA_EMAIL_RETRY_MAX_MS", &mut s.email_retry.max)?;
        let mut horizon = s.email_retry.horizon.as_secs();
        env_parse("ORDERSAGA_EMAIL_RETRY_HORIZON_SECS", &mut horizon)?;
        s.email_retry.horizon = Duration::from_secs(horizon);
        env_parse("ORDERSAGA_RELAY_BATCH", &mut s.relay.batch)?;
        env_millis("ORDERSAGA_RELAY_POLL_MS", &mut s.relay.poll)?;
        env_millis("ORDERSAGA_RELAY_RUN_MS", &mut s.relay.run_for)?;
        env_millis("ORDERSAGA_RELAY_LEASE_MS", &mut s.relay.lease)?;
        env_parse("ORDERSAGA_EMAIL_RELAY_SLOTS", &mut s.email_relay_slots)?;
        env_parse(
            "ORDERSAGA_SHIPPING_RELAY_SLOTS",
            &mut s.shipping_relay_slots,
        )?;
        env_millis("ORDERSAGA_STICKY_TIMEOUT_MS", &mut s.sticky_timeout)?;
        env_millis("ORDERSAGA_GRACEFUL_SHUTDOWN_MS", &mut s.graceful_shutdown)?;
        env_millis("ORDERSAGA_GATEWAY_LATENCY_MS", &mut s.gateway_latency)?;
        s.paypal = PayPalSettings::from_env().map_err(|e| SettingError {
            name: e.variable,
            value: e.problem,
        })?;
        if let Ok(addr) = std::env::var("ORDERSAGA_METRICS_ADDR") {
            s.metrics_addr = Some(addr.parse().map_err(|_| SettingError {
                name: "ORDERSAGA_METRICS_ADDR",
                value: addr,
            })?);
        }
        Ok(s)
    }
}

/// Mail settings from `ORDERSAGA_SMTP_*` (a relay, when
/// `ORDERSAGA_SMTP_HOST` is set) or `ORDERSAGA_MAILBOX_DIR` (the local
/// mailbox, otherwise), plus sender, merchant and link settings.
fn mail_from_env(mail: &mut MailSettings) -> Result<(), SettingError> {
    if let Ok(dir) = std::env::var("ORDERSAGA_MAILBOX_DIR") {
        mail.delivery = Delivery::Mailbox(dir.into());
    }
    if let Ok(host) = std::env::var("ORDERSAGA_SMTP_HOST") {
        let mut tls = SmtpTls::StartTls;
        env_parse("ORDERSAGA_SMTP_TLS", &mut tls)?;
        let mut port: u16 = match tls {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
        };
        env_parse("ORDERSAGA_SMTP_PORT", &mut port)?;
        let mut timeout = Duration::from_secs(10);
        env_millis("ORDERSAGA_SMTP_TIMEOUT_MS", &mut timeout)?;
        mail.delivery = Delivery::Smtp(SmtpSettings {
            host,
            port,
            tls,
            username: std::env::var("ORDERSAGA_SMTP_USERNAME").ok(),
            password: std::env::var("ORDERSAGA_SMTP_PASSWORD").ok(),
            timeout,
        });
    }
    env_parse("ORDERSAGA_MAIL_FROM", &mut mail.from)?;
    env_parse("ORDERSAGA_PUBLIC_URL", &mut mail.public_url)?;
    env_parse("ORDERSAGA_SHOP_NAME", &mut mail.shop_name)?;
    if let Ok(merchant) = std::env::var("ORDERSAGA_MERCHANT_EMAIL") {
        mail.merchant = Some(merchant);
    }
    Ok(())
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
    /// The mail settings are invalid (e.g. a malformed `From:` address).
    #[error("mail settings")]
    Mail(#[from] MailError),
    /// The checkout gateway's HTTP client could not be built.
    #[error("checkout gateway")]
    Checkout(#[from] BuildError),
    /// The SDK refused the worker's setup or failed while running.
    #[error("temporal worker: {0}")]
    Sdk(String),
}

fn sdk(e: impl std::fmt::Display) -> WorkerError {
    WorkerError::Sdk(e.to_string())
}

fn tuner(workflow_tasks: usize, activities: usize, local_activities: usize) -> TunerHolder {
    TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(workflow_tasks))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(activities))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(local_activities))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .build()
}

/// The SDK worker options of one service.
fn queue_options(
    queue: Queue,
    settings: &WorkerSettings,
    store: &Store,
    business: &BusinessMetrics,
) -> Result<WorkerOptions, WorkerError> {
    let options = match queue {
        Queue::Orders => {
            let gateway = Arc::new(SimulatedGateway::new(
                store.clone(),
                settings.gateway_latency,
            ));
            let mut activities =
                OrderActivities::new(store.clone(), gateway).with_metrics(business.clone());
            if let Some(paypal) = &settings.paypal {
                tracing::info!(base_url = %paypal.base_url, "checkout payments through the PayPal adapter");
                activities =
                    activities.with_checkout(Arc::new(PayPalGateway::new(paypal.clone())?));
            }
            WorkerOptions::new(settings.task_queue.as_str())
                .register_workflow::<OrderWorkflow>()
                .map_err(sdk)?
                .register_activities(activities)
                .tuner(tuner(
                    settings.max_concurrent_workflow_tasks,
                    settings.max_concurrent_activities,
                    settings.max_concurrent_local_activities,
                ))
        }
        Queue::Notifications => {
            let mailer = Arc::new(Mailer::new(settings.mail.clone())?);
            let notifications =
                || NotificationActivities::new(store.clone(), mailer.clone(), settings.email_retry);
            WorkerOptions::new(NOTIFICATIONS_TASK_QUEUE)
                .register_workflow::<OutboxRelayWorkflow>()
                .map_err(sdk)?
                .register_activities(
                    RelayActivities::new(store.clone(), settings.relay)
                        .with_email(Arc::new(notifications()))
                        .with_metrics(business.clone()),
                )
                // Sagas from before the outbox send through these.
                .register_workflow::<NotificationWorkflow>()
                .map_err(sdk)?
                .register_activities(notifications())
                .tuner(tuner(
                    settings.notifications.max_workflow_tasks,
                    settings.notifications.max_activities,
                    1,
                ))
        }
        Queue::Shipping => WorkerOptions::new(SHIPPING_TASK_QUEUE)
            .register_workflow::<OutboxRelayWorkflow>()
            .map_err(sdk)?
            .register_activities(
                RelayActivities::new(store.clone(), settings.relay)
                    .with_shipping()
                    .with_metrics(business.clone()),
            )
            // Sagas from before the outbox request shipping through these.
            .register_workflow::<ShippingWorkflow>()
            .map_err(sdk)?
            .register_activities(ShippingActivities::new(store.clone()))
            .tuner(tuner(
                settings.shipping.max_workflow_tasks,
                settings.shipping.max_activities,
                1,
            )),
    };
    Ok(options
        .max_cached_workflows(settings.max_cached_workflows)
        .sticky_queue_schedule_to_start_timeout(settings.sticky_timeout)
        .graceful_shutdown_period(settings.graceful_shutdown)
        .build())
}

/// Starts each outbox topic's relay workflow unless it runs already. Every
/// worker does this, whatever its queues: with no worker on a service's
/// queue the relay's first task waits there (a visible backlog) and the
/// service's first worker picks it up.
pub async fn ensure_relays(client: &Client, settings: &WorkerSettings) -> Result<(), WorkerError> {
    for (input, queue) in [
        (
            RelayWorkflowInput {
                topic: Topic::Email,
                slots: settings.email_relay_slots,
            },
            NOTIFICATIONS_TASK_QUEUE,
        ),
        (
            RelayWorkflowInput {
                topic: Topic::Shipment,
                slots: settings.shipping_relay_slots,
            },
            SHIPPING_TASK_QUEUE,
        ),
    ] {
        let options = WorkflowStartOptions::new(queue, input.workflow_id())
            .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
            .static_summary(format!("Relays the outbox's {} messages", input.topic))
            .build();
        match client
            .start_workflow(OutboxRelayWorkflow::run, input, options)
            .await
        {
            Ok(_) | Err(WorkflowStartError::AlreadyStarted { .. }) => {}
            Err(e) => return Err(sdk(e)),
        }
    }
    Ok(())
}

/// Runs one SDK worker per selected service until `shutdown` resolves,
/// then lets in-flight tasks finish (up to
/// [`WorkerSettings::graceful_shutdown`]) and returns.
///
/// The SDK's worker future is not `Send`: await this on the task that owns
/// the runtime (e.g. in `main`, or a thread with a current-thread runtime).
/// The services' workers are joined on that one task.
pub async fn run(
    settings: WorkerSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let store = Store::connect(&settings.database_url).await?;
    let client = connect(&settings.temporal).await?;
    ensure_relays(&client, &settings).await?;

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

    let mut workers = Vec::with_capacity(settings.queues.len());
    for queue in &settings.queues {
        let options = queue_options(*queue, &settings, &store, &business)?;
        let worker = Worker::new(&runtime, client.clone(), options).map_err(sdk)?;
        workers.push((*queue, worker));
    }
    let stops: Vec<_> = workers.iter().map(|(_, w)| w.shutdown_handle()).collect();
    let names: Vec<&str> = workers.iter().map(|(q, _)| q.as_str()).collect();
    tracing::info!(queues = ?names, orders_task_queue = %settings.task_queue, "worker polling");

    let running = futures::future::join_all(workers.iter_mut().map(|(_, w)| w.run()));
    tokio::pin!(running);
    let results = tokio::select! {
        r = &mut running => r,
        () = shutdown => {
            tracing::info!("shutdown requested, draining in-flight tasks");
            for stop in &stops {
                stop();
            }
            running.await
        }
    };
    store.close().await;
    drop(metrics_server);
    results.into_iter().collect::<Result<(), _>>().map_err(sdk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_parse_as_a_comma_separated_subset() {
        assert_eq!(
            parse_queues("notifications, shipping,notifications").unwrap(),
            [Queue::Notifications, Queue::Shipping]
        );
        assert_eq!(parse_queues("orders").unwrap(), [Queue::Orders]);
        assert!(parse_queues("").is_err());
        assert!(parse_queues("orders,email").is_err());
        assert_eq!(WorkerSettings::default().queues, Queue::ALL);
    }
}
