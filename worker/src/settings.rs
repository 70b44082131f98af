//! What a worker process can be told: [`WorkerSettings`], loaded through
//! the runtime's settings loader (defaults, `ordersaga.toml`, `ORDERSAGA_*`
//! variables; see the README's table) and the `--queues` argument.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ordersaga_activities::gateway::paypal::{PayPalSettings, VoidMode};
use ordersaga_activities::{
    Delivery, EmailRetry, MailSettings, RelaySettings, SmtpSettings, SmtpTls,
};
use ordersaga_domain::names::{ORDERS_TASK_QUEUE, WORKER_DEPLOYMENT_NAME};
use ordersaga_domain::{DEFAULT_AMENDMENT_DEADLINE_SECS, PartialAvailability, ReconcileInput};
use ordersaga_events::EventSettings;
use ordersaga_runtime::Secret;
use ordersaga_runtime::codec::CodecSettings;
use ordersaga_runtime::connection::TemporalSettings;
use ordersaga_runtime::settings::{Load, Parsed, SettingsError, Sources, set};
use serde::Deserialize;
use temporalio_common::worker::WorkerDeploymentVersion;

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
    /// `orders`: long polls waiting for new orders' first workflow tasks
    /// (four sticky polls for cached orders come with each); `None`: the
    /// SDK's default (one, or poller autoscaling where the namespace
    /// offers it).
    pub new_task_polls: Option<usize>,
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
    /// `shipping`: shipments kept in the cache. A shipment waits days for
    /// its courier between tasks, so caching it saves a replay days later
    /// at the price of memory now.
    pub shipping_max_cached_workflows: usize,
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
    /// The web shop's base URL (`ORDERSAGA_SHOP_URL`, e.g.
    /// `http://127.0.0.1:8080`): the payment page sends checkout buyers
    /// back to their order's page there; `None`: the gateway shows its own
    /// status page.
    pub shop_url: Option<String>,
    /// What a paid checkout order some lines of which cannot be served
    /// becomes (`ORDERSAGA_PARTIAL_AVAILABILITY`, `ask` or `fail`): an
    /// amendment the customer accepts or cancels, or a failed order.
    pub partial_availability: PartialAvailability,
    /// How long the customer has to decide on an amended order
    /// (`ORDERSAGA_AMENDMENT_DEADLINE_SECS`, default a day); then it fails
    /// and is refunded in full.
    pub amendment_deadline: Duration,
    /// Where to serve Prometheus `/metrics`, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// How often the reconciler's schedule runs; `None`: this worker
    /// leaves the schedule as it is (creates or updates none).
    pub reconcile_every: Option<Duration>,
    /// What each reconciler run looks at (grace period, limit).
    pub reconcile: ReconcileInput,
    /// Domain events: published to NATS JetStream by this worker's relay
    /// when `events.nats` is set (`ORDERSAGA_NATS_URL`); else none are
    /// written.
    pub events: EventSettings,
    /// The Worker Deployment this worker belongs to (docs/operations.md).
    pub deployment_name: String,
    /// This worker's build within the deployment: one id per build of the
    /// code, the same on every host running it
    /// ([`crate::versioning::default_build_id`] unless configured).
    pub build_id: String,
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
            new_task_polls: None,
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
            // 1,000 cached shipments held ~57 MB (bench/notes.md, issue 15).
            shipping_max_cached_workflows: 100,
            sticky_timeout: Duration::from_secs(10),
            graceful_shutdown: Duration::from_secs(10),
            gateway_latency: Duration::ZERO,
            paypal: None,
            shop_url: None,
            partial_availability: PartialAvailability::Ask,
            amendment_deadline: Duration::from_secs(DEFAULT_AMENDMENT_DEADLINE_SECS),
            metrics_addr: None,
            reconcile_every: Some(Duration::from_secs(300)),
            reconcile: ReconcileInput::default(),
            events: EventSettings::default(),
            deployment_name: WORKER_DEPLOYMENT_NAME.to_string(),
            build_id: crate::versioning::default_build_id(),
        }
    }
}

ordersaga_domain::text_enum!(
    /// A service (and its task queue) a worker process can run; its name is
    /// the one used by `--queues` and in `ORDERSAGA_<QUEUE>_*` variables.
    Queue {
        /// The order saga.
        Orders => "orders",
        /// Customer and merchant email.
        Notifications => "notifications",
        /// Shipping requests to the warehouse.
        Shipping => "shipping",
    }
);

