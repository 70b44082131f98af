//! `ordersaga-chaos`: the chaos suite (see `ordersaga_tests::chaos` and
//! docs/reliability.md). Prints a table of figures; exits 1 on any
//! violation, 2 when the run itself could not be completed.
//!
//! ```text
//! ordersaga-chaos [--orders N] [--seed S] [--workers W] [--kills-per-kind K]
//!                 [--postgres] [--dir DIR] [--out FILE.json]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use ordersaga_tests::chaos::{self, Config};

fn main() -> ExitCode {
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ordersaga-chaos: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<bool> {
    let (config, out) = parse(std::env::args().skip(1))?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    let verdict = runtime.block_on(chaos::run(&config))?;
    println!(
        "chaos run: {} orders, seed {}, {} workers, {} faults per kind",
        config.orders, config.seed, config.workers, config.kills_per_kind
    );
    print!("{}", verdict.render());
    if let Some(out) = out {
        let json = serde_json::json!({"config": config, "verdict": verdict});
        std::fs::write(&out, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(verdict.violations.is_empty())
}

fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<(Config, Option<PathBuf>)> {
    let exe = std::env::current_exe()?;
    let bin_dir = exe
        .parent()
        .context("no directory of the binary")?
        .to_path_buf();
    let mut config = Config {
        orders: 60,
        seed: 1,
        workers: 2,
        kills_per_kind: 3,
        postgres: false,
        dir: PathBuf::new(),
        bin_dir,
    };
    let mut dir = None;
    let mut out = None;
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--orders" => config.orders = value()?.parse()?,
            "--seed" => config.seed = value()?.parse()?,
            "--workers" => config.workers = value()?.parse()?,
            "--kills-per-kind" => config.kills_per_kind = value()?.parse()?,
            "--postgres" => config.postgres = true,
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            other => bail!("unknown argument {other:?} (see the module docs)"),
        }
    }
    if config.orders == 0 || config.workers == 0 {
        bail!("--orders and --workers must be at least 1");
    }
    config.dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "ordersaga-chaos-{}-{}",
            config.seed,
            std::process::id()
        ))
    });
    Ok((config, out))
}
