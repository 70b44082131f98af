//! The payments sandbox (our PayPal stand-in) served in this process on a
//! free port: for a checkout stack ([`crate::StackBuilder::checkout`]),
//! sending its signed webhooks to the API, or on its own for tests of the
//! PayPal adapter and of the sandbox itself ([`Sandbox::standalone`],
//! [`Sandbox::sending_webhooks_to`]). [`Sandbox::restart`] stops it and
//! starts it again on the same address and database, as a process restart
//! would.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use ordersaga_activities::gateway::checkout::{
    CheckoutGateway, CheckoutStatus as GatewayStatus, GatewayOrderId,
};
use ordersaga_activities::gateway::paypal::{PayPalGateway, PayPalSettings};
use ordersaga_payment_sandbox::Settings;
use reqwest::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::eventually;

/// The secret the test sandbox signs webhooks with and the API checks.
pub const TEST_WEBHOOK_SECRET: &str = "test-webhook-secret";

/// The payments sandbox, served until dropped, signing webhooks (if it
/// sends any) with [`TEST_WEBHOOK_SECRET`]. Other processes (a browser)
/// reach it over [`Sandbox::base`].
pub struct Sandbox {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Follows no redirects: a button's answer is what the test looks at.
    http: reqwest::Client,
    gateway: PayPalGateway,
    settings: Settings,
    serving: Option<Serving>,
    /// Holds the sandbox's database; kept across [`Sandbox::restart`].
    _dir: tempfile::TempDir,
}

/// One run of the sandbox's server.
struct Serving {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// The sandbox's counters of one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
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
    /// What each refund gave back (decimal strings), oldest first.
    #[serde(default)]
    pub refunded: Vec<String>,
}

impl Sandbox {
    /// A sandbox of its own, sending no webhooks, for tests of the gateway
    /// alone (drive it through [`Sandbox::gateway`]).
    pub async fn standalone() -> anyhow::Result<Self> {
        Self::start(None).await
    }

    /// A sandbox sending its webhooks to `url`.
    pub async fn sending_webhooks_to(url: String) -> anyhow::Result<Self> {
        Self::start(Some(url)).await
    }

    async fn start(webhook_url: Option<String>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let settings = Settings {
            database_url: format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("sandbox.db").display()
            ),
            webhook_url,
            webhook_secret: TEST_WEBHOOK_SECRET.to_string(),
            webhook_backoff: Duration::from_millis(20),
            ..Settings::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let serving = serve(settings.clone(), listener);
        let sandbox = Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            gateway: PayPalGateway::new(PayPalSettings::sandbox(base.clone()))?,
            base,
            settings,
            serving: Some(serving),
            _dir: dir,
        };
        sandbox.wait_until_healthy().await?;
        Ok(sandbox)
    }

    /// Stops it and starts it again on the same address, database and
    /// settings. What it keeps in memory (access tokens) is gone.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if let Some(Serving { stop, task }) = self.serving.take() {
            let _ = stop.send(());
            task.await?;
        }
        let addr = self.base.trim_start_matches("http://");
        let listener = TcpListener::bind(addr).await?;
        self.serving = Some(serve(self.settings.clone(), listener));
        self.wait_until_healthy().await
    }

    async fn wait_until_healthy(&self) -> anyhow::Result<()> {
        eventually("the payments sandbox", Duration::from_secs(15), || async {
            let r = self
                .http
                .get(format!("{}/healthz", self.base))
                .send()
                .await?;
            Ok(r.status().is_success().then_some(()))
        })
        .await
    }

    /// The PayPal adapter pointed at it.
    pub fn gateway(&self) -> &PayPalGateway {
        &self.gateway
    }

    /// Another PayPal adapter pointed at it, giving up on a call after
    /// `timeout` (with its own access token).
    pub fn gateway_with_timeout(&self, timeout: Duration) -> anyhow::Result<PayPalGateway> {
        let mut settings = self.paypal_settings();
        settings.timeout = timeout;
        Ok(PayPalGateway::new(settings)?)
    }

    /// How workers reach it.
    pub fn paypal_settings(&self) -> PayPalSettings {
        PayPalSettings::sandbox(self.base.clone())
    }

    /// An HTTP client for its other pages; it follows no redirects.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sets test controls (`POST /sandbox/controls`).
    pub async fn controls(&self, patch: serde_json::Value) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}/sandbox/controls", self.base))
            .json(&patch)
            .send()
            .await?;
        let status = r.status();
        ensure!(
            status.is_success(),
            "controls: {status}: {}",
            r.text().await?
        );
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

    /// Presses a button of a page the buyer opened earlier: answered with
    /// the sandbox's status page or a redirect to the shop, whatever the
    /// gateway order's state now.
    async fn press(&self, approval_url: &str, button: &str) -> anyhow::Result<()> {
        let url = approval_url.replacen("/checkoutnow?", &format!("/checkoutnow/{button}?"), 1);
        let status = self.http.post(&url).send().await?.status();
        if !(status.is_success() || status.is_redirection()) {
            bail!("{button} at {url}: {status}");
        }
        Ok(())
    }

    /// What a buyer does with a fresh link: open the approval page, submit
    /// the form of `button` (`approve` or `cancel`) found on it, and get a
    /// page back (200, for an order without return URLs). Returns that page.
    pub async fn press_on_page(&self, approval_url: &str, button: &str) -> anyhow::Result<String> {
        let page = self.http.get(approval_url).send().await?.text().await?;
        let prefix = format!("/checkoutnow/{button}?token=");
        let action = page
            .split("action=\"")
            .filter_map(|s| s.split('"').next())
            .find(|a| a.starts_with(&prefix))
            .with_context(|| format!("no {button} form on the approval page: {page}"))?;
        let r = self
            .http
            .post(format!("{}{action}", self.base))
            .send()
            .await?;
        ensure!(r.status() == StatusCode::OK, "{button}: {}", r.status());
        Ok(r.text().await?)
    }

    /// The counters of a transaction (all zero if the sandbox never saw it).
    pub async fn counts(
        &self,
        transaction_id: impl std::fmt::Display,
    ) -> anyhow::Result<SandboxCounts> {
        let r = self
            .http
            .get(format!(
                "{}/sandbox/transactions/{transaction_id}",
                self.base
            ))
            .send()
            .await?;
        if r.status() == StatusCode::NOT_FOUND {
            return Ok(SandboxCounts::default());
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
        if let Some(serving) = self.serving.take() {
            let _ = serving.stop.send(());
        }
    }
}

/// Serves the sandbox on `listener` until stopped.
fn serve(settings: Settings, listener: TcpListener) -> Serving {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = ordersaga_payment_sandbox::run(settings, listener, shutdown).await {
            eprintln!("sandbox stopped with an error: {e:#}");
        }
    });
    Serving { stop, task }
}
