//! Upgrading the workers while orders are in flight (Worker Deployment
//! Versioning, docs/operations.md), on a real dev server with real worker
//! processes of two builds that differ in their saga:
//!
//! - build A: `ordersaga-worker-previous`, the saga before its newest
//!   change (the `previous-build` feature, built here by cargo);
//! - build B: `ordersaga-worker`, whose saga has that change behind its
//!   patch (`payment-status-attribute-v1`: the `PaymentStatus` search
//!   attribute), so a saga shows which build ran it.
//!
//! The routing is changed with the `temporal worker deployment` commands
//! the operations guide gives. Sagas are pinned: each runs to its end on
//! the build it started on, whatever the routing does meanwhile.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, ensure};
use futures::{StreamExt, TryStreamExt, stream};
use ordersaga_domain::CheckoutTiming;
use ordersaga_domain::names::WORKER_DEPLOYMENT_NAME;
use ordersaga_proto::v1 as pb;
use ordersaga_tests::{ORDER_TIMEOUT, Stack, built_binary, eventually, place_request};
use ordersaga_workflows::PAYMENT_STATUS_ATTR;
use serde_json::Value;
use temporalio_client::{UntypedWorkflow, WorkflowDescribeOptions, WorkflowFetchHistoryOptions};
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
use tokio::process::Child;
use tokio::sync::Mutex;

/// Only webhooks (the buyer) move an order within a test's life.
const WEBHOOKS_ONLY: CheckoutTiming = CheckoutTiming {
    deadline_secs: 900,
    poll_secs: 900,
};
const BUILD_A: &str = "upgrade-test-a";
const BUILD_B: &str = "upgrade-test-b";
/// Orders placed or approved at once.
const AT_ONCE: usize = 8;
/// How long the deployment gets to notice pollers or a drained build.
const ROUTING_WAIT: Duration = Duration::from_secs(60);

