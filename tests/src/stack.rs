//! The system under test: the API (in this process, port 0) and workers over
//! one shop database, on a namespace of their own on the test binary's
//! Temporal dev server. [`Stack::builder`] says which database, payment
//! mode and workers; the stack stops its API and workers when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use ordersaga_activities::{Delivery, EmailRetry, SimulatedGateway};
use ordersaga_api::rate::RateSettings;
use ordersaga_api::service::PaymentSettings;
use ordersaga_api::tls::TlsSettings;
use ordersaga_api::web::WebSettings;
use ordersaga_api::{Api, ApiSettings};
use ordersaga_domain::{CheckoutTiming, PaymentMode, Sku};
use ordersaga_events::NatsSettings;
use ordersaga_proto::v1 as pb;
use ordersaga_proto::v1::catalog_service_client::CatalogServiceClient;
use ordersaga_proto::v1::order_service_client::OrderServiceClient;
use ordersaga_runtime::Secret;
use ordersaga_runtime::auth::Role;
use ordersaga_runtime::telemetry::{self, LogFormat};
use ordersaga_store::Store;
use ordersaga_worker::WorkerSettings;
use temporalio_client::{
    Client, UntypedWorkflow, WorkflowDescribeOptions, WorkflowExecutionDescription,
};
use temporalio_common::search_attributes::SearchAttributeKey;
use tokio::process::{Child, Command};
use tonic::transport::Channel;

use crate::auth::{
    Bearer, CatalogClient, OrdersClient, TEST_AUTH_SECRET, http_client, operator_token, test_auth,
    token,
};
use crate::{
    DevServer, ORDER_TIMEOUT, Sandbox, SmtpServer, TEST_CODEC_KEYS, TEST_WEBHOOK_SECRET,
    TestDatabase, built_binary, create_product, die_with_parent, eventually, free_port,
    worker_binary,
};

/// Delivery retries in tests: fast, so an SMTP outage ends in seconds.
pub const TEST_EMAIL_RETRY: EmailRetry = EmailRetry {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(1),
    horizon: Duration::from_secs(24 * 3600),
};

/// The event relay's lease in tests: a SIGKILLed relay's successor takes
/// over after it.
pub const TEST_RELAY_LEASE: Duration = Duration::from_secs(2);

/// How long a checkout stack's `PlaceOrder` waits for the approval link
/// unless told otherwise ([`StackBuilder::link_wait`]).
const CHECKOUT_LINK_WAIT: Duration = Duration::from_secs(30);

/// What [`StackBuilder::start`] starts. By default: a fresh SQLite
/// database, simulated payments and one in-process worker.
#[must_use]
pub struct StackBuilder {
    database: Option<TestDatabase>,
    checkout: Option<CheckoutTiming>,
    link_wait: Option<Duration>,
    worker: bool,
    nats_url: Option<String>,
    rate: RateSettings,
    tls: Option<TlsSettings>,
    server: Option<&'static DevServer>,
    http_addr: Option<std::net::SocketAddr>,
    cors_origins: Vec<String>,
    web: Option<WebSettings>,
}

/// How [`Stack::start_api`] configures the API beyond its database and
/// payments.
struct ApiOptions {
    http_addr: std::net::SocketAddr,
    cors_origins: Vec<String>,
    nats_url: Option<String>,
    place_order_rate: RateSettings,
    tls: Option<TlsSettings>,
    web: WebSettings,
}

impl StackBuilder {
    /// Runs the shop on `db` instead of a fresh SQLite file.
    pub fn database(mut self, db: TestDatabase) -> Self {
        self.database = Some(db);
        self
    }

    /// Checkout mode with `timing`: the API places orders that pay through
    /// the payments sandbox, which this stack starts and wires to the API's
    /// webhook and the workers' PayPal adapter ([`Stack::sandbox`]).
    pub fn checkout(mut self, timing: CheckoutTiming) -> Self {
        self.checkout = Some(timing);
        self
    }

    /// How long `PlaceOrder` waits for the approval link before answering
    /// without it (checkout stacks wait 30 s unless told otherwise).
    pub fn link_wait(mut self, wait: Duration) -> Self {
        self.link_wait = Some(wait);
        self
    }

