//! The worker's Prometheus endpoint serves the metrics `docs/tuning.md`
//! tells operators to watch: the SDK's overload signals, the polls it runs
//! and our business counters. No timing assertions (the benchmark is
//! `bench/run`, not the test suite).

use std::time::Duration;

use ordersaga_domain::{CheckoutTiming, OrderStatus};
use ordersaga_domain::{GatewayEvent, GatewayEventKind};
use ordersaga_tests::{Stack, eventually, free_port};
use ordersaga_worker::WorkerSettings;
use ordersaga_workflows::OrderWorkflow;
use temporalio_client::{WorkflowGetResultOptions, WorkflowSignalOptions};

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
    let addr = start_worker_with_metrics(&mut stack, WorkerSettings::default())?;
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

/// A checkout stack whose worker serves `/metrics` at the returned address.
async fn checkout_stack_with_metrics() -> anyhow::Result<(Stack, std::net::SocketAddr)> {
    let mut stack = Stack::builder()
        .checkout(CheckoutTiming {
            deadline_secs: 600,
            poll_secs: 600,
        })
        .without_worker()
        .start()
        .await?;
    let addr = start_worker_with_metrics(&mut stack, WorkerSettings::default())?;
    Ok((stack, addr))
}

/// Starts the stack's worker with `settings`, serving `/metrics` at the
/// returned address.
fn start_worker_with_metrics(
    stack: &mut Stack,
    settings: WorkerSettings,
) -> anyhow::Result<std::net::SocketAddr> {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    stack.start_worker(WorkerSettings {
        metrics_addr: Some(addr),
        ..settings
    })?;
    Ok(addr)
}

/// The metrics page once `counter` reached at least `at_least`.
async fn counters_once(
    addr: std::net::SocketAddr,
    counter: &str,
    at_least: f64,
) -> anyhow::Result<String> {
    let url = format!("http://{addr}/metrics");
    let http = reqwest::Client::new();
    eventually(
        &format!("{counter} >= {at_least}"),
        Duration::from_secs(10),
        || {
            let req = http.get(&url);
            async move {
                let body = req.send().await?.text().await?;
                Ok((counter_value(&body, counter) >= at_least).then_some(body))
            }
        },
    )
    .await
}

/// Checkout orders get webhooks as their sagas complete. A signal that
/// reaches the server while a task completes the workflow fails that task
/// (`UnhandledCommand`), and the retry used to run that task's
/// `ConfirmOrder` again and count the order once per retry. Here a storm of
/// webhook signals covers the whole saga: the completing task runs no
/// database step now, and the counters count state changes.
#[tokio::test]
async fn a_signal_storm_at_completion_counts_the_order_once() -> anyhow::Result<()> {
    let (stack, addr) = checkout_stack_with_metrics().await?;
    let sku = stack.product("METRIC-3", 1_000, 5).await?;
    // `approve…`: the sandbox's buyer approves at once.
    let placed = stack
        .grpc
        .clone()
        .place_order(ordersaga_tests::place_request(
            "approve-storm",
            &[(sku.as_str(), 1)],
            "",
        ))
        .await?
        .into_inner();
    let handle = stack
        .client
        .get_workflow_handle::<OrderWorkflow>(placed.workflow_id.clone());
    let storm = {
        let handle = stack
            .client
            .get_workflow_handle::<OrderWorkflow>(placed.workflow_id.clone());
        tokio::spawn(async move {
            // Paced, not a synchronisation: a late copy of the capture's
            // webhook every few milliseconds, until the saga is over.
            for n in 0..400 {
                let event = GatewayEvent {
                    event_id: format!("WH-storm-{n}"),
                    kind: GatewayEventKind::Captured,
                };
                let sent = handle
                    .signal(
                        OrderWorkflow::payment_event,
                        event,
                        WorkflowSignalOptions::default(),
                    )
                    .await;
                if sent.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await??;
    assert_eq!(outcome.status, OrderStatus::Confirmed);
    storm.await?;
    let body = counters_once(addr, "ordersaga_orders_confirmed", 1.0).await?;
    assert_eq!(counter_value(&body, "ordersaga_orders_confirmed"), 1.0);
    assert_eq!(counter_value(&body, "ordersaga_orders_failed"), 0.0);
    Ok(())
}

/// The counters equal the outcomes of a checkout run with every ending.
#[tokio::test]
async fn business_counters_equal_the_outcomes_of_a_checkout_run() -> anyhow::Result<()> {
    let (stack, addr) = checkout_stack_with_metrics().await?;
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
    }

    let body = counters_once(addr, "ordersaga_orders_failed", 3.0).await?;
    assert_eq!(counter_value(&body, "ordersaga_orders_placed"), 5.0);
    assert_eq!(counter_value(&body, "ordersaga_orders_confirmed"), 2.0);
    assert_eq!(counter_value(&body, "ordersaga_orders_failed"), 3.0);
    assert_eq!(counter_value(&body, "ordersaga_refunds"), 1.0);

    Ok(())
}

/// The value of a gauge whose label set includes every one of `labels`.
fn gauge_with(body: &str, gauge: &str, labels: &[String]) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(gauge) && labels.iter().all(|k| l.contains(k.as_str())))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// `ORDERSAGA_ORDERS_NEW_TASK_POLLS` is how many polls wait for new
/// orders. The SDK ignores its sticky ratio and each waiting poll holds a
/// workflow-task slot, so the worker derives both the poll maximum and the
/// slots from it; a miss shows as fewer new-task polls than asked.
#[tokio::test]
async fn the_saga_queue_runs_the_new_task_polls_asked_for() -> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    let settings = WorkerSettings {
        new_task_polls: Some(6),
        ..WorkerSettings::default()
    };
    let addr = start_worker_with_metrics(&mut stack, settings)?;
    let url = format!("http://{addr}/metrics");
    let http = reqwest::Client::new();
    let queue = format!("task_queue=\"{}\"", stack.task_queue);
    let polls = |kind: &str| vec![queue.clone(), format!("poller_type=\"{kind}\"")];
    let (new_task, sticky) = (polls("workflow_task"), polls("sticky_workflow_task"));
    let counted = eventually("6 new-task polls", Duration::from_secs(20), || {
        let req = http.get(&url);
        let (new_task, sticky) = (&new_task, &sticky);
        async move {
            let body = req.send().await?.text().await?;
            let counts = (
                gauge_with(&body, "temporal_num_pollers", new_task),
                gauge_with(&body, "temporal_num_pollers", sticky),
            );
            Ok((counts == (Some(6.0), Some(24.0))).then_some(counts))
        }
    })
    .await;
    if let Err(e) = counted {
        let body = http.get(&url).send().await?.text().await?;
        let pollers: Vec<_> = body
            .lines()
            .filter(|l| l.starts_with("temporal_num_pollers"))
            .collect();
        anyhow::bail!("{e}: {pollers:#?}");
    }
    Ok(())
}