/// Builds `ordersaga-worker-previous` and returns its path. In a target
/// directory of its own (`target/previous-build`): built in the shared one,
/// its dependencies' features differ from the workspace build's, and each
/// build would then recompile the other's. The first build takes a while;
/// later ones only recompile what changed.
async fn previous_build() -> anyhow::Result<PathBuf> {
    // The two tests of this binary run at once; one build is enough.
    static ONE_BUILD: Mutex<()> = Mutex::const_new(());
    let _turn = ONE_BUILD.lock().await;
    let worker = built_binary("ordersaga-worker")?;
    let target = worker
        .parent()
        .and_then(|profile| profile.parent())
        .context("no target directory")?
        .join("previous-build");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = tokio::process::Command::new(cargo)
        .args([
            "build",
            "-p",
            "ordersaga-worker",
            "--features",
            "previous-build",
        ])
        .args(["--bin", "ordersaga-worker-previous", "--target-dir"])
        .arg(&target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .await
        .context("running cargo")?;
    ensure!(
        status.success(),
        "building ordersaga-worker-previous failed"
    );
    Ok(target.join("debug").join("ordersaga-worker-previous"))
}

/// Starts a worker process of `exe` as build `build_id` on all queues.
fn start_build(stack: &Stack, exe: &Path, build_id: &str) -> anyhow::Result<Child> {
    let sandbox = stack.sandbox()?.paypal_settings().base_url;
    stack.spawn_worker_build(
        exe,
        &[
            ("ORDERSAGA_BUILD_ID", build_id),
            ("ORDERSAGA_PAYPAL_BASE_URL", sandbox.as_str()),
            ("ORDERSAGA_RECONCILE_EVERY_SECS", "0"),
            ("RUST_LOG", "warn,ordersaga_worker=info"),
        ],
    )
}

/// Stops a worker process gracefully (SIGTERM) and waits for it.
async fn stop(mut worker: Child) -> anyhow::Result<()> {
    let pid = worker.id().context("the worker has exited already")?;
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await?;
    ensure!(killed.success(), "kill -TERM {pid}");
    let status = tokio::time::timeout(ORDER_TIMEOUT, worker.wait()).await??;
    ensure!(status.success(), "the worker stopped with {status}");
    Ok(())
}

/// `temporal worker deployment <args>` on the stack's namespace, printed
/// (docs/operations.md shows this output) and returned.
async fn deployment(stack: &Stack, args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["worker", "deployment"];
    all.extend_from_slice(args);
    let out = stack.temporal_cli(&all).await?;
    println!("$ temporal {}\n{out}", all.join(" "));
    Ok(out)
}

/// The deployment's routing as `describe -o json` reports it: the current
/// build, and the ramping build with its percentage.
async fn routing(stack: &Stack) -> anyhow::Result<(Option<String>, Option<(String, f64)>)> {
    let out = stack
        .temporal_cli(&[
            "worker",
            "deployment",
            "describe",
            "--name",
            WORKER_DEPLOYMENT_NAME,
            "-o",
            "json",
        ])
        .await?;
    let info: Value = serde_json::from_str(&out)?;
    let routing = &info["routingConfig"];
    let build = |key: &str| {
        routing[key]
            .as_str()
            .filter(|b| !b.is_empty())
            .map(str::to_string)
    };
    // A deleted ramp may still be named, at 0%.
    let percentage = routing["rampingVersionPercentage"].as_f64().unwrap_or(0.0);
    let ramping = build("rampingVersionBuildID")
        .filter(|_| percentage > 0.0)
        .map(|b| (b, percentage));
    Ok((build("currentVersionBuildID"), ramping))
}

/// A build's drainage status (`describe-version -o json`): `draining` once
/// it is no longer current or ramping, `drained` once no pinned workflow is
/// open on it either (empty while it takes new workflows).
async fn drainage(stack: &Stack, build_id: &str) -> anyhow::Result<String> {
    let out = stack
        .temporal_cli(&[
            "worker",
            "deployment",
            "describe-version",
            "--deployment-name",
            WORKER_DEPLOYMENT_NAME,
            "--build-id",
            build_id,
            "-o",
            "json",
        ])
        .await?;
    let info: Value = serde_json::from_str(&out)?;
    let status = info["drainageInfo"]["drainageStatus"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    Ok(status
        .trim_start_matches("version_drainage_status_")
        .to_string())
}

/// Waits until the deployment knows `build_id` with pollers on every
/// queue of a full worker (orders, reconciler, notifications, shipping;
/// workflow and activity pollers of each).
async fn wait_for_pollers(stack: &Stack, build_id: &str) -> anyhow::Result<()> {
    eventually(
        &format!("build {build_id} polling"),
        ROUTING_WAIT,
        || async {
            let out = stack
                .temporal_cli(&[
                    "worker",
                    "deployment",
                    "describe-version",
                    "--deployment-name",
                    WORKER_DEPLOYMENT_NAME,
                    "--build-id",
                    build_id,
                    "-o",
                    "json",
                ])
                .await?;
            let info: Value = serde_json::from_str(&out)?;
            let queues: BTreeSet<(&str, &str)> = info["taskQueuesInfos"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|q| Some((q["name"].as_str()?, q["type"].as_str()?)))
                .collect();
            Ok((queues.len() >= 8).then_some(()))
        },
    )
    .await
}

/// A placed checkout order waiting for its buyer.
struct Placed {
    order_id: String,
    workflow_id: String,
    approval_url: String,
}

async fn place(stack: &Stack, count: usize, customer: &str) -> anyhow::Result<Vec<Placed>> {
    stream::iter(0..count)
        .map(|i| async move {
            let placed = stack
                .grpc
                .clone()
                .place_order(place_request(
                    &format!("{customer}-{i}"),
                    &[("MUG-1", 1)],
                    "",
                ))
                .await?
                .into_inner();
            ensure!(
                placed.approval_url.contains("/checkoutnow?token="),
                "PlaceOrder answers the approval link, got {:?}",
                placed.approval_url
            );
            Ok(Placed {
                order_id: placed.order_id,
                workflow_id: placed.workflow_id,
                approval_url: placed.approval_url,
            })
        })
        .buffer_unordered(AT_ONCE)
        .try_collect()
        .await
}

/// The buyers approve; every order ends `CONFIRMED`.
async fn approve_and_confirm(stack: &Stack, orders: &[Placed]) -> anyhow::Result<()> {
    let sandbox = stack.sandbox()?;
    stream::iter(orders)
        .map(|o| async move {
            sandbox.approve(&o.approval_url).await?;
            let order = stack.terminal_order(&o.order_id).await?;
            ensure!(
                order.status == pb::OrderStatus::Confirmed as i32,
                "order {} ended {:?} ({})",
                o.order_id,
                pb::OrderStatus::try_from(order.status),
                order.failure_reason
            );
            Ok(())
        })
        .buffer_unordered(AT_ONCE)
        .try_collect::<()>()
        .await
}

/// Which builds completed a workflow's tasks, and its failed tasks.
struct Ran {
    builds: BTreeSet<String>,
    task_failures: Vec<String>,
}

async fn ran(stack: &Stack, workflow_id: &str) -> anyhow::Result<Ran> {
    let events = stack
        .client
        .get_workflow_handle::<UntypedWorkflow>(workflow_id.to_string())
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .into_events()
        .await?;
    let mut ran = Ran {
        builds: BTreeSet::new(),
        task_failures: Vec::new(),
    };
    for e in events {
        match e.attributes {
            Some(Attributes::WorkflowTaskCompletedEventAttributes(a)) => {
                let build = a.deployment_version.map(|v| v.build_id).unwrap_or_default();
                ran.builds.insert(build);
            }
            Some(Attributes::WorkflowTaskFailedEventAttributes(a)) => ran
                .task_failures
                .push(a.failure.map(|f| f.message).unwrap_or_default()),
            _ => {}
        }
    }
    Ok(ran)
}

/// Every task of each order's saga ran on `build_id`, none failed (no
/// non-determinism, nothing else), and the saga is that build's code: only
/// B's sets the `PaymentStatus` search attribute.
async fn all_ran_on(stack: &Stack, orders: &[Placed], build_id: &str) -> anyhow::Result<()> {
    for o in orders {
        let ran = ran(stack, &o.workflow_id).await?;
        ensure!(
            ran.builds == BTreeSet::from([build_id.to_string()]) && ran.task_failures.is_empty(),
            "order {} ran on {:?} with task failures {:?}, expected {build_id} only",
            o.order_id,
            ran.builds,
            ran.task_failures
        );
        let attribute = payment_status_attribute(stack, &o.workflow_id).await?;
        let expected = (build_id == BUILD_B).then(|| "CAPTURED".to_string());
        ensure!(
            attribute == expected,
            "order {}: PaymentStatus {attribute:?}, expected {expected:?} from build {build_id}",
            o.order_id
        );
    }
    Ok(())
}

async fn payment_status_attribute(
    stack: &Stack,
    workflow_id: &str,
) -> anyhow::Result<Option<String>> {
    let description = stack
        .client
        .get_workflow_handle::<UntypedWorkflow>(workflow_id.to_string())
        .describe(WorkflowDescribeOptions::default())
        .await?;
    Ok(description.search_attributes().get(&PAYMENT_STATUS_ATTR))
}

/// The build that took a workflow's first task.
async fn started_on(stack: &Stack, workflow_id: &str) -> anyhow::Result<String> {
    eventually("the saga's first workflow task", ORDER_TIMEOUT, || async {
        Ok(ran(stack, workflow_id).await?.builds.into_iter().next())
    })
    .await
}

#[tokio::test]
async fn an_upgrade_loses_no_order_and_keeps_each_on_the_build_it_started_on() -> anyhow::Result<()>
{
    let previous = previous_build().await?;
    let current = built_binary("ordersaga-worker")?;
    let stack = Stack::builder()
        .checkout(WEBHOOKS_ONLY)
        .without_worker()
        .start()
        .await?;
    stack.product("MUG-1", 1_250, 1_000).await?;

    // Build A, the deployment's first: it makes itself current.
    let a = start_build(&stack, &previous, BUILD_A)?;
    eventually("build A current", ROUTING_WAIT, || async {
        Ok((routing(&stack).await?.0.as_deref() == Some(BUILD_A)).then_some(()))
    })
    .await?;
    let confirmed_on_a = place(&stack, 3, "early").await?;
    approve_and_confirm(&stack, &confirmed_on_a).await?;
    let waiting = place(&stack, 100, "waiting").await?;

    // Build B polls, but takes nothing until an operator makes it current.
    let b = start_build(&stack, &current, BUILD_B)?;
    wait_for_pollers(&stack, BUILD_B).await?;
    deployment(
        &stack,
        &[
            "describe-version",
            "--deployment-name",
            WORKER_DEPLOYMENT_NAME,
            "--build-id",
            BUILD_B,
        ],
    )
    .await?;
    deployment(
        &stack,
        &[
            "set-current-version",
            "--deployment-name",
            WORKER_DEPLOYMENT_NAME,
            "--build-id",
            BUILD_B,
            "--yes",
        ],
    )
    .await?;
    assert_eq!(routing(&stack).await?, (Some(BUILD_B.to_string()), None));
    deployment(&stack, &["describe", "--name", WORKER_DEPLOYMENT_NAME]).await?;
    // A has 100 open sagas pinned to it: it drains, it is not drained.
    eventually("build A draining", ROUTING_WAIT, || async {
        Ok((drainage(&stack, BUILD_A).await? == "draining").then_some(()))
    })
    .await?;

    // The waiting buyers approve now; new orders arrive meanwhile.
    let placed_on_b = place(&stack, 3, "late").await?;
    approve_and_confirm(&stack, &waiting).await?;
    approve_and_confirm(&stack, &placed_on_b).await?;

    // A drains once its last pinned saga ends; only then is it stopped.
    eventually("build A drained", ROUTING_WAIT, || async {
        Ok((drainage(&stack, BUILD_A).await? == "drained").then_some(()))
    })
    .await?;
    deployment(
        &stack,
        &[
            "describe-version",
            "--deployment-name",
            WORKER_DEPLOYMENT_NAME,
            "--build-id",
            BUILD_A,
        ],
    )
    .await?;
    stop(a).await?;

    all_ran_on(&stack, &confirmed_on_a, BUILD_A).await?;
    all_ran_on(&stack, &waiting, BUILD_A).await?;
    all_ran_on(&stack, &placed_on_b, BUILD_B).await?;
    // The relays follow the current build (auto-upgrade): B runs them now,
    // and a new order's emails still go out with A stopped.
    let late = place(&stack, 1, "after").await?;
    approve_and_confirm(&stack, &late).await?;
    all_ran_on(&stack, &late, BUILD_B).await?;
    stack
        .replay_check(&late[0].workflow_id, "checkout-confirmed-payment-status")
        .await?;
    stop(b).await
}

#[tokio::test]
async fn a_ramp_sends_some_new_orders_to_the_new_build_and_a_rollback_none() -> anyhow::Result<()> {
    let previous = previous_build().await?;
    let current = built_binary("ordersaga-worker")?;
    let stack = Stack::builder()
        .checkout(WEBHOOKS_ONLY)
        .without_worker()
        .start()
        .await?;
    stack.product("MUG-1", 1_250, 1_000).await?;
    let a = start_build(&stack, &previous, BUILD_A)?;
    eventually("build A current", ROUTING_WAIT, || async {
        Ok((routing(&stack).await?.0.as_deref() == Some(BUILD_A)).then_some(()))
    })
    .await?;
    let b = start_build(&stack, &current, BUILD_B)?;
    wait_for_pollers(&stack, BUILD_B).await?;

    deployment(
        &stack,
        &[
            "set-ramping-version",
            "--deployment-name",
            WORKER_DEPLOYMENT_NAME,
            "--build-id",
            BUILD_B,
            "--percentage",
            "50",
            "--yes",
        ],
    )
    .await?;
    assert_eq!(
        routing(&stack).await?,
        (Some(BUILD_A.to_string()), Some((BUILD_B.to_string(), 50.0)))
    );
    // 20 orders: all on one build by chance has a probability of 2 in a
    // million.
    let ramped = place(&stack, 20, "ramped").await?;
    let mut on_a = Vec::new();
    let mut on_b = Vec::new();
    for o in ramped {
        match started_on(&stack, &o.workflow_id).await?.as_str() {
            BUILD_A => on_a.push(o),
            BUILD_B => on_b.push(o),
            other => anyhow::bail!("order {} started on {other}", o.order_id),
        }
    }
    assert!(
        !on_a.is_empty() && !on_b.is_empty(),
        "a 50% ramp split 20 orders {} on A, {} on B",
        on_a.len(),
        on_b.len()
    );

    // Roll back: B gets no new orders; its own still end on it.
    deployment(
        &stack,
        &[
            "set-ramping-version",
            "--deployment-name",
            WORKER_DEPLOYMENT_NAME,
            "--build-id",
            BUILD_B,
            "--delete",
            "--yes",
        ],
    )
    .await?;
    assert_eq!(routing(&stack).await?, (Some(BUILD_A.to_string()), None));
    let after_rollback = place(&stack, 5, "rolled-back").await?;
    approve_and_confirm(&stack, &on_b).await?;
    approve_and_confirm(&stack, &on_a).await?;
    approve_and_confirm(&stack, &after_rollback).await?;
    all_ran_on(&stack, &on_b, BUILD_B).await?;
    all_ran_on(&stack, &on_a, BUILD_A).await?;
    all_ran_on(&stack, &after_rollback, BUILD_A).await?;
    stop(b).await?;
    stop(a).await
}