    /// Publishes domain events to the NATS server at `url`: the API and
    /// the stack's store write them, and workers relay them (with a short
    /// relay lease, so a killed relay's successor takes over quickly).
    pub fn events(mut self, url: impl Into<String>) -> Self {
        self.nats_url = Some(url.into());
        self
    }

    /// Limits `PlaceOrder` per customer (off unless told).
    pub fn rate(mut self, rate: RateSettings) -> Self {
        self.rate = rate;
        self
    }

    /// Serves the API over TLS with this certificate; the stack's own
    /// clients ([`Stack::grpc`], [`Stack::http`]) then speak plain text to
    /// a TLS port and fail: the test brings TLS clients.
    pub fn tls(mut self, tls: TlsSettings) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Runs on `server` instead of the test binary's shared dev server
    /// (e.g. one with the Web UI, [`DevServer::with_ui`]).
    pub fn server(mut self, server: &'static DevServer) -> Self {
        self.server = Some(server);
        self
    }

    /// Serves the API's HTTP side on `addr` instead of a free port (e.g.
    /// the codec endpoint a dev server was started with).
    pub fn http_addr(mut self, addr: std::net::SocketAddr) -> Self {
        self.http_addr = Some(addr);
        self
    }

    /// Lets pages from `origin` call the API's codec server (a dev
    /// server's UI on a free port).
    pub fn codec_cors_origin(mut self, origin: String) -> Self {
        self.cors_origins.push(origin);
        self
    }

    /// Serves the shop's and the console's pages with these users and
    /// settings, and has the workers send checkout buyers back to the
    /// shop's order page.
    pub fn web(mut self, web: WebSettings) -> Self {
        self.web = Some(web);
        self
    }

    /// Starts no worker: the test starts its own
    /// ([`Stack::start_worker`], [`Stack::spawn_worker_process`]).
    pub fn without_worker(mut self) -> Self {
        self.worker = false;
        self
    }

    /// Starts the API (and the sandbox of a checkout stack, then the
    /// worker), and returns once the API answers.
    pub async fn start(self) -> anyhow::Result<Stack> {
        let db = match self.database {
            Some(db) => db,
            None => TestDatabase::sqlite()?,
        };
        let defaults = PaymentSettings::default();
        let payment = match self.checkout {
            Some(timing) => PaymentSettings {
                mode: PaymentMode::Checkout(timing),
                link_wait: self.link_wait.unwrap_or(CHECKOUT_LINK_WAIT),
                webhook_secret: Some(Secret::new(TEST_WEBHOOK_SECRET)),
            },
            None => PaymentSettings {
                link_wait: self.link_wait.unwrap_or(defaults.link_wait),
                ..defaults
            },
        };
        let server = match self.server {
            Some(server) => server,
            None => DevServer::shared().await?,
        };
        let http_addr = self.http_addr.unwrap_or(([127, 0, 0, 1], 0).into());
        let options = ApiOptions {
            http_addr,
            cors_origins: self.cors_origins,
            nats_url: self.nats_url,
            place_order_rate: self.rate,
            tls: self.tls,
            web: self.web.clone().unwrap_or_default(),
        };
        let mut stack = Stack::start_api(server, db, payment, options).await?;
        stack.shop = self.web.is_some();
        if self.checkout.is_some() {
            let webhook_url = format!("{}/v1/payments/webhook", stack.http_base);
            stack.sandbox = Some(Sandbox::sending_webhooks_to(webhook_url).await?);
        }
        if self.worker {
            stack.start_worker(WorkerSettings::default())?;
        }
        Ok(stack)
    }
}

/// A worker running in this process, on its own thread (the SDK's worker
/// future is not `Send`). Stopped gracefully on drop.
struct InProcessWorker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl InProcessWorker {
    /// Stops it and waits for the drain.
    fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("worker thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for InProcessWorker {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("worker stopped with an error: {e:#}");
        }
    }
}

