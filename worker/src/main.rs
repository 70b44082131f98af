//! `ordersaga-worker`: runs order sagas from a Temporal task queue.
//! Configuration: `ORDERSAGA_*` and `TEMPORAL_*` environment variables.

use anyhow::Context;
use ordersaga_worker::{WorkerSettings, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,temporalio_sdk_core=warn".into()),
        )
        .init();
    let settings = WorkerSettings::from_env().context("worker configuration")?;
    run(settings, shutdown_signal()).await.context("worker")?;
    tracing::info!("worker stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}
