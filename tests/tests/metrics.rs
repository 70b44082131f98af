//! The worker's Prometheus endpoint serves the metrics `docs/tuning.md`
//! tells operators to watch: the SDK's overload signals and our business
//! counters. Presence only: no timing assertions (the benchmark is
//! `bench/run`, not the test suite).

use std::time::Duration;

use ordersaga_domain::OrderStatus;
use ordersaga_tests::{Stack, eventually, free_port};
use ordersaga_worker::WorkerSettings;
use ordersaga_workflows::OrderWorkflow;
use temporalio_client::WorkflowGetResultOptions;

/// Every name `docs/tuning.md` refers to.
const TUNING_METRICS: [&str; 16] = [
    "temporal_workflow_task_schedule_to_start_latency",
    "temporal_activity_schedule_to_start_latency",
    "temporal_worker_task_slots_available",
    "temporal_worker_task_slots_used",
    "temporal_workflow_task_execution_latency",
    "temporal_activity_execution_latency",
    "temporal_sticky_cache_size",
    "ordersaga_orders_placed",
    "ordersaga_orders_confirmed",
    "ordersaga_orders_failed",
    "ordersaga_refunds",
    "ordersaga_payment_wait",
    "ordersaga_outbox_delivered",
    "ordersaga_outbox_backlog",
    "ordersaga_outbox_retried",
    "ordersaga_orders_needs_attention",
];

#[tokio::test]
async fn worker_metrics_name_what_tuning_md_names() -> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    stack.start_worker(WorkerSettings {
        metrics_addr: Some(addr),
        ..WorkerSettings::default()
    })?;
    // One unit in stock: the first order confirms; the second is paid,
    // finds no stock and is refunded, so every business counter moves.
    let sku = stack.product("METRIC-1", 1_000, 1).await?;
    for expected in [OrderStatus::Confirmed, OrderStatus::Failed] {
        let placed = stack
            .grpc
            .clone()
            .place_order(ordersaga_tests::place_request(
                "metrics",
                &[(sku.as_str(), 1)],
                "",
            ))
            .await?
            .into_inner();
        let outcome = tokio::time::timeout(
            Duration::from_secs(30),
            stack
                .client
                .get_workflow_handle::<OrderWorkflow>(placed.workflow_id)
                .get_result(WorkflowGetResultOptions::default()),
        )
        .await??;
        assert_eq!(outcome.status, expected);
    }

    let url = format!("http://{addr}/metrics");
    let http = reqwest::Client::new();
    // The exporter renders asynchronously recorded values; poll until all show.
    let body = eventually("every tuning metric", Duration::from_secs(10), || {
        let req = http.get(&url);
        async move {
            let body = req.send().await?.text().await?;
            let complete = TUNING_METRICS.iter().all(|m| body.contains(m));
            Ok(complete.then_some(body))
        }
    })
    .await;
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let text = http.get(&url).send().await?.text().await?;
            let missing: Vec<_> = TUNING_METRICS
                .iter()
                .filter(|m| !text.contains(*m))
                .collect();
            anyhow::bail!("{e}: missing {missing:?}");
        }
    };
    for counter in [
        "ordersaga_orders_placed",
        "ordersaga_orders_confirmed",
        "ordersaga_orders_failed",
        "ordersaga_refunds",
    ] {
        let value: f64 = body
            .lines()
            .find(|l| l.starts_with(counter) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(value >= 1.0, "{counter} = {value}");
    }
    Ok(())
}
