//! `ordersaga-otlp-sink`: an OTLP/gRPC trace collector that only counts
//! (`ordersaga_tests::otlp`), for measuring what tracing costs
//! (`bench/run --traces on`) without a real collector's own CPU in the way.
//!
//! ```text
//! ordersaga-otlp-sink [--listen 127.0.0.1:4317] [--counts FILE]
//! ```
//!
//! Point the shop's processes at it with
//! `OTEL_EXPORTER_OTLP_ENDPOINT=http://<listen>`. With `--counts`, FILE
//! holds the counts so far as one JSON object (`requests`, `spans`,
//! `traces`, spans per `services` and per span `names`), rewritten (write, then rename) within
//! 200 ms of each change; on SIGTERM or SIGINT the sink stops, writes FILE
//! a last time and prints the same object on stdout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ordersaga_tests::otlp::{Counts, Receiver};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

fn write_counts(path: &Path, counts: &Counts) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, serde_json::to_vec(counts)?)
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut listen = "127.0.0.1:4317".to_string();
    let mut counts_file: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => listen = value()?,
            "--counts" => counts_file = Some(value()?.into()),
            other => bail!(
                "unknown argument {other}; usage: ordersaga-otlp-sink [--listen ADDR] [--counts FILE]"
            ),
        }
    }
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    eprintln!(
        "ordersaga-otlp-sink: listening on {}",
        listener.local_addr()?
    );

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let receiver = Receiver::counting();
    let server = tokio::spawn(receiver.clone().serve(listener, async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    }));
    if let Some(path) = &counts_file {
        write_counts(path, &receiver.counts())?;
    }
    let mut written = receiver.counts();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    while !server.is_finished() {
        tick.tick().await;
        let now = receiver.counts();
        if let Some(path) = counts_file.as_ref().filter(|_| now != written) {
            write_counts(path, &now)?;
            written = now;
        }
    }
    server.await??;
    let counts = receiver.counts();
    if let Some(path) = &counts_file {
        write_counts(path, &counts)?;
    }
    println!("{}", serde_json::to_string(&counts)?);
    Ok(())
}
