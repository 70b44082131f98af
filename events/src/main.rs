//! `ordersaga-events`: follow the shop's domain events on NATS JetStream.

use anyhow::{Context, bail};
use async_nats::jetstream;
use ordersaga_events::projection::{self, DEFAULT_DURABLE, SalesDb};
use ordersaga_events::read::{self, Since, StreamEvent};
use ordersaga_events::{EventSettings, NatsSettings, cloud, nats};
use ordersaga_runtime::settings::Load;

const USAGE: &str = "\
usage: ordersaga-events <command> [options]

commands:
  tail   [--subject S]                      print new events as they arrive (Ctrl-C stops)
  replay [--since start|TIME|AGO] [--subject S] [--pretty]
                                            print stored events as CloudEvents JSON, one a line,
                                            from the stream's start (default), an RFC 3339 time
                                            or a duration ago (15m, 2h), then exit
  project [--durable NAME] [--db URL] [--batch N] [--until-caught-up]
                                            keep the sales-per-SKU-per-day projection (durable
                                            consumer; restartable), printing progress and lag
  sales  [--durable NAME] [--db URL] [--day YYYY-MM-DD]
                                            print the projection's totals and its lag

NATS: ORDERSAGA_NATS_URL (required) and ORDERSAGA_NATS_* credentials/TLS, stream
ORDERSAGA_EVENTS_STREAM (default SHOP_EVENTS). Projection database: --db or
ORDERSAGA_PROJECTION_DATABASE_URL (default sqlite://.data/sales.db?mode=rwc).
--subject filters NATS subjects (default shop.>), e.g. 'shop.orders.*.OrderFailed'.";

/// Options after the command.
#[derive(Debug, Default)]
struct Opts {
    subject: Option<String>,
    since: Option<String>,
    durable: Option<String>,
    db: Option<String>,
    day: Option<String>,
    batch: Option<usize>,
    pretty: bool,
    until_caught_up: bool,
}

fn parse(args: &[String]) -> anyhow::Result<Opts> {
    let mut o = Opts::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .with_context(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--subject" => o.subject = Some(value()?),
            "--since" => o.since = Some(value()?),
            "--durable" => o.durable = Some(value()?),
            "--db" => o.db = Some(value()?),
            "--day" => o.day = Some(value()?),
            "--batch" => o.batch = Some(value()?.parse().context("--batch: expected a number")?),
            "--pretty" => o.pretty = true,
            "--until-caught-up" => o.until_caught_up = true,
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(o)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ordersaga_runtime::telemetry::init("warn")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        println!("{USAGE}");
        return Ok(());
    };
    if matches!(command.as_str(), "-h" | "--help" | "help") {
        println!("{USAGE}");
        return Ok(());
    }
    let opts = parse(rest)?;
    let settings = EventSettings::load().context("events configuration")?;
    let nats_settings = settings
        .nats
        .clone()
        .context("ORDERSAGA_NATS_URL is not set: there is no event stream to read")?;
    let js = connect(&nats_settings).await?;
    let stream = &settings.stream.name;
    let filter = opts
        .subject
        .clone()
        .unwrap_or_else(|| nats::ALL_SUBJECTS.to_string());
    match command.as_str() {
        "tail" => {
            let tailing = read::tail(&js, stream, &filter, |e| {
                println!("{}", cloud::pretty(&e.event))
            });
            tokio::select! {
                r = tailing => r?,
                () = ordersaga_runtime::process::shutdown_signal() => {}
            }
        }
        "replay" => {
            let since = match &opts.since {
                Some(s) => Since::parse(s).map_err(anyhow::Error::msg)?,
                None => Since::Start,
            };
            let pretty = opts.pretty;
            let mut failed = None;
            read::replay(&js, stream, &filter, since, |e: StreamEvent| {
                if pretty {
                    println!("{}", cloud::pretty(&e.event));
                } else {
                    match serde_json::to_string(&e.event) {
                        Ok(line) => println!("{line}"),
                        Err(err) => failed = Some(err),
                    }
                }
            })
            .await?;
            if let Some(err) = failed {
                return Err(err.into());
            }
        }
        "project" => {
            let db = open_db(&opts).await?;
            let durable = opts.durable.as_deref().unwrap_or(DEFAULT_DURABLE);
            let consumer = projection::consumer(&js, stream, durable).await?;
            let running = projection::run(
                &consumer,
                &db,
                opts.batch.unwrap_or(100),
                opts.until_caught_up,
                |p| eprintln!("applied {} events, lag {}", p.applied, p.lag),
            );
            tokio::select! {
                r = running => { r?; }
                () = ordersaga_runtime::process::shutdown_signal() => {}
            }
        }
        "sales" => {
            let db = open_db(&opts).await?;
            let durable = opts.durable.as_deref().unwrap_or(DEFAULT_DURABLE);
            println!(
                "{:<10}  {:<20}  {:>8}  {:>8}  {:>14}  currency",
                "day", "sku", "orders", "units", "revenue"
            );
            for row in db.totals(opts.day.as_deref()).await? {
                println!(
                    "{:<10}  {:<20}  {:>8}  {:>8}  {:>14}  {}",
                    row.day, row.sku, row.orders, row.units, row.revenue_minor, row.currency
                );
            }
            let consumer = projection::consumer(&js, stream, durable).await?;
            println!(
                "applied events: {}, lag: {} (events of the stream not applied yet)",
                db.applied().await?,
                projection::lag(&consumer).await?
            );
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
    Ok(())
}

async fn connect(s: &NatsSettings) -> anyhow::Result<jetstream::Context> {
    let client = nats::connect(s, "ordersaga-events", true).await?;
    Ok(jetstream::new(client))
}

async fn open_db(opts: &Opts) -> anyhow::Result<SalesDb> {
    let url = match &opts.db {
        Some(url) => url.clone(),
        None => std::env::var("ORDERSAGA_PROJECTION_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "sqlite://.data/sales.db?mode=rwc".to_string()),
    };
    Ok(SalesDb::open(&url).await?)
}
