//! What both worker binaries do: start telemetry, load the settings, apply
//! the command line, then [`run`] until SIGINT or SIGTERM.

use anyhow::Context;
use ordersaga_runtime::process::shutdown_signal;
use ordersaga_runtime::settings::Load;
use ordersaga_runtime::telemetry;
use ordersaga_worker::{ArgsError, USAGE, WorkerSettings, run};

pub async fn main() -> anyhow::Result<()> {
    telemetry::init("info,temporalio_sdk_core=warn")?;
    let mut settings = WorkerSettings::load().context("worker configuration")?;
    match settings.apply_args(std::env::args().skip(1)) {
        Err(ArgsError::Help) => println!("{USAGE}"),
        other => {
            other?;
            let ran = run(settings, shutdown_signal()).await.context("worker");
            telemetry::shutdown().await;
            ran?;
            tracing::info!("worker stopped");
        }
    }
    Ok(())
}
