//! The real `ordersaga-payment-sandbox` binary as a child process, on a free
//! port over a fresh SQLite file: what a browser (another process) talks to.
//! It must have been built (`cargo build --bins`; `scripts/test` does).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use ordersaga_activities::gateway::paypal::{PayPalGateway, PayPalSettings};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::{built_binary, die_with_parent, eventually, free_port};

/// A running payments sandbox, killed on drop.
pub struct PaymentSandbox {
    child: Child,
    /// `http://127.0.0.1:<port>`: the base URL of its API and approval page.
    pub base_url: String,
    /// HTTP client for the sandbox's own endpoints (controls, counters).
    pub http: reqwest::Client,
    /// Holds its database.
    _dir: tempfile::TempDir,
}

impl PaymentSandbox {
    /// Starts one with default settings (no webhooks, manual buyers).
    pub async fn spawn() -> anyhow::Result<Self> {
        Self::spawn_with_env(&[]).await
    }

    /// Starts one with extra `ORDERSAGA_SANDBOX_*` variables (e.g.
    /// `ORDERSAGA_SANDBOX_WEBHOOK_URL`); returns once `/healthz` answers.
    pub async fn spawn_with_env(env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let exe = built_binary("ordersaga-payment-sandbox")?;
        let dir = tempfile::tempdir()?;
        let addr = format!("127.0.0.1:{}", free_port()?);
        let mut cmd = Command::new(&exe);
        cmd.env("ORDERSAGA_SANDBOX_ADDR", &addr)
            .env(
                "ORDERSAGA_SANDBOX_DATABASE_URL",
                format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("sandbox.db").display()
                ),
            )
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let mut sandbox = Self {
            child,
            base_url: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            _dir: dir,
        };
        let health = format!("{}/healthz", sandbox.base_url);
        let ready = eventually("the payments sandbox", Duration::from_secs(30), || async {
            let r = sandbox.http.get(&health).send().await?;
            Ok(r.status().is_success().then_some(()))
        })
        .await;
        if ready.is_err()
            && let Ok(Some(exit)) = sandbox.child.try_wait()
        {
            bail!("the payments sandbox exited with {exit} before it was ready");
        }
        ready?;
        Ok(sandbox)
    }

    /// The PayPal adapter pointed at this sandbox (its default credentials).
    pub fn gateway(&self) -> anyhow::Result<PayPalGateway> {
        Ok(PayPalGateway::new(PayPalSettings::sandbox(
            self.base_url.clone(),
        ))?)
    }

    /// `POST /sandbox/controls` with `patch` (fault injection, buyer
    /// behaviour); answers the whole set of controls.
    pub async fn controls(&self, patch: Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}/sandbox/controls", self.base_url))
            .json(&patch)
            .send()
            .await?;
        let status = r.status();
        if !status.is_success() {
            bail!("sandbox controls: HTTP {status}: {}", r.text().await?);
        }
        Ok(r.json().await?)
    }
}
