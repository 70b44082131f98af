//! `ordersaga-api`: the gRPC + HTTP front door. Configuration:
//! `ordersaga.toml`, `ORDERSAGA_*` and `TEMPORAL_*` environment variables.

use anyhow::Context;
use ordersaga_api::{Api, ApiSettings};
use ordersaga_runtime::process::shutdown_signal;
use ordersaga_runtime::settings::Load;
use ordersaga_runtime::telemetry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("info")?;
    let settings = ApiSettings::load().context("API configuration")?;
    let api = Api::build(settings).await?;
    tracing::info!(grpc = %api.grpc_addr()?, http = %api.http_addr()?, "API listening");
    api.run(shutdown_signal()).await?;
    tracing::info!("API stopped");
    Ok(())
}
