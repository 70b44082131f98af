//! `ordersaga-payment-sandbox`: the PayPal-compatible payment gateway
//! sandbox. Listens on `ORDERSAGA_SANDBOX_ADDR` (default `127.0.0.1:8090`);
//! the rest of its configuration is `ORDERSAGA_SANDBOX_*` (see
//! `Settings::from_env` and `docs/payments.md`).

use anyhow::Context;
use ordersaga_payment_sandbox::{Settings, run};
use ordersaga_runtime::process::shutdown_signal;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let settings = Settings::from_env().context("sandbox configuration")?;
    let addr = std::env::var("ORDERSAGA_SANDBOX_ADDR").unwrap_or_else(|_| "127.0.0.1:8090".into());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, webhook_url = ?settings.webhook_url, "payments sandbox listening");
    run(settings, listener, shutdown_signal()).await?;
    tracing::info!("payments sandbox stopped");
    Ok(())
}
