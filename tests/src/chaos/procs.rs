//! The processes a chaos run starts, kills and restarts: a Temporal dev
//! server with a database file, the payments sandbox, the workers, the API
//! and the SMTP server. Each keeps its port across restarts, so the others
//! find it again as they would in production.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use ordersaga_domain::names::search_attribute;
use ordersaga_runtime::codec::CodecSettings;
use ordersaga_runtime::connection::{TemporalSettings, connect};
use tokio::process::{Child, Command};

use crate::auth::TEST_AUTH_SECRET;
use crate::server::temporal_binary;
use crate::{
    SmtpServer, TEST_CODEC_KEYS, TEST_WEBHOOK_SECRET, die_with_parent, eventually, free_port,
};

/// How long a (re)started process gets to answer.
const STARTUP: Duration = Duration::from_secs(90);

/// The task queue of the orders (the default's name).
const TASK_QUEUE: &str = "orders";

/// Every process of the run, and where each one listens.
pub struct Cluster {
    dir: PathBuf,
    bin_dir: PathBuf,
    /// The shop database's URL.
    pub database_url: String,
    temporal_port: u16,
    api_http: String,
    api_grpc: String,
    sandbox_addr: String,
    http: reqwest::Client,
    temporal: Option<Child>,
    sandbox: Option<Child>,
    workers: Vec<Option<Child>>,
    api: Option<Child>,
    /// The real SMTP server; stopped and started for outages.
    pub smtp: SmtpServer,
}

