//! `ordersaga-worker-previous`: the worker built from the saga as it was
//! before its newest change (the `previous-build` feature), under a build
//! id ending in `.previous`. Only the upgrade test builds and runs it, as
//! the build a deployment upgrades from (tests/tests/upgrade.rs).

#[path = "../cli.rs"]
mod cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cli::main().await
}
