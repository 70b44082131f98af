//! The worker's Prometheus endpoint serves the metrics `docs/tuning.md`
//! tells operators to watch: the SDK's overload signals and our business
//! counters. Presence only: no timing assertions (the benchmark is
//! `bench/run`, not the test suite).

use std::time::Duration;

use ordersaga_domain::{CheckoutTiming, OrderStatus};
use ordersaga_tests::{Stack, eventually, free_port};
use ordersaga_worker::WorkerSettings;
use ordersaga_workflows::OrderWorkflow;
use temporalio_client::{
    UntypedWorkflow, WorkflowFetchHistoryOptions, WorkflowGetResultOptions,
};
use temporalio_common::protos::temporal::api::enums::v1::EventType;

/// Every name `docs/tuning.md` refers to.
const TUNING_METRICS: [&str; 15] = [
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
        let value = counter_value(&body, counter);
        assert!(value >= 1.0, "{counter} = {value}");
    }
    Ok(())
}

/// A counter's value in a Prometheus text page (0 if absent).
fn counter_value(body: &str, counter: &str) -> f64 {
    body.lines()
        .find(|l| l.starts_with(counter) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Checkout orders get webhooks as their sagas complete. A signal that
/// reaches the server while a task completes the workflow fails that task
/// (`UnhandledCommand`); the retry used to run `ConfirmOrder`/`FailOrder`
/// again and count the order twice. Now the completing task runs no
/// database step, and the counters count state changes.
#[tokio::test]
async fn business_counters_equal_the_outcomes_of_a_checkout_run() -> anyhow::Result<()> {
    let mut stack = Stack::builder()
        .checkout(CheckoutTiming {
            deadline_secs: 600,
            poll_secs: 600,
        })
        .without_worker()
        .start()
        .await?;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    stack.start_worker(WorkerSettings {
        metrics_addr: Some(addr),
        ..WorkerSettings::default()
    })?;
    // Two units: two approvals confirm, the third is paid, short and
    // refunded; one capture is declined; one buyer cancels.
    let sku = stack.product("METRIC-2", 1_000, 2).await?;
    let buyers = [
        ("approve-m1", OrderStatus::Confirmed),
        ("approve-m2", OrderStatus::Confirmed),
        ("approve-m3", OrderStatus::Failed),
        ("decline-m4", OrderStatus::Failed),
        ("cancel-m5", OrderStatus::Failed),
    ];
    let mut workflows = Vec::new();
    for (buyer, expected) in buyers {
        let placed = stack
            .grpc
            .clone()
            .place_order(ordersaga_tests::place_request(
                buyer,
                &[(sku.as_str(), 1)],
                "",
            ))
            .await?
            .into_inner();
        // One at a time, so stock decides which approval is short.
        let outcome = tokio::time::timeout(
            Duration::from_secs(60),
            stack
                .client
                .get_workflow_handle::<OrderWorkflow>(placed.workflow_id.clone())
                .get_result(WorkflowGetResultOptions::default()),
        )
        .await??;
        assert_eq!(outcome.status, expected, "{buyer}");
        workflows.push(placed.workflow_id);
    }

    let url = format!("http://{addr}/metrics");
    let http = reqwest::Client::new();
    let body = eventually("the run's counters", Duration::from_secs(10), || {
        let req = http.get(&url);
        async move {
            let body = req.send().await?.text().await?;
            let all = counter_value(&body, "ordersaga_orders_confirmed") >= 2.0
                && counter_value(&body, "ordersaga_orders_failed") >= 3.0;
            Ok(all.then_some(body))
        }
    })
    .await?;
    assert_eq!(counter_value(&body, "ordersaga_orders_placed"), 5.0);
    assert_eq!(counter_value(&body, "ordersaga_orders_confirmed"), 2.0);
    assert_eq!(counter_value(&body, "ordersaga_orders_failed"), 3.0);
    assert_eq!(counter_value(&body, "ordersaga_refunds"), 1.0);

    for workflow_id in workflows {
        let history = stack
            .client
            .get_workflow_handle::<UntypedWorkflow>(workflow_id.clone())
            .fetch_history(WorkflowFetchHistoryOptions::default())
            .to_json()
            .await?;
        let history: serde_json::Value = serde_json::from_slice(&history)?;
        let failed_tasks = history["events"]
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .filter(|e| e["event_type"] == EventType::WorkflowTaskFailed as i32)
                    .count()
            })
            .unwrap_or_default();
        assert_eq!(failed_tasks, 0, "{workflow_id}: a workflow task failed");
    }
    Ok(())
}
