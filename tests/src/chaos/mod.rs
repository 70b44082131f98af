//! The chaos suite (`ordersaga-chaos`, `scripts/chaos`): N orders of mixed
//! outcomes against real processes while faults are injected, then the
//! issue's invariants checked from the shop database, the sandbox's books
//! and Temporal.
//!
//! - [`procs`]: the processes (dev server with a database file, sandbox,
//!   workers, API, SMTP), killed and restarted on their ports.
//! - [`workload`]: the seeded plan of orders and the retrying clients.
//! - [`faults`]: the seeded schedule of kills, sandbox faults and SMTP
//!   outages, and their injection.
//! - [`observe`]: what the three books and the mailbox say once quiet.
//! - [`verdict`]: the invariants, the table of figures, the violations.

pub mod faults;
pub mod observe;
pub mod procs;
pub mod verdict;
pub mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;

use ordersaga_store::Store;

use crate::{TestDatabase, create_product};
use faults::{Controls, Injected};
use procs::Cluster;
use verdict::{Observed, Verdict};
use workload::{Client, Placed};

/// A run's parameters.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Config {
    /// Orders to place.
    pub orders: usize,
    /// Seeds every random choice (the plan and the fault schedule).
    pub seed: u64,
    /// Worker processes.
    pub workers: usize,
    /// Faults of each kind (process kills and the others alike).
    pub kills_per_kind: usize,
    /// Shop database on PostgreSQL instead of an SQLite file.
    pub postgres: bool,
    /// Where the databases, logs and received mail go.
    pub dir: PathBuf,
    /// Where the workspace's binaries are.
    pub bin_dir: PathBuf,
}

impl Config {
    /// How long orders are placed (and faults injected) for: long enough
    /// for the orders at a steady pace and for the faults to be apart.
    pub fn window(&self) -> Duration {
        let by_orders = Duration::from_millis(250) * self.orders as u32;
        let by_faults = Duration::from_millis(2500)
            * (self.kills_per_kind * faults::FaultKind::ALL.len()) as u32;
        by_orders.max(by_faults)
    }
}

/// How long the system gets to become quiet after the last fault.
const QUIESCENCE: Duration = Duration::from_secs(300);

/// Runs it and judges it. An error means the run itself could not go on
/// (a process that would not come back), not a violation.
pub async fn run(config: &Config) -> anyhow::Result<Verdict> {
    std::fs::create_dir_all(&config.dir)?;
    // Kept until the end: a PostgreSQL database is dropped with it.
    let postgres = match config.postgres {
        true => Some(TestDatabase::postgres().await?),
        false => None,
    };
    let url = match &postgres {
        Some(db) => db.url().to_string(),
        None => format!("sqlite://{}?mode=rwc", config.dir.join("shop.db").display()),
    };
    let mut rng = StdRng::seed_from_u64(config.seed);
    let window = config.window();
    let (products, plan) = workload::plan(&mut rng, config.orders, window);
    let schedule = faults::schedule(&mut rng, config.kills_per_kind, config.workers, window);
    let store = Store::connect(&url).await.context("shop database")?;
    for p in &products {
        create_product(&store, &p.sku, p.price_cents, p.stock, 0).await?;
    }
    store.close().await;

    let mut cluster = Cluster::start(&config.dir, &config.bin_dir, url, config.workers).await?;
    let outcome = drive(config, &mut cluster, &products, plan, schedule, window).await;
    cluster.shutdown().await;
    outcome
}

async fn drive(
    config: &Config,
    cluster: &mut Cluster,
    products: &[workload::Product],
    plan: Vec<workload::PlannedOrder>,
    schedule: Vec<faults::Fault>,
    window: Duration,
) -> anyhow::Result<Verdict> {
    let client = Arc::new(Client::new(cluster.api_base())?);
    let start = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for order in plan {
        let client = client.clone();
        clients.spawn(async move {
            tokio::time::sleep_until(start + order.at).await;
            client.run(order).await
        });
    }
    eprintln!(
        "chaos: {} orders over {window:?}, {} faults, logs in {}",
        config.orders,
        schedule.len(),
        config.dir.display()
    );
    let injected: Injected = faults::inject(cluster, schedule, start).await?;
    Controls::new(cluster.sandbox_base())?.clear().await?;
    let mut placed: Vec<Placed> = clients.join_all().await;
    placed.sort_by_key(|p| p.plan.index);
    eprintln!(
        "chaos: faults done, clients done after {:?}; waiting for quiet",
        start.elapsed()
    );

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&cluster.database_url).await?;
    let temporal = ordersaga_runtime::connection::connect(&cluster.temporal_settings()).await?;
    let deadline = Instant::now() + QUIESCENCE;
    loop {
        let shop = observe::shop(&pool).await?;
        let running = observe::running_workflows(&temporal).await?;
        let mail = observe::mail(&cluster.smtp)?;
        let mailed = placed.iter().filter_map(|p| p.accepted.as_ref()).all(|a| {
            let has = |stage: &str| mail.contains_key(&(a.order_id.clone(), stage.to_string()));
            has("order-received") && (has("order-confirmed") || has("order-failed"))
        });
        let quiet =
            observe::all_settled(&shop, &placed) && running <= shop.attention.len() && mailed;
        if quiet || Instant::now() > deadline {
            if !quiet {
                eprintln!("chaos: not quiet after {QUIESCENCE:?}; judging what is there");
            }
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    eprintln!("chaos: quiet after {:?}; checking", start.elapsed());
    let shop = observe::shop(&pool).await?;
    let books = observe::sandbox_books(&cluster.sandbox_base(), &placed).await?;
    let mail = observe::mail(&cluster.smtp)?;
    let workflows = observe::workflows(&temporal, &placed).await?;
    pool.close().await;
    Ok(verdict::judge(&Observed {
        placed: &placed,
        products,
        shop: &shop,
        books: &books,
        mail: &mail,
        workflows: &workflows,
        injected: &injected,
        per_kind: config.kills_per_kind,
    }))
}

#[cfg(test)]
mod tests;
