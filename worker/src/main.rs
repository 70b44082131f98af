//! `ordersaga-worker`: runs the order saga and its support services from
//! their Temporal task queues. `--queues orders,notifications,shipping`
//! (default: all, or `ORDERSAGA_QUEUES`) picks the services this process
//! runs. Configuration: `ordersaga.toml`, `ORDERSAGA_*` and `TEMPORAL_*`
//! environment variables.

use anyhow::Context;
use ordersaga_runtime::process::shutdown_signal;
use ordersaga_runtime::settings::Load;
use ordersaga_runtime::telemetry;
use ordersaga_worker::{ArgsError, USAGE, WorkerSettings, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("info,temporalio_sdk_core=warn")?;
    let mut settings = WorkerSettings::load().context("worker configuration")?;
    match settings.apply_args(std::env::args().skip(1)) {
        Err(ArgsError::Help) => println!("{USAGE}"),
        other => {
            other?;
            run(settings, shutdown_signal()).await.context("worker")?;
            tracing::info!("worker stopped");
        }
    }
    Ok(())
}