/// The whole system for one test.
pub struct Stack {
    server: &'static DevServer,
    /// This test's Temporal namespace on the binary's dev server.
    pub namespace: String,
    /// A Temporal client of [`Self::namespace`] (to inspect workflows).
    pub client: Client,
    /// The shop database, as the worker and API see it.
    pub store: Store,
    /// The simulated gateway's books (same database).
    pub gateway: SimulatedGateway,
    /// The shop database URL.
    pub database_url: String,
    /// This test's task queue.
    pub task_queue: String,
    /// gRPC client of the API, as an operator.
    pub grpc: OrdersClient,
    /// `http://127.0.0.1:<port>` of the API.
    pub http_base: String,
    grpc_addr: std::net::SocketAddr,
    /// HTTP client, as an operator.
    pub http: reqwest::Client,
    channel: Channel,
    api_stop: Option<tokio::sync::oneshot::Sender<()>>,
    workers: Vec<InProcessWorker>,
    /// The test SMTP server, once started.
    pub smtp: Option<SmtpServer>,
    /// The payments sandbox of a checkout stack.
    pub sandbox: Option<Sandbox>,
    /// The NATS server events go to, if the stack publishes them.
    pub nats_url: Option<String>,
    /// Whether the web shop is served (workers send buyers back to it).
    shop: bool,
    /// Mailbox and SMTP server files.
    dir: tempfile::TempDir,
    _db: TestDatabase,
}

/// The processes' logging, into the test's captured output; the first
/// stack of a test binary installs it (or a test did, before).
fn init_tracing() {
    let _ = telemetry::init_with(
        LogFormat::Text,
        telemetry::env_filter("warn"),
        tracing_subscriber::fmt::TestWriter::new(),
    );
}

impl Stack {
    /// What to start; [`StackBuilder::start`] starts it.
    pub fn builder() -> StackBuilder {
        StackBuilder {
            database: None,
            checkout: None,
            link_wait: None,
            worker: true,
            nats_url: None,
            rate: RateSettings {
                per_minute: 0,
                burst: 0,
            },
            tls: None,
            server: None,
            http_addr: None,
            cors_origins: Vec::new(),
            web: None,
        }
    }

