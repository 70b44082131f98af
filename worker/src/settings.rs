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
use ordersaga_domain::ReconcileInput;
use ordersaga_domain::names::ORDERS_TASK_QUEUE;
use ordersaga_runtime::Secret;
use ordersaga_runtime::connection::TemporalSettings;
use ordersaga_runtime::settings::{Load, Parsed, SettingsError, set};
use serde::Deserialize;

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
    /// How often the reconciler's schedule runs; `None`: this worker
    /// leaves the schedule as it is (creates or updates none).
    pub reconcile_every: Option<Duration>,
    /// What each reconciler run looks at (grace period, limit).
    pub reconcile: ReconcileInput,
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
            reconcile_every: Some(Duration::from_secs(300)),
            reconcile: ReconcileInput::default(),
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
    orders_max_workflow_tasks: Option<usize>,
    orders_max_activities: Option<usize>,
    orders_max_local_activities: Option<usize>,
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
    sticky_timeout_ms: Option<u64>,
    graceful_shutdown_ms: Option<u64>,
    gateway_latency_ms: Option<u64>,
    paypal_base_url: Option<String>,
    paypal_client_id: Option<String>,
    paypal_client_secret: Option<Secret>,
    paypal_timeout_ms: Option<u64>,
    paypal_void: Option<VoidMode>,
    metrics_addr: Option<SocketAddr>,
    reconcile_every_secs: Option<u64>,
    reconcile_grace_secs: Option<u64>,
    reconcile_limit: Option<u32>,
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
        set(&mut s.max_cached_workflows, v.max_cached_workflows);
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
        set(&mut s.sticky_timeout, millis(v.sticky_timeout_ms));
        set(&mut s.graceful_shutdown, millis(v.graceful_shutdown_ms));
        set(&mut s.gateway_latency, millis(v.gateway_latency_ms));

        s.paypal = v.paypal_base_url.map(|base_url| {
            let mut paypal = PayPalSettings::at(&base_url);
            set(&mut paypal.client_id, v.paypal_client_id);
            set(&mut paypal.client_secret, v.paypal_client_secret);
            set(&mut paypal.timeout, millis(v.paypal_timeout_ms));
            set(&mut paypal.void_mode, v.paypal_void);
            paypal
        });
        s.metrics_addr = v.metrics_addr;
        if let Some(every) = v.reconcile_every_secs {
            // 0 turns this worker's schedule management off.
            s.reconcile_every = (every > 0).then(|| Duration::from_secs(every));
        }
        set(&mut s.reconcile.grace_secs, v.reconcile_grace_secs);
        set(&mut s.reconcile.limit, v.reconcile_limit);
    }

    fn check(&self) -> Result<(), SettingsError> {
        self.relay
            .check_delivery(&self.mail.delivery)
            .map_err(|e| SettingsError::Invalid {
                name: "ORDERSAGA_SMTP_TIMEOUT_MS".to_string(),
                problem: e.to_string(),
            })
    }
}

impl WorkerSettings {
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
mod tests {
    use ordersaga_runtime::settings::{SettingsError, Sources};

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<WorkerSettings, SettingsError> {
        WorkerSettings::from_sources(&Sources::default().vars(vars.iter().copied()))
    }

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

    /// A send that can outlast its claim's lease lets another relay slot
    /// claim and send the same email while the first still sends it.
    #[test]
    fn smtp_timeouts_that_do_not_fit_in_the_relay_lease_are_refused() {
        let smtp = [
            ("ORDERSAGA_SMTP_HOST", "smtp.example.com"),
            ("ORDERSAGA_SMTP_TIMEOUT_MS", "10000"),
        ];
        // Default lease (60 s): a connect and a command (20 s) fit in its
        // delivery budget (45 s).
        assert!(load(&smtp).is_ok());
        let too_short = [smtp.as_slice(), &[("ORDERSAGA_RELAY_LEASE_MS", "20000")]].concat();
        match load(&too_short) {
            Err(SettingsError::Invalid { name, problem }) => {
                assert_eq!(name, "ORDERSAGA_SMTP_TIMEOUT_MS");
                assert!(problem.contains("20000 ms lease"), "{problem}");
            }
            other => panic!("expected the SMTP timeout refused, got {other:?}"),
        }
        // The local mailbox has no SMTP timeout to fit.
        assert!(load(&[("ORDERSAGA_RELAY_LEASE_MS", "20000")]).is_ok());
    }

    #[test]
    fn no_variables_give_the_defaults() {
        let s = load(&[]).unwrap();
        let d = WorkerSettings::default();
        assert_eq!(format!("{s:?}"), format!("{d:?}"));
    }

