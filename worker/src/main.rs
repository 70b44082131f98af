//! `ordersaga-worker`: runs the order saga and its support services from
//! their Temporal task queues. `--queues orders,notifications,shipping`
//! (default: all, or `ORDERSAGA_QUEUES`) picks the services this process
//! runs. Configuration: `ordersaga.toml`, `ORDERSAGA_*` and `TEMPORAL_*`
//! environment variables.

mod cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cli::main().await
}
