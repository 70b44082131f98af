//! `ordersaga-payment-sandbox`: the PayPal-compatible payment gateway
//! sandbox. Listens on `ORDERSAGA_SANDBOX_ADDR` (default `127.0.0.1:8090`);
//! the rest of its configuration is `ORDERSAGA_SANDBOX_*` (see
//! `Settings::from_vars` and `docs/payments.md`).

use anyhow::Context;
use ordersaga_payment_sandbox::process::{Settings, init_logging, shutdown_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let settings = Settings::from_env().context("sandbox configuration")?;
    ordersaga_payment_sandbox::serve(settings, shutdown_signal()?).await?;
    tracing::info!("payments sandbox stopped");
    Ok(())
}