    #[test]
    fn every_documented_variable_lands_in_its_setting() {
        let s = load(&[
            ("ORDERSAGA_DATABASE_URL", "postgres://db/shop"),
            ("ORDERSAGA_QUEUES", "shipping,orders"),
            ("ORDERSAGA_TASK_QUEUE", "orders-b"),
            ("ORDERSAGA_MAX_WORKFLOW_TASKS", "1"),
            ("ORDERSAGA_MAX_ACTIVITIES", "2"),
            ("ORDERSAGA_MAX_LOCAL_ACTIVITIES", "3"),
            ("ORDERSAGA_MAX_CACHED_WORKFLOWS", "4"),
            ("ORDERSAGA_NOTIFICATIONS_MAX_WORKFLOW_TASKS", "5"),
            ("ORDERSAGA_NOTIFICATIONS_MAX_ACTIVITIES", "6"),
            ("ORDERSAGA_SHIPPING_MAX_WORKFLOW_TASKS", "7"),
            ("ORDERSAGA_SHIPPING_MAX_ACTIVITIES", "8"),
            ("ORDERSAGA_SMTP_HOST", "smtp.example.com"),
            ("ORDERSAGA_SMTP_TLS", "tls"),
            ("ORDERSAGA_SMTP_USERNAME", "shop"),
            ("ORDERSAGA_SMTP_PASSWORD", "pw"),
            ("ORDERSAGA_SMTP_TIMEOUT_MS", "900"),
            ("ORDERSAGA_MAIL_FROM", "Shop <shop@example.com>"),
            ("ORDERSAGA_PUBLIC_URL", "https://shop.example.com"),
            ("ORDERSAGA_SHOP_NAME", "Example"),
            ("ORDERSAGA_MERCHANT_EMAIL", "m@example.com"),
            ("ORDERSAGA_EMAIL_RETRY_INITIAL_MS", "10"),
            ("ORDERSAGA_EMAIL_RETRY_MAX_MS", "20"),
            ("ORDERSAGA_EMAIL_RETRY_HORIZON_SECS", "30"),
            ("ORDERSAGA_RELAY_BATCH", "9"),
            ("ORDERSAGA_RELAY_POLL_MS", "11"),
            ("ORDERSAGA_RELAY_RUN_MS", "12"),
            ("ORDERSAGA_RELAY_LEASE_MS", "13000"),
            ("ORDERSAGA_EMAIL_RELAY_SLOTS", "14"),
            ("ORDERSAGA_SHIPPING_RELAY_SLOTS", "15"),
            ("ORDERSAGA_STICKY_TIMEOUT_MS", "16"),
            ("ORDERSAGA_GRACEFUL_SHUTDOWN_MS", "17"),
            ("ORDERSAGA_GATEWAY_LATENCY_MS", "18"),
            (
                "ORDERSAGA_PAYPAL_BASE_URL",
                "https://api-m.sandbox.paypal.com/",
            ),
            ("ORDERSAGA_PAYPAL_CLIENT_ID", "id"),
            ("ORDERSAGA_PAYPAL_CLIENT_SECRET", "cs"),
            ("ORDERSAGA_PAYPAL_TIMEOUT_MS", "19"),
            ("ORDERSAGA_METRICS_ADDR", "127.0.0.1:9464"),
            ("ORDERSAGA_RECONCILE_EVERY_SECS", "20"),
            ("ORDERSAGA_RECONCILE_GRACE_SECS", "21"),
            ("ORDERSAGA_RECONCILE_LIMIT", "22"),
        ])
        .unwrap();
        let ms = Duration::from_millis;
        assert_eq!(s.database_url, "postgres://db/shop");
        assert_eq!(s.queues, [Queue::Shipping, Queue::Orders]);
        assert_eq!(s.task_queue, "orders-b");
        assert_eq!(
            (
                s.max_concurrent_workflow_tasks,
                s.max_concurrent_activities,
                s.max_concurrent_local_activities,
                s.max_cached_workflows
            ),
            (1, 2, 3, 4)
        );
        assert_eq!(
            (s.notifications, s.shipping),
            (
                QueueLimits {
                    max_workflow_tasks: 5,
                    max_activities: 6
                },
                QueueLimits {
                    max_workflow_tasks: 7,
                    max_activities: 8
                }
            )
        );
        let Delivery::Smtp(smtp) = &s.mail.delivery else {
            panic!("{:?}", s.mail.delivery);
        };
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.tls, smtp.timeout),
            ("smtp.example.com", 465, SmtpTls::Tls, ms(900))
        );
        assert_eq!(smtp.username.as_deref(), Some("shop"));
        assert_eq!(smtp.password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(s.mail.from, "Shop <shop@example.com>");
        assert_eq!(s.mail.public_url, "https://shop.example.com");
        assert_eq!(s.mail.shop_name, "Example");
        assert_eq!(s.mail.merchant.as_deref(), Some("m@example.com"));
        assert_eq!(
            s.email_retry,
            EmailRetry {
                initial: ms(10),
                max: ms(20),
                horizon: Duration::from_secs(30)
            }
        );
        assert_eq!(
            (s.relay.batch, s.relay.poll, s.relay.run_for, s.relay.lease),
            (9, ms(11), ms(12), ms(13_000))
        );
        assert_eq!((s.email_relay_slots, s.shipping_relay_slots), (14, 15));
        assert_eq!(
            (s.sticky_timeout, s.graceful_shutdown, s.gateway_latency),
            (ms(16), ms(17), ms(18))
        );
        let paypal = s.paypal.unwrap();
        assert_eq!(paypal.base_url, "https://api-m.sandbox.paypal.com");
        assert_eq!(paypal.client_id, "id");
        assert_eq!(paypal.client_secret.expose(), "cs");
        assert_eq!(paypal.timeout, ms(19));
        // PayPal has no void endpoint: the adapter abandons instead.
        assert_eq!(paypal.void_mode, VoidMode::Abandon);
        assert_eq!(s.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(s.reconcile_every, Some(Duration::from_secs(20)));
        assert_eq!(
            s.reconcile,
            ReconcileInput {
                grace_secs: 21,
                limit: 22
            }
        );
        let off = load(&[("ORDERSAGA_RECONCILE_EVERY_SECS", "0")]).unwrap();
        assert_eq!(off.reconcile_every, None);
    }

    #[test]
    fn per_queue_limits_override_the_older_names_and_smtp_ports_follow_tls() {
        let s = load(&[
            ("ORDERSAGA_ORDERS_MAX_WORKFLOW_TASKS", "21"),
            ("ORDERSAGA_MAX_WORKFLOW_TASKS", "1"),
            ("ORDERSAGA_ORDERS_MAX_ACTIVITIES", "22"),
            ("ORDERSAGA_ORDERS_MAX_LOCAL_ACTIVITIES", "23"),
            ("ORDERSAGA_MAILBOX_DIR", "/tmp/mail"),
            ("ORDERSAGA_PAYPAL_BASE_URL", "http://127.0.0.1:8090"),
            ("ORDERSAGA_PAYPAL_VOID", "abandon"),
        ])
        .unwrap();
        assert_eq!(
            (
                s.max_concurrent_workflow_tasks,
                s.max_concurrent_activities,
                s.max_concurrent_local_activities
            ),
            (21, 22, 23)
        );
        assert!(
            matches!(&s.mail.delivery, Delivery::Mailbox(p) if p == &PathBuf::from("/tmp/mail"))
        );
        let paypal = s.paypal.unwrap();
        assert_eq!(paypal.void_mode, VoidMode::Abandon);
        assert_eq!(paypal.client_secret.expose(), "sandbox-secret");

        for (tls, port) in [("none", 25), ("starttls", 587), ("TLS", 465)] {
            let s = load(&[("ORDERSAGA_SMTP_HOST", "h"), ("ORDERSAGA_SMTP_TLS", tls)]).unwrap();
            let Delivery::Smtp(smtp) = s.mail.delivery else {
                panic!("no SMTP");
            };
            assert_eq!(smtp.port, port, "{tls}");
        }
        assert!(load(&[("ORDERSAGA_PAYPAL_VOID", "never")]).is_err());
    }

    #[test]
    fn bad_values_name_their_variable_and_hide_secrets() {
        for (name, value) in [
            ("ORDERSAGA_QUEUES", "orders,email"),
            ("ORDERSAGA_SMTP_TLS", "ssl3"),
            ("ORDERSAGA_SMTP_PORT", "99999"),
            ("ORDERSAGA_RELAY_POLL_MS", "fast"),
            ("ORDERSAGA_METRICS_ADDR", "9464"),
        ] {
            let err = load(&[(name, value)]).unwrap_err();
            assert!(err.to_string().starts_with(&format!("{name}: ")), "{err}");
        }
        let s = load(&[
            ("ORDERSAGA_SMTP_HOST", "h"),
            ("ORDERSAGA_SMTP_PASSWORD", "hunter2"),
            ("ORDERSAGA_PAYPAL_BASE_URL", "http://sandbox"),
            ("ORDERSAGA_PAYPAL_CLIENT_SECRET", "s3cr3t"),
        ])
        .unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("s3cr3t"));
    }

    #[test]
    fn the_command_line_picks_the_queues() {
        let mut s = WorkerSettings::default();
        s.apply_args(["--queues".to_string(), "notifications".to_string()])
            .unwrap();
        assert_eq!(s.queues, [Queue::Notifications]);
        s.apply_args(["--queues=orders,shipping".to_string()])
            .unwrap();
        assert_eq!(s.queues, [Queue::Orders, Queue::Shipping]);
        assert!(matches!(
            s.apply_args(["--help".to_string()]),
            Err(ArgsError::Help)
        ));
        assert!(matches!(
            s.apply_args(["--queues".to_string()]),
            Err(ArgsError::MissingValue)
        ));
        assert!(matches!(
            s.apply_args(["--queue".to_string()]),
            Err(ArgsError::Unknown(_))
        ));
    }
}
