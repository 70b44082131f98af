//! `ordersaga-ceiling`: a worker for the peer benchmark's contract.
//!
//! ```text
//! ordersaga-ceiling --address 127.0.0.1:7300 --task-queue tq
//!     [--max-workflow-tasks N] [--max-activities N] [--metrics-addr HOST:PORT]
//! ```
//! Prints `READY` on stdout once polling (what `bench.py` waits for); logs go
//! to stderr, because `bench.py` stops reading stdout after `READY`.

use ordersaga_runtime::process::shutdown_signal;
use ordersaga_runtime::telemetry::{self, LogFormat};
use std::sync::Arc;

use anyhow::{Context, bail};
use ordersaga_ceiling::{NoopWorkflow, OrderSaga, SagaActivities, SingleActivityWorkflow};
use ordersaga_runtime::codec::CodecSettings;
use ordersaga_runtime::connection::{TemporalSettings, connect};
use temporalio_common::telemetry::metrics::CoreMeter;
use temporalio_common::telemetry::{
    PrometheusExporterOptions, TelemetryOptions, start_prometheus_metric_exporter,
};
use temporalio_sdk::runtime::RuntimeOptions;
use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

struct Args {
    address: String,
    task_queue: String,
    // The Python SDK's defaults (100 each), so both sides get equal slots.
    max_workflow_tasks: usize,
    max_activities: usize,
    metrics_addr: Option<std::net::SocketAddr>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        address: "127.0.0.1:7233".to_string(),
        task_queue: String::new(),
        max_workflow_tasks: 100,
        max_activities: 100,
        metrics_addr: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--address" => args.address = value()?,
            "--task-queue" => args.task_queue = value()?,
            "--max-workflow-tasks" => args.max_workflow_tasks = value()?.parse()?,
            "--max-activities" => args.max_activities = value()?.parse()?,
            "--metrics-addr" => args.metrics_addr = Some(value()?.parse()?),
            other => bail!("unknown argument {other:?}"),
        }
    }
    if args.task_queue.is_empty() {
        bail!("--task-queue is required");
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // stderr: stdout carries the results.
    telemetry::init_with(
        LogFormat::Text,
        telemetry::env_filter("warn"),
        std::io::stderr,
    )?;
    let args = parse_args()?;
    let client = connect(&TemporalSettings {
        address: Some(args.address.clone()),
        namespace: Some("default".to_string()),
        identity: Some("ordersaga-ceiling".to_string()),
        codec: CodecSettings::load()?,
    })
    .await?;
    let metrics_server = args
        .metrics_addr
        .map(|addr| {
            start_prometheus_metric_exporter(
                PrometheusExporterOptions::builder()
                    .socket_addr(addr)
                    .build(),
            )
        })
        .transpose()
        .map_err(|e| anyhow::anyhow!("metrics exporter: {e}"))?;
    let meter = metrics_server
        .as_ref()
        .map(|m| -> Arc<dyn CoreMeter> { m.meter.clone() });
    let runtime = Runtime::from_current_tokio(
        RuntimeOptions::builder()
            .telemetry_options(TelemetryOptions::builder().maybe_metrics(meter).build())
            .build()
            .map_err(anyhow::Error::msg)?,
    )?;
    let tuner = TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(args.max_workflow_tasks))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(args.max_activities))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(args.max_activities))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .build();
    let options = WorkerOptions::new(args.task_queue.as_str())
        .register_workflow::<OrderSaga>()?
        .register_workflow::<NoopWorkflow>()?
        .register_workflow::<SingleActivityWorkflow>()?
        .register_activities(SagaActivities)
        .tuner(tuner)
        .max_cached_workflows(1000)
        .build();
    let mut worker = Worker::new(&runtime, client, options)?;
    let stop = worker.shutdown_handle();
    let running = worker.run();
    tokio::pin!(running);
    println!("READY");
    tokio::select! {
        r = &mut running => r?,
        () = shutdown_signal() => {
            stop();
            running.await?;
        }
    }
    Ok(())
}