impl Cluster {
    /// Starts everything in `dir` (databases, logs, received mail) with
    /// `workers` worker processes; the binaries are in `bin_dir`.
    pub async fn start(
        dir: &Path,
        bin_dir: &Path,
        database_url: String,
        workers: usize,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("logs"))?;
        let smtp = SmtpServer::start(
            free_port()?,
            dir.join("mail"),
            Duration::ZERO,
            Duration::ZERO,
        )
        .await?;
        let mut cluster = Self {
            dir: dir.to_path_buf(),
            bin_dir: bin_dir.to_path_buf(),
            database_url,
            temporal_port: free_port()?,
            api_http: format!("127.0.0.1:{}", free_port()?),
            api_grpc: format!("127.0.0.1:{}", free_port()?),
            sandbox_addr: format!("127.0.0.1:{}", free_port()?),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            temporal: None,
            sandbox: None,
            workers: (0..workers).map(|_| None).collect(),
            api: None,
            smtp,
        };
        cluster.start_temporal().await?;
        cluster.start_sandbox().await?;
        for i in 0..workers {
            cluster.start_worker(i)?;
        }
        cluster.start_api().await?;
        Ok(cluster)
    }

    /// `http://` address of the API.
    pub fn api_base(&self) -> String {
        format!("http://{}", self.api_http)
    }

    /// `http://` address of the payments sandbox.
    pub fn sandbox_base(&self) -> String {
        format!("http://{}", self.sandbox_addr)
    }

    /// How to reach the dev server's `default` namespace.
    pub fn temporal_settings(&self) -> TemporalSettings {
        TemporalSettings {
            address: Some(format!("127.0.0.1:{}", self.temporal_port)),
            namespace: Some("default".to_string()),
            identity: Some("ordersaga-chaos".to_string()),
            codec: CodecSettings::with_keys(TEST_CODEC_KEYS),
        }
    }

    /// Number of worker processes.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// A command for `program` logging (appending) to `logs/{log}.log`.
    fn command(&self, program: &Path, log: &str) -> anyhow::Result<Command> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("logs").join(format!("{log}.log")))?;
        let mut cmd = Command::new(program);
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "warn");
        die_with_parent(cmd.as_std_mut());
        Ok(cmd)
    }

    async fn start_temporal(&mut self) -> anyhow::Result<()> {
        let mut cmd = self.command(&temporal_binary()?, "temporal")?;
        cmd.args(["server", "start-dev", "--headless", "--ip", "127.0.0.1"])
            .args(["--port", &self.temporal_port.to_string()])
            .arg("--db-filename")
            .arg(self.dir.join("temporal.db"))
            .args(["--sqlite-pragma", "journal_mode=wal"])
            .args(["--sqlite-pragma", "synchronous=normal"])
            .args([
                "--dynamic-config-value",
                "history.transferProcessorMaxPollRPS=1000",
            ])
            .args(["--log-level", "error"]);
        // Idempotent on an existing database file, as scripts/dev relies on.
        for (name, kind) in search_attribute::ALL {
            cmd.args(["--search-attribute", &format!("{name}={kind}")]);
        }
        self.temporal = Some(cmd.spawn().context("starting the temporal dev server")?);
        let settings = self.temporal_settings();
        eventually("the Temporal dev server", STARTUP, || {
            let settings = settings.clone();
            async move {
                let client = connect(&settings).await?;
                client.count_workflows("", Default::default()).await?;
                Ok(Some(()))
            }
        })
        .await
    }

    async fn start_sandbox(&mut self) -> anyhow::Result<()> {
        let mut cmd = self.command(&self.bin_dir.join("ordersaga-payment-sandbox"), "sandbox")?;
        cmd.env("ORDERSAGA_SANDBOX_ADDR", &self.sandbox_addr)
            .env(
                "ORDERSAGA_SANDBOX_DATABASE_URL",
                format!(
                    "sqlite://{}?mode=rwc",
                    self.dir.join("sandbox.db").display()
                ),
            )
            .env(
                "ORDERSAGA_SANDBOX_WEBHOOK_URL",
                format!("{}/v1/payments/webhook", self.api_base()),
            )
            .env("ORDERSAGA_SANDBOX_WEBHOOK_SECRET", TEST_WEBHOOK_SECRET);
        self.sandbox = Some(cmd.spawn().context("starting the payments sandbox")?);
        let health = format!("{}/healthz", self.sandbox_base());
        self.wait_http("the payments sandbox", &health).await
    }

    fn common_env(&self, cmd: &mut Command) {
        cmd.env(
            "TEMPORAL_ADDRESS",
            format!("127.0.0.1:{}", self.temporal_port),
        )
        .env("TEMPORAL_NAMESPACE", "default")
        .env("ORDERSAGA_DATABASE_URL", &self.database_url)
        .env("ORDERSAGA_TASK_QUEUE", TASK_QUEUE)
        .env("ORDERSAGA_PAYMENT_MODE", "checkout")
        .env("ORDERSAGA_CODEC_KEYS", TEST_CODEC_KEYS);
    }

    fn start_worker(&mut self, i: usize) -> anyhow::Result<()> {
        let mut cmd = self.command(
            &self.bin_dir.join("ordersaga-worker"),
            &format!("worker-{i}"),
        )?;
        self.common_env(&mut cmd);
        cmd.env("ORDERSAGA_PAYPAL_BASE_URL", self.sandbox_base())
            .env("ORDERSAGA_PAYPAL_TIMEOUT_MS", "5000")
            .env("ORDERSAGA_SMTP_HOST", "127.0.0.1")
            .env("ORDERSAGA_SMTP_PORT", self.smtp.port.to_string())
            .env("ORDERSAGA_SMTP_TLS", "none")
            .env("ORDERSAGA_SMTP_TIMEOUT_MS", "5000")
            .env("ORDERSAGA_EMAIL_RETRY_INITIAL_MS", "200")
            .env("ORDERSAGA_EMAIL_RETRY_MAX_MS", "2000")
            .env("ORDERSAGA_MERCHANT_EMAIL", "merchant@shop.test");
        self.workers[i] = Some(cmd.spawn().context("starting a worker")?);
        Ok(())
    }

    async fn start_api(&mut self) -> anyhow::Result<()> {
        let mut cmd = self.command(&self.bin_dir.join("ordersaga-api"), "api")?;
        self.common_env(&mut cmd);
        cmd.env("ORDERSAGA_GRPC_ADDR", &self.api_grpc)
            .env("ORDERSAGA_HTTP_ADDR", &self.api_http)
            .env("ORDERSAGA_WEBHOOK_SECRET", TEST_WEBHOOK_SECRET)
            .env("ORDERSAGA_AUTH_HS256_SECRET", TEST_AUTH_SECRET)
            // The workload is the load it means to be: no rate limit.
            .env("ORDERSAGA_PLACE_ORDER_PER_MINUTE", "0")
            .env("ORDERSAGA_PAYMENT_POLL_SECS", "2")
            .env("ORDERSAGA_PAYMENT_DEADLINE_SECS", "120")
            .env("ORDERSAGA_PAYMENT_LINK_WAIT_MS", "2000");
        self.api = Some(cmd.spawn().context("starting the API")?);
        let health = format!("{}/healthz", self.api_base());
        self.wait_http("the API", &health).await
    }

    async fn wait_http(&self, what: &str, url: &str) -> anyhow::Result<()> {
        eventually(what, STARTUP, || async {
            let r = self.http.get(url).send().await?;
            Ok(r.status().is_success().then_some(()))
        })
        .await
    }

    /// SIGKILLs worker `i` and starts it again.
    pub async fn kill_worker(&mut self, i: usize, down: Duration) -> anyhow::Result<()> {
        sigkill(self.workers[i].take()).await?;
        tokio::time::sleep(down).await;
        self.start_worker(i)
    }

    /// SIGKILLs the API and starts it again.
    pub async fn kill_api(&mut self, down: Duration) -> anyhow::Result<()> {
        sigkill(self.api.take()).await?;
        tokio::time::sleep(down).await;
        self.start_api().await
    }

    /// SIGKILLs the Temporal dev server and starts it again on its database.
    pub async fn kill_temporal(&mut self, down: Duration) -> anyhow::Result<()> {
        sigkill(self.temporal.take()).await?;
        tokio::time::sleep(down).await;
        self.start_temporal().await
    }

    /// Stops everything, the API and workers first.
    pub async fn shutdown(mut self) {
        let mut all = vec![self.api.take()];
        all.extend(self.workers.iter_mut().map(Option::take));
        all.push(self.sandbox.take());
        all.push(self.temporal.take());
        for child in all {
            let _ = sigkill(child).await;
        }
        let _ = self.smtp.stop().await;
    }
}

/// `kill -9` and reap.
async fn sigkill(child: Option<Child>) -> anyhow::Result<()> {
    if let Some(mut child) = child {
        // Child::start_kill sends SIGKILL on Unix.
        child.start_kill()?;
        child.wait().await?;
    }
    Ok(())
}
