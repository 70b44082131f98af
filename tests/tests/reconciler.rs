//! The reconciler (issue 11): the Temporal Schedule the worker creates, and
//! what a `ReconcileOrders` run finds, repairs and flags, end to end on a
//! real dev server, worker, API, shop database and payments sandbox. Runs
//! are started by hand (the schedule's interval is minutes), with no grace
//! period, so each test decides when a run happens.

use std::time::Duration;

use anyhow::Context;
use ordersaga_activities::gateway::checkout::CheckoutStatus as GatewayStatus;
use ordersaga_domain::names::{
    RECONCILE_SCHEDULE_ID, RECONCILE_WORKFLOW_TYPE, RECONCILER_TASK_QUEUE,
};
use ordersaga_domain::{
    CheckoutTiming, Currency, CustomerId, FailureReason, FindingKind, Money, OrderId, OrderInput,
    OrderLine, PaymentStatus, ReconcileInput, ReconcileReport, Sku, TransactionId,
};
use ordersaga_proto::v1 as pb;
use ordersaga_store::PaymentLink;
use ordersaga_tests::{Stack, eventually, free_port, place_request};
use ordersaga_worker::{Queue, WorkerSettings};
use ordersaga_workflows::ReconcileOrdersWorkflow;
use sqlx::any::AnyPoolOptions;
use temporalio_client::schedules::ScheduleDescriptionAction;
use temporalio_client::{
    UntypedWorkflow, WorkflowGetResultOptions, WorkflowStartOptions, WorkflowTerminateOptions,
};

const WAIT: Duration = Duration::from_secs(30);

/// One reconciler run, started by hand, and its report.
async fn reconcile(stack: &Stack, run: &str) -> anyhow::Result<ReconcileReport> {
    let options =
        WorkflowStartOptions::new(RECONCILER_TASK_QUEUE, format!("reconcile-test-{run}")).build();
    let input = ReconcileInput {
        grace_secs: 0,
        limit: 50,
    };
    let handle = stack
        .client
        .start_workflow(ReconcileOrdersWorkflow::run, input, options)
        .await?;
    Ok(
        tokio::time::timeout(WAIT, handle.get_result(WorkflowGetResultOptions::default()))
            .await??,
    )
}

fn kinds_of(report: &ReconcileReport, subject: &str) -> Vec<FindingKind> {
    report
        .findings
        .iter()
        .filter(|f| f.subject == subject)
        .map(|f| f.kind)
        .collect()
}

/// Runs `sql` on the stack's shop database: the states the saga itself
/// never leaves behind, made by hand.
async fn execute(stack: &Stack, sql: &str, args: &[&str]) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&stack.database_url)
        .await?;
    let mut query = sqlx::query(sql);
    for a in args {
        query = query.bind(*a);
    }
    query.execute(&pool).await?;
    pool.close().await;
    Ok(())
}

/// An order stored `PENDING` straight in the shop database, with no saga:
/// what a lost or deleted workflow leaves behind.
async fn stored_without_a_saga(
    stack: &Stack,
    sku: &Sku,
    customer: &str,
) -> anyhow::Result<OrderInput> {
    let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
    let currency = Currency::parse("EUR")?;
    let eur = |minor| Money::new(minor, currency);
    let order = OrderInput {
        order_id,
        transaction_id: TransactionId::for_order(&order_id),
        customer_id: CustomerId::parse(customer)?,
        lines: vec![OrderLine {
            sku: sku.clone(),
            quantity: 1,
            unit_price: eur(1_000),
        }],
        total: eur(1_000),
        customer_email: None,
        shipping_address: None,
        payment: Default::default(),
    };
    stack.store.orders().place(&order, &[]).await?;
    Ok(order)
}

/// A Prometheus sample's value, 0 when absent.
fn sample(body: &str, prefix: &str) -> f64 {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn the_worker_creates_one_reconciler_schedule_and_keeps_it_to_its_settings()
-> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    stack.start_worker(WorkerSettings {
        reconcile_every: Some(Duration::from_secs(300)),
        ..WorkerSettings::default()
    })?;
    let handle = stack.client.get_schedule_handle(RECONCILE_SCHEDULE_ID);
    let interval = || async {
        let d = handle.describe(Default::default()).await?;
        let ScheduleDescriptionAction::StartWorkflow(action) = d.action() else {
            anyhow::bail!("the schedule starts no workflow");
        };
        let secs = d
            .raw()
            .schedule
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.interval.first())
            .and_then(|i| i.interval.as_ref())
            .map(|i| i.seconds);
        anyhow::Ok((
            action.workflow_type().to_string(),
            action.task_queue().to_string(),
            secs,
        ))
    };
    let created = eventually("the reconciler schedule", WAIT, || async {
        Ok(interval().await.ok())
    })
    .await?;
    assert_eq!(
        created,
        (
            RECONCILE_WORKFLOW_TYPE.to_string(),
            RECONCILER_TASK_QUEUE.to_string(),
            Some(300)
        )
    );

    // Another worker with another interval: the schedule exists already, so
    // it is updated, not duplicated, and the worker starts.
    stack.start_worker(WorkerSettings {
        reconcile_every: Some(Duration::from_secs(60)),
        ..WorkerSettings::default()
    })?;
    eventually("the schedule at the new interval", WAIT, || async {
        Ok(interval()
            .await
            .ok()
            .filter(|(_, _, secs)| *secs == Some(60)))
    })
    .await?;
    // The update goes through the same path, so the worker is serving.
    let sku = stack.product("SCHED-1", 1_000, 1).await?;
    let placed = stack
        .grpc
        .place_order(place_request("sched", &[(sku.as_str(), 1)], ""))
        .await?
        .into_inner();
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    Ok(())
}

