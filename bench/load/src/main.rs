//! `ordersaga-bench`: places orders through the API and waits for each to
//! end, then prints what it measured.
//!
//! ```text
//! ordersaga-bench [--mode api|start] [--grpc http://127.0.0.1:50051] [--token JWT]
//!     [--temporal 127.0.0.1:7233] [--task-queue orders] [-n 1000] [-c 100 | --rate R]
//!     [--warmup 20] [--sku STICKER-01] [--unit-price-cents 399]
//!     [--pid worker=PID --pid api=PID --pid server=PID]
//!     [--server-metrics http://127.0.0.1:PORT/metrics] [--label TEXT] [--json]
//! ```
//! `--json` prints one JSON line (the peer `bench.py`'s field names); else
//! a readable summary. The progress line goes to stderr.

use anyhow::{Context, bail};
use ordersaga_bench::proc::Watched;
use ordersaga_bench::{BenchSettings, Mode, run};

fn parse_args() -> anyhow::Result<(BenchSettings, bool)> {
    let mut s = BenchSettings {
        mode: Mode::Api,
        grpc: "http://127.0.0.1:50051".to_string(),
        token: None,
        temporal: "127.0.0.1:7233".to_string(),
        task_queue: "orders".to_string(),
        n: 1000,
        concurrency: 100,
        rate: None,
        warmup: 20,
        sku: "STICKER-01".to_string(),
        unit_price_cents: 399,
        watched: Vec::new(),
        server_metrics: None,
        label: String::new(),
        progress: true,
    };
    let mut as_json = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--mode" => {
                s.mode = match value()?.as_str() {
                    "api" => Mode::Api,
                    "start" => Mode::Start,
                    other => bail!("--mode is api or start, not {other:?}"),
                }
            }
            "--grpc" => s.grpc = value()?,
            "--token" => s.token = Some(value()?),
            "--temporal" => s.temporal = value()?,
            "--task-queue" => s.task_queue = value()?,
            "-n" => s.n = value()?.parse().context("-n")?,
            "-c" => s.concurrency = value()?.parse().context("-c")?,
            "--rate" => s.rate = Some(value()?.parse().context("--rate")?),
            "--warmup" => s.warmup = value()?.parse().context("--warmup")?,
            "--sku" => s.sku = value()?,
            "--unit-price-cents" => s.unit_price_cents = value()?.parse()?,
            "--pid" => {
                let v = value()?;
                let (role, pid) = v.split_once('=').context("--pid takes ROLE=PID")?;
                s.watched.push(Watched {
                    role: role.to_string(),
                    pid: pid.parse().context("--pid takes ROLE=PID")?,
                });
            }
            "--server-metrics" => s.server_metrics = Some(value()?),
            "--label" => s.label = value()?,
            "--json" => as_json = true,
            "--no-progress" => s.progress = false,
            other => bail!("unknown argument {other:?} (see the module docs)"),
        }
    }
    Ok((s, as_json))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (settings, as_json) = parse_args()?;
    let report = run(settings).await?;
    if as_json {
        println!("{}", serde_json::Value::Object(report));
    } else {
        for (k, v) in &report {
            println!("{k:>24}  {v}");
        }
    }
    Ok(())
}