/// A `--queues` / `ORDERSAGA_QUEUES` value that names no known service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected services from orders, notifications, shipping (comma-separated), got {0:?}")]
pub struct QueuesError(String);

/// Parses a `--queues` value: comma-separated service names, e.g.
/// `notifications,shipping`; duplicates are ignored.
pub fn parse_queues(value: &str) -> Result<Vec<Queue>, QueuesError> {
    let mut queues = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let queue: Queue = name.parse().map_err(|_| QueuesError(value.to_string()))?;
        if !queues.contains(&queue) {
            queues.push(queue);
        }
    }
    if queues.is_empty() {
        return Err(QueuesError(value.to_string()));
    }
    Ok(queues)
}

/// The services a process runs, as `ORDERSAGA_QUEUES` spells them.
struct QueueList(Vec<Queue>);

impl FromStr for QueueList {
    type Err = QueuesError;
    fn from_str(s: &str) -> Result<Self, QueuesError> {
        parse_queues(s).map(Self)
    }
}

/// The most new-task polls one worker may run: 500 polls and slots with
/// their sticky ones, far past what a server hands one process.
const MAX_NEW_TASK_POLLS: usize = 100;

/// The largest relay batch: a round completes its delivered messages in
/// one statement, one bound parameter each (PostgreSQL takes 65,535,
/// SQLite 32,766), and one lease covers the whole batch.
const MAX_RELAY_BATCH: u32 = 1_000;

/// Concurrency of one service's worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Workflow tasks processed at once.
    pub max_workflow_tasks: usize,
    /// Activities run at once.
    pub max_activities: usize,
}

/// The worker's settings as given, named as the variables without
/// `ORDERSAGA_` (and as the keys of `ordersaga.toml`).
#[derive(Deserialize)]
pub struct WorkerVars {
    database_url: Option<String>,
    queues: Option<Parsed<QueueList>>,
    task_queue: Option<String>,
    max_workflow_tasks: Option<usize>,
    max_activities: Option<usize>,
    max_local_activities: Option<usize>,
    max_cached_workflows: Option<usize>,
    shipping_max_cached_workflows: Option<usize>,
    orders_max_workflow_tasks: Option<usize>,
    orders_max_activities: Option<usize>,
    orders_max_local_activities: Option<usize>,
    orders_new_task_polls: Option<usize>,
    notifications_max_workflow_tasks: Option<usize>,
    notifications_max_activities: Option<usize>,
    shipping_max_workflow_tasks: Option<usize>,
    shipping_max_activities: Option<usize>,
    mailbox_dir: Option<PathBuf>,
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    smtp_tls: Option<Parsed<SmtpTls>>,
    smtp_username: Option<String>,
    smtp_password: Option<Secret>,
    smtp_timeout_ms: Option<u64>,
    mail_from: Option<String>,
    public_url: Option<String>,
    shop_name: Option<String>,
    merchant_email: Option<String>,
    email_retry_initial_ms: Option<u64>,
    email_retry_max_ms: Option<u64>,
    email_retry_horizon_secs: Option<u64>,
    relay_batch: Option<u32>,
    relay_poll_ms: Option<u64>,
    relay_run_ms: Option<u64>,
    relay_lease_ms: Option<u64>,
    email_relay_slots: Option<u32>,
    shipping_relay_slots: Option<u32>,
    dispatch_alert_secs: Option<u64>,
    sticky_timeout_ms: Option<u64>,
    graceful_shutdown_ms: Option<u64>,
    gateway_latency_ms: Option<u64>,
    paypal_base_url: Option<String>,
    paypal_client_id: Option<String>,
    paypal_client_secret: Option<Secret>,
    paypal_timeout_ms: Option<u64>,
    paypal_void: Option<VoidMode>,
    shop_url: Option<String>,
    partial_availability: Option<Parsed<PartialAvailability>>,
    amendment_deadline_secs: Option<u64>,
    metrics_addr: Option<SocketAddr>,
    reconcile_every_secs: Option<u64>,
    reconcile_grace_secs: Option<u64>,
    reconcile_limit: Option<u32>,
    codec_keys: Option<Secret>,
    codec_keys_file: Option<PathBuf>,
    deployment_name: Option<String>,
    build_id: Option<String>,
}

