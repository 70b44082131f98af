//! `ordersaga-api`: the gRPC + HTTP front door. Configuration:
//! `ORDERSAGA_*` and `TEMPORAL_*` environment variables.

use anyhow::Context;
use ordersaga_api::{Api, ApiSettings};
use ordersaga_runtime::process::shutdown_signal;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let settings = ApiSettings::from_env().context("API configuration")?;
    let api = Api::build(settings).await?;
    tracing::info!(grpc = %api.grpc_addr()?, http = %api.http_addr()?, "API listening");
    api.run(shutdown_signal()).await?;
    tracing::info!("API stopped");
    Ok(())
}