    /// The API over `db` on a fresh namespace; no worker, no sandbox.
    async fn start_api(
        server: &'static DevServer,
        db: TestDatabase,
        payment: PaymentSettings,
        options: ApiOptions,
    ) -> anyhow::Result<Self> {
        let ApiOptions {
            http_addr,
            cors_origins,
            nats_url,
            place_order_rate,
            tls,
            web,
        } = options;
        init_tracing();
        let namespace = server.create_namespace().await?;
        let client = server.client(&namespace).await?;
        let database_url = db.url().to_string();
        let store = db.store().await?.with_events(nats_url.is_some());
        let dir = tempfile::tempdir()?;
        let task_queue = format!("orders-test-{}", uuid::Uuid::new_v4());

        let api = Api::build(ApiSettings {
            temporal: server.settings(&namespace),
            database_url: database_url.clone(),
            task_queue: task_queue.clone(),
            grpc_addr: "127.0.0.1:0".parse()?,
            http_addr,
            seed_demo: false,
            payment,
            graceful_shutdown: Duration::from_secs(10),
            publish_events: nats_url.is_some(),
            auth: test_auth(),
            place_order_rate,
            tls,
            // The local UI's origins, and the test's.
            codec_cors_origins: ApiSettings::default()
                .codec_cors_origins
                .into_iter()
                .chain(cors_origins)
                .collect(),
            web,
        })
        .await?;
        let grpc_addr = api.grpc_addr()?;
        let http_addr = api.http_addr()?;
        let (api_stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            if let Err(e) = api
                .run(async {
                    let _ = stopped.await;
                })
                .await
            {
                eprintln!("API stopped with an error: {e:#}");
            }
        });
        // Lazy: a TLS stack's test connects with its own TLS clients.
        let channel = Channel::from_shared(format!("http://{grpc_addr}"))?.connect_lazy();
        let grpc =
            OrderServiceClient::with_interceptor(channel.clone(), Bearer::new(&operator_token()));
        Ok(Self {
            gateway: SimulatedGateway::new(store.clone(), Duration::ZERO),
            server,
            namespace,
            client,
            store,
            database_url,
            task_queue,
            grpc,
            http_base: format!("http://{http_addr}"),
            grpc_addr,
            http: http_client(&operator_token())?,
            channel,
            api_stop: Some(api_stop),
            workers: Vec::new(),
            smtp: None,
            sandbox: None,
            nats_url,
            shop: false,
            dir,
            _db: db,
        })
    }

    /// Worker settings pointing at this stack (override fields as needed).
    /// An identity set in `base.temporal` is kept (to tell workers apart).
    /// Email goes to the test SMTP server if one was started, else to the
    /// stack's mailbox folder; delivery retries are fast (100 ms to 1 s).
    pub fn worker_settings(&self, mut base: WorkerSettings) -> WorkerSettings {
        let identity = base.temporal.identity.take();
        base.temporal = self.server.settings(&self.namespace);
        if identity.is_some() {
            base.temporal.identity = identity;
        }
        base.database_url = self.database_url.clone();
        base.task_queue = self.task_queue.clone();
        base.mail.delivery = match &self.smtp {
            Some(smtp) => Delivery::Smtp(smtp.settings()),
            None => Delivery::Mailbox(self.mailbox_dir()),
        };
        base.email_retry = TEST_EMAIL_RETRY;
        if let Some(sandbox) = &self.sandbox {
            base.paypal = Some(sandbox.paypal_settings());
        }
        if self.shop {
            base.shop_url = Some(self.http_base.clone());
        }
        if let Some(url) = &self.nats_url {
            base.events.nats = Some(NatsSettings::at(url));
            base.events.relay.lease = TEST_RELAY_LEASE;
        }
        base
    }

    /// The payments sandbox (checkout stacks only).
    pub fn sandbox(&self) -> anyhow::Result<&Sandbox> {
        self.sandbox
            .as_ref()
            .context("not a checkout stack (Stack::builder().checkout(..))")
    }

    /// The local mailbox folder workers of this stack write `.eml` files to
    /// when no SMTP server is started.
    pub fn mailbox_dir(&self) -> PathBuf {
        self.dir.path().join("mailbox")
    }

    /// Starts the test SMTP server (workers started afterwards use it).
    /// `rcpt_delay` holds each `RCPT` command that long.
    pub async fn start_smtp(&mut self, rcpt_delay: Duration) -> anyhow::Result<()> {
        let out = self.dir.path().join("smtp");
        self.smtp = Some(SmtpServer::start(free_port()?, out, rcpt_delay, Duration::ZERO).await?);
        Ok(())
    }

    /// Starts the test SMTP server holding each `250` after `DATA` for
    /// `delay`, the message already stored (where SMTP's duplicate window
    /// opens).
    pub async fn start_smtp_holding_replies(&mut self, delay: Duration) -> anyhow::Result<()> {
        let out = self.dir.path().join("smtp");
        self.smtp = Some(SmtpServer::start(free_port()?, out, Duration::ZERO, delay).await?);
        Ok(())
    }

    /// Polls `GetOrder` (gRPC) until the order is `CONFIRMED` or `FAILED`.
    pub async fn terminal_order(&self, order_id: &str) -> anyhow::Result<pb::Order> {
        eventually("a terminal order", ORDER_TIMEOUT, || {
            let mut grpc = self.grpc.clone();
            let order_id = order_id.to_string();
            async move {
                let order = grpc
                    .get_order(pb::GetOrderRequest { order_id })
                    .await?
                    .into_inner();
                let done = order.status == pb::OrderStatus::Confirmed as i32
                    || order.status == pb::OrderStatus::Failed as i32;
                Ok(done.then_some(order))
            }
        })
        .await
    }

    /// The `OrderStatus` search attribute of a workflow (what the Web UI's
    /// filters see).
    pub async fn order_status_attribute(&self, workflow_id: &str) -> anyhow::Result<String> {
        Ok(self
            .describe(workflow_id)
            .await?
            .search_attributes()
            .get(&SearchAttributeKey::<String>::keyword("OrderStatus"))
            .unwrap_or_default())
    }

    /// The workflow-task timeout the saga was started with.
    pub async fn workflow_task_timeout(&self, workflow_id: &str) -> anyhow::Result<Duration> {
        let description = self.describe(workflow_id).await?;
        let timeout = description
            .raw()
            .execution_config
            .as_ref()
            .and_then(|c| c.default_workflow_task_timeout.as_ref())
            .context("workflow task timeout")?;
        Ok(Duration::new(
            u64::try_from(timeout.seconds)?,
            u32::try_from(timeout.nanos)?,
        ))
    }

    async fn describe(&self, workflow_id: &str) -> anyhow::Result<WorkflowExecutionDescription> {
        Ok(self
            .client
            .get_workflow_handle::<UntypedWorkflow>(workflow_id.to_string())
            .describe(WorkflowDescribeOptions::default())
            .await?)
    }

    /// Stops the API (gracefully); the workers keep running.
    pub fn stop_api(&mut self) {
        if let Some(stop) = self.api_stop.take() {
            let _ = stop.send(());
        }
    }

    /// Runs the `temporal` CLI against this stack's namespace (without a
    /// codec: what anyone with access to the server sees; or e.g.
    /// `worker deployment describe --name ordersaga`) and returns its
    /// standard output; fails with its error output if it fails.
    pub async fn temporal_cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(crate::server::temporal_binary()?)
            .args(args)
            .args(["--address", &self.server.address])
            .args(["--namespace", &self.namespace])
            .stdin(Stdio::null())
            .output()
            .await
            .context("running the temporal CLI")?;
        anyhow::ensure!(
            out.status.success(),
            "temporal {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    /// `http://127.0.0.1:<port>` of the API's gRPC server.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// `host:port` of the API's gRPC server.
    pub fn grpc_addr(&self) -> std::net::SocketAddr {
        self.grpc_addr
    }

    /// An `OrderService` client calling with `token`.
    pub fn orders_with(&self, token: &str) -> OrdersClient {
        OrderServiceClient::with_interceptor(self.channel.clone(), Bearer::new(token))
    }

    /// An `OrderService` client calling as `subject` in `role`.
    pub fn orders_as(&self, role: Role, subject: &str) -> OrdersClient {
        self.orders_with(&token(role, subject))
    }

    /// A `CatalogService` client calling with `token`.
    pub fn catalog_with(&self, token: &str) -> CatalogClient {
        CatalogServiceClient::with_interceptor(self.channel.clone(), Bearer::new(token))
    }

    /// A `CatalogService` client calling as an operator.
    pub fn catalog(&self) -> CatalogClient {
        self.catalog_with(&operator_token())
    }

    /// Starts another in-process worker on this stack's task queue.
    pub fn start_worker(&mut self, base: WorkerSettings) -> anyhow::Result<()> {
        let settings = self.worker_settings(base);
        self.start_worker_as_is(settings)
    }

    /// Starts an in-process worker with exactly these settings (from
    /// [`Self::worker_settings`], then changed, e.g. without the gateway).
    pub fn start_worker_as_is(&mut self, settings: WorkerSettings) -> anyhow::Result<()> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ordersaga-worker".into())
            .spawn(move || -> anyhow::Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(ordersaga_worker::run(settings, async {
                    let _ = stopped.await;
                }))?;
                Ok(())
            })?;
        self.workers.push(InProcessWorker {
            stop: Some(stop),
            thread: Some(thread),
        });
        Ok(())
    }

    /// Stops every in-process worker (gracefully).
    pub fn stop_workers(&mut self) -> anyhow::Result<()> {
        for mut w in self.workers.drain(..) {
            w.shutdown()?;
        }
        Ok(())
    }

    /// Starts the real `ordersaga-worker` binary on this stack, with extra
    /// environment variables. It must have been built (`cargo build --bins`).
    pub fn spawn_worker_process(&self, env: &[(&str, &str)]) -> anyhow::Result<Child> {
        self.spawn_worker_process_with_args(&[], env)
    }

    /// [`Self::spawn_worker_process`] with command-line arguments (e.g.
    /// `--queues notifications`).
    pub fn spawn_worker_process_with_args(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Child> {
        self.worker_command(args, env)?
            .spawn()
            .context("starting the worker binary")
    }

    /// [`Self::spawn_worker_process`] writing its stdout and stderr to
    /// `log` (e.g. to search them); `RUST_LOG` may be set in `env`.
    pub fn spawn_worker_process_logging_to(
        &self,
        env: &[(&str, &str)],
        log: &Path,
    ) -> anyhow::Result<Child> {
        let mut cmd = self.worker_command(&[], env)?;
        let (out, err) = log_files(log)?;
        cmd.stdout(out).stderr(err);
        cmd.spawn().context("starting the worker binary")
    }

    /// Starts the real `ordersaga-api` binary on this stack's namespace,
    /// database and task queue (free ports), writing its stdout and stderr
    /// to `log`, with extra environment variables. Returns once its HTTP
    /// side answers, with its `http://127.0.0.1:<port>`. It must have been
    /// built (`cargo build --bins`).
    pub async fn spawn_api_process(
        &self,
        env: &[(&str, &str)],
        log: &Path,
    ) -> anyhow::Result<(Child, String)> {
        let exe = built_binary("ordersaga-api")?;
        let http_addr = format!("127.0.0.1:{}", free_port()?);
        let mut cmd = Command::new(&exe);
        let (out, err) = log_files(log)?;
        cmd.env("TEMPORAL_ADDRESS", &self.server.address)
            .env("TEMPORAL_NAMESPACE", &self.namespace)
            .env("ORDERSAGA_CODEC_KEYS", TEST_CODEC_KEYS)
            .env("ORDERSAGA_DATABASE_URL", &self.database_url)
            .env("ORDERSAGA_TASK_QUEUE", &self.task_queue)
            .env("ORDERSAGA_GRPC_ADDR", format!("127.0.0.1:{}", free_port()?))
            .env("ORDERSAGA_HTTP_ADDR", &http_addr)
            .env("ORDERSAGA_AUTH_HS256_SECRET", TEST_AUTH_SECRET)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        die_with_parent(cmd.as_std_mut());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let base = format!("http://{http_addr}");
        let health = format!("{base}/healthz");
        eventually("the API process to answer", ORDER_TIMEOUT, || {
            let req = self.http.get(&health);
            async move { Ok(req.send().await?.status().is_success().then_some(())) }
        })
        .await?;
        Ok((child, base))
    }

    /// Starts another build of the worker (e.g. `ordersaga-worker-previous`)
    /// on this stack, as [`Self::spawn_worker_process`] does.
    pub fn spawn_worker_build(&self, exe: &Path, env: &[(&str, &str)]) -> anyhow::Result<Child> {
        self.worker_command_of(exe, &[], env)?
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))
    }

    /// The worker binary's command on this stack.
    fn worker_command(&self, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Command> {
        self.worker_command_of(&worker_binary()?, args, env)
    }

    /// The command of the worker binary `exe` on this stack.
    fn worker_command_of(
        &self,
        exe: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Command> {
        let mut cmd = Command::new(exe);
        cmd.args(args);
        match &self.smtp {
            Some(smtp) => {
                cmd.env("ORDERSAGA_SMTP_HOST", "127.0.0.1")
                    .env("ORDERSAGA_SMTP_PORT", smtp.port.to_string())
                    .env("ORDERSAGA_SMTP_TLS", "none");
            }
            None => {
                cmd.env("ORDERSAGA_MAILBOX_DIR", self.mailbox_dir());
            }
        }
        cmd.env(
            "ORDERSAGA_EMAIL_RETRY_INITIAL_MS",
            TEST_EMAIL_RETRY.initial.as_millis().to_string(),
        )
        .env(
            "ORDERSAGA_EMAIL_RETRY_MAX_MS",
            TEST_EMAIL_RETRY.max.as_millis().to_string(),
        );
        cmd.env("TEMPORAL_ADDRESS", &self.server.address)
            .env("TEMPORAL_NAMESPACE", &self.namespace)
            .env("ORDERSAGA_CODEC_KEYS", TEST_CODEC_KEYS)
            .env("ORDERSAGA_DATABASE_URL", &self.database_url)
            .env("ORDERSAGA_TASK_QUEUE", &self.task_queue)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(url) = &self.nats_url {
            cmd.env("ORDERSAGA_NATS_URL", url).env(
                "ORDERSAGA_EVENTS_RELAY_LEASE_MS",
                TEST_RELAY_LEASE.as_millis().to_string(),
            );
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        die_with_parent(cmd.as_std_mut());
        Ok(cmd)
    }

    /// Creates a product (price in EUR cents) with opening stock and no
    /// low-stock threshold.
    pub async fn product(&self, sku: &str, price_cents: i64, stock: i64) -> anyhow::Result<Sku> {
        create_product(&self.store, sku, price_cents, stock, 0).await
    }

    /// Units on hand of a product.
    pub async fn on_hand(&self, sku: &Sku) -> anyhow::Result<i64> {
        Ok(self
            .store
            .catalog()
            .get(sku)
            .await?
            .context("product vanished")?
            .on_hand)
    }
}

/// Appending handles on `log` for a child's stdout and stderr.
fn log_files(log: &Path) -> anyhow::Result<(std::fs::File, std::fs::File)> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone()?;
    Ok((out, err))
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(stop) = self.api_stop.take() {
            let _ = stop.send(());
        }
        for w in &mut self.workers {
            let _ = w.shutdown();
        }
    }
}
