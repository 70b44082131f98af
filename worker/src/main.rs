//! `ordersaga-worker`: runs the order saga and its support services from
//! their Temporal task queues. `--queues orders,notifications,shipping`
//! (default: all, or `ORDERSAGA_QUEUES`) picks the services this process
//! runs. Configuration: `ORDERSAGA_*` and `TEMPORAL_*` environment
//! variables.

use anyhow::{Context, bail};
use ordersaga_runtime::process::shutdown_signal;
use ordersaga_worker::{WorkerSettings, parse_queues, run};

const USAGE: &str = "usage: ordersaga-worker [--queues orders,notifications,shipping]";

/// Applies the command line on top of the environment's settings.
fn apply_args(settings: &mut WorkerSettings) -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let queues = match arg.as_str() {
            "--queues" => args.next().context(USAGE)?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => match other.strip_prefix("--queues=") {
                Some(v) => v.to_string(),
                None => bail!("unknown argument {other:?}\n{USAGE}"),
            },
        };
        settings.queues = parse_queues(&queues)?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,temporalio_sdk_core=warn".into()),
        )
        .init();
    let mut settings = WorkerSettings::from_env().context("worker configuration")?;
    apply_args(&mut settings)?;
    run(settings, shutdown_signal()).await.context("worker")?;
    tracing::info!("worker stopped");
    Ok(())
}