fn millis(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

// Temporal's own `TEMPORAL_*` variables are read by envconfig when
// connecting, not here.
impl Load for WorkerSettings {
    type Given = WorkerVars;

    fn apply(&mut self, v: WorkerVars) {
        let s = self;
        set(&mut s.database_url, v.database_url);
        set(&mut s.queues, v.queues.map(|q| q.0.0));
        set(&mut s.task_queue, v.task_queue);
        // The per-queue names override the older unprefixed ones.
        set(
            &mut s.max_concurrent_workflow_tasks,
            v.orders_max_workflow_tasks.or(v.max_workflow_tasks),
        );
        set(
            &mut s.max_concurrent_activities,
            v.orders_max_activities.or(v.max_activities),
        );
        set(
            &mut s.max_concurrent_local_activities,
            v.orders_max_local_activities.or(v.max_local_activities),
        );
        set(&mut s.new_task_polls, v.orders_new_task_polls.map(Some));
        set(&mut s.max_cached_workflows, v.max_cached_workflows);
        set(
            &mut s.shipping_max_cached_workflows,
            v.shipping_max_cached_workflows,
        );
        set(
            &mut s.notifications.max_workflow_tasks,
            v.notifications_max_workflow_tasks,
        );
        set(
            &mut s.notifications.max_activities,
            v.notifications_max_activities,
        );
        set(
            &mut s.shipping.max_workflow_tasks,
            v.shipping_max_workflow_tasks,
        );
        set(&mut s.shipping.max_activities, v.shipping_max_activities);

        // Email goes to the local mailbox unless an SMTP host is given.
        set(&mut s.mail.delivery, v.mailbox_dir.map(Delivery::Mailbox));
        if let Some(host) = v.smtp_host {
            let tls = v.smtp_tls.map_or(SmtpTls::StartTls, |t| t.0);
            let default_port = match tls {
                SmtpTls::None => 25,
                SmtpTls::StartTls => 587,
                SmtpTls::Tls => 465,
            };
            s.mail.delivery = Delivery::Smtp(SmtpSettings {
                host,
                port: v.smtp_port.unwrap_or(default_port),
                tls,
                username: v.smtp_username,
                password: v.smtp_password,
                timeout: millis(v.smtp_timeout_ms).unwrap_or(Duration::from_secs(10)),
            });
        }
        set(&mut s.mail.from, v.mail_from);
        set(&mut s.mail.public_url, v.public_url);
        set(&mut s.mail.shop_name, v.shop_name);
        set(&mut s.mail.merchant, v.merchant_email.map(Some));
        set(&mut s.email_retry.initial, millis(v.email_retry_initial_ms));
        set(&mut s.email_retry.max, millis(v.email_retry_max_ms));
        set(
            &mut s.email_retry.horizon,
            v.email_retry_horizon_secs.map(Duration::from_secs),
        );

        set(&mut s.relay.batch, v.relay_batch);
        set(&mut s.relay.poll, millis(v.relay_poll_ms));
        set(&mut s.relay.run_for, millis(v.relay_run_ms));
        set(&mut s.relay.lease, millis(v.relay_lease_ms));
        set(&mut s.email_relay_slots, v.email_relay_slots);
        set(&mut s.shipping_relay_slots, v.shipping_relay_slots);
        if let Some(secs) = v.dispatch_alert_secs {
            // 0: shipments are never flagged for waiting.
            s.relay.dispatch_alert = (secs > 0).then(|| Duration::from_secs(secs));
        }
        set(&mut s.sticky_timeout, millis(v.sticky_timeout_ms));
        set(&mut s.graceful_shutdown, millis(v.graceful_shutdown_ms));
        set(&mut s.gateway_latency, millis(v.gateway_latency_ms));
        set(
            &mut s.partial_availability,
            v.partial_availability.map(|p| p.0),
        );
        set(
            &mut s.amendment_deadline,
            v.amendment_deadline_secs.map(Duration::from_secs),
        );

        s.paypal = v.paypal_base_url.map(|base_url| {
            let mut paypal = PayPalSettings::at(&base_url);
            set(&mut paypal.client_id, v.paypal_client_id);
            set(&mut paypal.client_secret, v.paypal_client_secret);
            set(&mut paypal.timeout, millis(v.paypal_timeout_ms));
            set(&mut paypal.void_mode, v.paypal_void);
            paypal
        });
        if v.shop_url.is_some() {
            s.shop_url = v.shop_url;
        }
        s.metrics_addr = v.metrics_addr;
        if let Some(every) = v.reconcile_every_secs {
            // 0 turns this worker's schedule management off.
            s.reconcile_every = (every > 0).then(|| Duration::from_secs(every));
        }
        set(&mut s.reconcile.grace_secs, v.reconcile_grace_secs);
        set(&mut s.reconcile.limit, v.reconcile_limit);
        s.temporal.codec = CodecSettings {
            keys: v.codec_keys,
            keys_file: v.codec_keys_file,
        };
        set(&mut s.deployment_name, v.deployment_name);
        set(&mut s.build_id, v.build_id);
    }

    fn from_sources(sources: &Sources) -> Result<Self, SettingsError> {
        let mut settings = Self::default();
        settings.apply(sources.load()?);
        settings.events = EventSettings::from_sources(sources)?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), SettingsError> {
        self.temporal.codec.check()?;
        if let Some(polls) = self.new_task_polls
            && !(1..=MAX_NEW_TASK_POLLS).contains(&polls)
        {
            return Err(SettingsError::Invalid {
                name: "ORDERSAGA_ORDERS_NEW_TASK_POLLS".to_string(),
                problem: format!(
                    "must be 1 to {MAX_NEW_TASK_POLLS} (each brings four sticky polls and five slots)"
                ),
            });
        }
        if !(1..=MAX_RELAY_BATCH).contains(&self.relay.batch) {
            return Err(SettingsError::Invalid {
                name: "ORDERSAGA_RELAY_BATCH".to_string(),
                problem: format!("must be 1 to {MAX_RELAY_BATCH} messages"),
            });
        }
        for (name, value) in [
            ("ORDERSAGA_DEPLOYMENT_NAME", &self.deployment_name),
            ("ORDERSAGA_BUILD_ID", &self.build_id),
        ] {
            if value.trim().is_empty() {
                return Err(SettingsError::Invalid {
                    name: name.to_string(),
                    problem: "must not be empty (Worker Deployment Versioning)".to_string(),
                });
            }
        }
        self.relay
            .check_delivery(&self.mail.delivery)
            .map_err(|e| SettingsError::Invalid {
                name: "ORDERSAGA_SMTP_TIMEOUT_MS".to_string(),
                problem: e.to_string(),
            })
    }
}

impl WorkerSettings {
    /// The Worker Deployment Version this worker announces.
    pub fn deployment_version(&self) -> WorkerDeploymentVersion {
        WorkerDeploymentVersion::builder()
            .deployment_name(self.deployment_name.clone())
            .build_id(self.build_id.clone())
            .build()
    }

    /// Applies the command line (`--queues a,b`) on top of the settings.
    pub fn apply_args(&mut self, args: impl IntoIterator<Item = String>) -> Result<(), ArgsError> {
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let queues = match arg.as_str() {
                "--queues" => args.next().ok_or(ArgsError::MissingValue)?,
                "-h" | "--help" => return Err(ArgsError::Help),
                other => match other.strip_prefix("--queues=") {
                    Some(v) => v.to_string(),
                    None => return Err(ArgsError::Unknown(other.to_string())),
                },
            };
            self.queues = parse_queues(&queues)?;
        }
        Ok(())
    }
}

/// The worker's command line.
pub const USAGE: &str = "usage: ordersaga-worker [--queues orders,notifications,shipping]";

/// A command line the worker does not run with.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// `--help`: print [`USAGE`] and stop.
    #[error("{USAGE}")]
    Help,
    /// `--queues` without a value.
    #[error("--queues needs a value\n{USAGE}")]
    MissingValue,
    /// An argument the worker does not know.
    #[error("unknown argument {0:?}\n{USAGE}")]
    Unknown(String),
    /// `--queues` names an unknown service.
    #[error("--queues: {0}")]
    Queues(#[from] QueuesError),
}

#[cfg(test)]
mod tests;