/// A PENDING order with no workflow, a FAILED order that kept its capture,
/// and an outbox message nobody relays: each flagged once (a log line, a
/// metric, an open finding), and cleared once it is put right.
#[tokio::test]
async fn a_run_flags_what_no_workflow_will_finish_and_clears_it_once_resolved() -> anyhow::Result<()>
{
    let mut stack = Stack::builder().without_worker().start().await?;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    // Orders only: no relay takes the stuck outbox row back.
    stack.start_worker(WorkerSettings {
        queues: vec![Queue::Orders],
        metrics_addr: Some(addr),
        reconcile_every: None,
        ..WorkerSettings::default()
    })?;
    let sku = stack.product("REC-1", 1_000, 10).await?;

    // 1. Stored PENDING, but no workflow was ever started for it.
    let orphan = stored_without_a_saga(&stack, &sku, "orphan")
        .await?
        .order_id;

    // 2. Confirmed and captured, then failed behind the saga's back.
    let placed = stack
        .grpc
        .place_order(place_request("kept", &[(sku.as_str(), 1)], ""))
        .await?
        .into_inner();
    let kept = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(kept.status, pb::OrderStatus::Confirmed as i32);
    execute(
        &stack,
        "UPDATE orders SET status = 'FAILED' WHERE order_id = $1",
        &[&placed.order_id],
    )
    .await?;

    // 3. Claimed by a relay slot that died, its lease long over.
    execute(
        &stack,
        "INSERT INTO outbox (message_key, topic, payload, status, attempts, available_at, \
         claimed_by, lease_until, created_at, updated_at) \
         VALUES ('stuck-1', 'email', '{}', 'PENDING', 1, 0, 'dead-slot', 1, 0, 0)",
        &[],
    )
    .await?;

    let first = reconcile(&stack, "1").await?;
    assert_eq!(
        kinds_of(&first, &orphan.to_string()),
        [FindingKind::PendingWorkflowMissing]
    );
    assert_eq!(
        kinds_of(&first, &placed.order_id),
        [FindingKind::CapturedNotRefunded]
    );
    assert_eq!(kinds_of(&first, "stuck-1"), [FindingKind::OutboxStuck]);
    assert_eq!((first.flagged, first.repaired), (3, 0), "{first:?}");
    let open = stack.store.findings().open_findings().await?;
    assert_eq!(open.len(), 3, "{open:?}");
    let of_kept = stack
        .store
        .findings()
        .of_order(&OrderId::parse(&placed.order_id)?)
        .await?;
    assert!(of_kept[0].open && of_kept[0].finding.kind == FindingKind::CapturedNotRefunded);

    // Both orders are in the needs-attention list, with the finding as
    // the reason.
    let listed: serde_json::Value = stack
        .http
        .get(format!(
            "{}/v1/orders?needs_attention=true",
            stack.http_base
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut listed: Vec<(String, String)> = listed["orders"]
        .as_array()
        .context("orders")?
        .iter()
        .map(|o| {
            (
                o["order_id"].as_str().unwrap_or_default().to_string(),
                o["attention"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    listed.sort();
    let mut expected = vec![
        (orphan.to_string(), "PENDING_WORKFLOW_MISSING".to_string()),
        (placed.order_id.clone(), "CAPTURED_NOT_REFUNDED".to_string()),
    ];
    expected.sort();
    assert_eq!(
        listed
            .iter()
            .map(|(id, why)| (id.clone(), why.split(':').next().unwrap_or("").to_string()))
            .collect::<Vec<_>>(),
        expected
    );

    // Seen again: still open, counted once.
    let second = reconcile(&stack, "2").await?;
    assert_eq!((second.flagged, second.cleared), (3, 0), "{second:?}");
    let url = format!("http://{addr}/metrics");
    let body = eventually("the reconciler's metrics", WAIT, || async {
        let body = reqwest::get(&url).await?.text().await?;
        Ok((sample(&body, "ordersaga_reconciler_open_findings") == 3.0).then_some(body))
    })
    .await?;
    for kind in [
        "PENDING_WORKFLOW_MISSING",
        "CAPTURED_NOT_REFUNDED",
        "OUTBOX_STUCK",
    ] {
        let prefix = format!("ordersaga_reconciler_findings{{kind=\"{kind}\"");
        assert_eq!(sample(&body, &prefix), 1.0, "{kind}:\n{body}");
    }

    // The message is delivered after all: the next run resolves its finding.
    execute(
        &stack,
        "UPDATE outbox SET status = 'DONE' WHERE message_key = 'stuck-1'",
        &[],
    )
    .await?;
    let third = reconcile(&stack, "3").await?;
    assert_eq!((third.flagged, third.cleared), (2, 1), "{third:?}");
    let open = stack.store.findings().open_findings().await?;
    assert!(
        open.iter().all(|r| r.finding.subject != "stuck-1"),
        "{open:?}"
    );
    Ok(())
}

/// A checkout order whose workflow was terminated while the buyer had not
/// paid yet: flagged while PENDING; once failed, the run asks the gateway,
/// finds the order approved (the buyer paid late) and voids it, so nobody
/// can capture money for a failed order.
#[tokio::test]
async fn a_run_voids_an_approved_checkout_left_behind_by_a_failed_order() -> anyhow::Result<()> {
    let stack = Stack::builder()
        .checkout(CheckoutTiming {
            deadline_secs: 600,
            poll_secs: 600,
        })
        .start()
        .await?;
    let sku = stack.product("REC-2", 1_250, 5).await?;
    let placed = stack
        .grpc
        .clone()
        .place_order(place_request("late", &[(sku.as_str(), 1)], ""))
        .await?
        .into_inner();
    anyhow::ensure!(!placed.approval_url.is_empty(), "no approval link");
    stack
        .client
        .get_workflow_handle::<UntypedWorkflow>(placed.workflow_id.clone())
        .terminate(WorkflowTerminateOptions::builder().reason("test").build())
        .await?;
    let sandbox = stack.sandbox()?;
    sandbox.approve(&placed.approval_url).await?;
    assert_eq!(
        sandbox.order_status(&placed.approval_url).await?,
        GatewayStatus::Approved
    );

    let first = reconcile(&stack, "1").await?;
    assert_eq!(
        kinds_of(&first, &placed.order_id),
        [FindingKind::PendingWorkflowClosed]
    );

    // An operator fails it (the order's saga is gone).
    let order_id = OrderId::parse(&placed.order_id)?;
    let reason = FailureReason::Cancelled {
        message: "closed by an operator".into(),
    };
    stack.store.orders().fail(&order_id, &reason, &[]).await?;
    // And one the gateway has never heard of: its refusal (404) is flagged
    // for an operator, and the run goes on.
    let unknown = stored_without_a_saga(&stack, &sku, "ghost").await?;
    let link = PaymentLink {
        gateway_order_id: "UNKNOWN-TO-THE-GATEWAY".to_string(),
        approval_url: "http://gw.test/checkoutnow?token=UNKNOWN-TO-THE-GATEWAY".to_string(),
    };
    stack
        .store
        .payments()
        .open_checkout(
            &unknown.order_id,
            &unknown.transaction_id,
            unknown.total,
            &link,
            &[],
        )
        .await?;
    stack
        .store
        .orders()
        .fail(&unknown.order_id, &reason, &[])
        .await?;
    let second = reconcile(&stack, "2").await?;
    assert_eq!(
        kinds_of(&second, &placed.order_id),
        [FindingKind::CheckoutNotSettled]
    );
    assert_eq!(
        (second.repaired, second.flagged, second.cleared),
        (1, 1, 1),
        "{second:?}"
    );
    let flagged = stack.store.findings().of_order(&unknown.order_id).await?;
    assert!(
        flagged.len() == 1
            && flagged[0].open
            && flagged[0].finding.detail.contains("the gateway refused"),
        "{flagged:?}"
    );
    assert_eq!(
        sandbox.order_status(&placed.approval_url).await?,
        GatewayStatus::Voided
    );
    assert_eq!(sandbox.counts(&placed.transaction_id).await?.captures, 0);
    let record = stack
        .store
        .orders()
        .get(&order_id)
        .await?
        .context("order")?;
    assert_eq!(
        record.payment.map(|p| p.status),
        Some(PaymentStatus::Voided)
    );
    // Repaired: nothing left open about it.
    let third = reconcile(&stack, "3").await?;
    assert!(kinds_of(&third, &placed.order_id).is_empty(), "{third:?}");
    let open = stack.store.findings().open_findings().await?;
    assert_eq!(
        open.iter().map(|r| r.finding.order_id).collect::<Vec<_>>(),
        [Some(unknown.order_id)]
    );
    Ok(())
}
