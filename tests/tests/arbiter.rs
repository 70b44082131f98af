//! The shop database is the arbiter of an order's fate (issue 11, defect 0):
//! a saga whose order the database already failed (a cancel whose workflow
//! task was lost after its `FailOrder` committed) gives back what it took
//! and ends FAILED with the stored reason, and `CancelOrder` asks the saga,
//! not the database; a Temporal cancel during a database step waits for
//! the step, so the compensation sees its effect (defect 3). End to end, on
//! a real dev server, worker and API.

use std::time::Duration;

use ordersaga_domain::{FailureReason, OrderId, TransactionId};
use ordersaga_proto::v1 as pb;
use ordersaga_tests::{Stack, TestDatabase, eventually, place_request};
use ordersaga_worker::WorkerSettings;
use temporalio_client::{
    UntypedWorkflow, WorkflowCancelOptions, WorkflowFetchHistoryOptions, WorkflowGetResultOptions,
};
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;

const SAGA_TIMEOUT: Duration = Duration::from_secs(30);

/// (charge requests, captures, refunds) the gateway booked for a payment.
async fn gateway_counts(stack: &Stack, transaction_id: &str) -> anyhow::Result<(i64, i64, i64)> {
    let txn = TransactionId::parse(transaction_id)?;
    Ok(stack
        .gateway
        .ledger(&txn)
        .await?
        .map_or((0, 0, 0), |l| (l.charge_requests, l.captures, l.refunds)))
}

/// Places an order of `quantity` MUG-1 with a worker process that dies
/// right after `step` committed, before Temporal hears of it (the window
/// recovery must cover); returns once it has died.
async fn placed_by_a_worker_dying_after(
    stack: &Stack,
    step: &str,
    customer: &str,
    quantity: i64,
) -> anyhow::Result<pb::PlaceOrderResponse> {
    let mut doomed = stack.spawn_worker_process(&[
        ("ORDERSAGA_CRASH_AFTER", step),
        ("ORDERSAGA_STICKY_TIMEOUT_MS", "1000"),
    ])?;
    let placed = stack
        .grpc
        .clone()
        .place_order(place_request(customer, &[("MUG-1", quantity)], ""))
        .await?
        .into_inner();
    let status = tokio::time::timeout(SAGA_TIMEOUT, doomed.wait()).await??;
    anyhow::ensure!(!status.success(), "the worker crashed after {step}");
    Ok(placed)
}

/// What a lost cancel left behind: its `FailOrder` committed.
async fn fail_behind_the_sagas_back(stack: &Stack, order_id: &str) -> anyhow::Result<()> {
    let reason = FailureReason::Cancelled {
        message: "lost with its workflow task".into(),
    };
    stack
        .store
        .orders()
        .fail(&OrderId::parse(order_id)?, &reason, &[])
        .await?;
    Ok(())
}

/// The reproduction of the issue without timing luck: the worker dies right
/// after the deduction committed (money captured, stock taken), the order
/// is failed in the database as the lost cancel did, and a new worker
/// replays the saga without that cancel. Before the fix `ConfirmOrder`
/// changed nothing and the saga completed CONFIRMED, keeping the money and
/// the stock of a FAILED order.
#[tokio::test]
async fn a_saga_whose_order_the_database_failed_refunds_releases_and_ends_failed()
-> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    let mug = stack.product("MUG-1", 1_000, 10).await?;
    let placed = placed_by_a_worker_dying_after(&stack, "ProcessInventory", "rita", 3).await?;
    assert_eq!(stack.on_hand(&mug).await?, 7);
    assert_eq!(gateway_counts(&stack, &placed.transaction_id).await?.1, 1);
    fail_behind_the_sagas_back(&stack, &placed.order_id).await?;

    stack.start_worker(WorkerSettings::default())?;
    // The order was FAILED by hand before, so its status says nothing of
    // the unwinding: wait for the refund and then the release (money first).
    let refunded = eventually("the refund and the release", SAGA_TIMEOUT, || async {
        let order = stack.terminal_order(&placed.order_id).await?;
        let refunded = order.payment_status == pb::PaymentStatus::Refunded as i32;
        Ok((refunded && stack.on_hand(&mug).await? == 10).then_some(order))
    })
    .await?;
    assert_eq!(refunded.status, pb::OrderStatus::Failed as i32);
    assert_eq!(refunded.failure_code, "CANCELLED");
    let (_, captures, refunds) = gateway_counts(&stack, &placed.transaction_id).await?;
    assert_eq!((captures, refunds), (1, 1), "the money went back once");
    assert_eq!(stack.on_hand(&mug).await?, 10, "the stock came back");
    assert_eq!(stack.store.stock().ledger_balance(&mug).await?, 10);
    let handle = stack
        .client
        .get_workflow_handle::<UntypedWorkflow>(placed.workflow_id.clone());
    assert!(
        handle
            .get_result(WorkflowGetResultOptions::default())
            .await
            .is_err(),
        "a cancelled order's saga ends cancelled"
    );
    assert_eq!(
        stack.order_status_attribute(&placed.workflow_id).await?,
        "FAILED"
    );
    stack
        .replay_check(&placed.workflow_id, "charge-refused-after-lost-task")
        .await?;
    stack.stop_workers()
}

/// The mirror image (found by the chaos suite: 7 orders CONFIRMED and
/// refunded in 1,000): the workflow task that committed `ConfirmOrder` is
/// lost (here: the worker dies right after the commit), and the retried
/// task accepts a `CancelOrder` that arrived meanwhile. The database says
/// CONFIRMED, and a confirmed order is final: the confirmation stands, no
/// refund, no release. Before the fix the saga refunded a confirmed order
/// and kept its stock deducted.
#[tokio::test]
async fn a_cancel_accepted_after_a_lost_confirmation_leaves_the_order_confirmed()
-> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    let mug = stack.product("MUG-1", 1_000, 10).await?;
    let placed = placed_by_a_worker_dying_after(&stack, "ConfirmOrder", "tove", 2).await?;
    let order_id = OrderId::parse(&placed.order_id)?;
    let stored = stack.store.orders().get(&order_id).await?;
    assert_eq!(
        stored.map(|o| o.summary.status),
        Some(ordersaga_domain::OrderStatus::Confirmed)
    );

    // The cancel reaches the saga with the retried task.
    let mut grpc = stack.grpc.clone();
    let cancel_id = placed.order_id.clone();
    let cancel = tokio::spawn(async move {
        grpc.cancel_order(pb::CancelOrderRequest {
            order_id: cancel_id,
            reason: "changed my mind".into(),
        })
        .await
    });
    stack.start_worker(WorkerSettings::default())?;
    let _ = tokio::time::timeout(SAGA_TIMEOUT, cancel).await?;
    let outcome = tokio::time::timeout(
        SAGA_TIMEOUT,
        stack
            .client
            .get_workflow_handle::<ordersaga_workflows::OrderWorkflow>(placed.workflow_id.clone())
            .get_result(WorkflowGetResultOptions::default()),
    )
    .await??;
    assert_eq!(outcome.status, ordersaga_domain::OrderStatus::Confirmed);
    let (_, captures, refunds) = gateway_counts(&stack, &placed.transaction_id).await?;
    assert_eq!(
        (captures, refunds),
        (1, 0),
        "a confirmed order keeps its payment"
    );
    assert_eq!(
        stack.on_hand(&mug).await?,
        8,
        "and its stock stays deducted"
    );
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    assert_eq!(order.payment_status, pb::PaymentStatus::Captured as i32);
    assert_eq!(
        stack.order_status_attribute(&placed.workflow_id).await?,
        "CONFIRMED"
    );
    stack
        .replay_check(&placed.workflow_id, "confirmation-stands-after-lost-task")
        .await?;
    stack.stop_workers()
}

/// A client retrying a cancel whose first attempt was lost: the database
/// already says FAILED, but the saga runs on and still holds the money.
/// Before the fix the API answered 409 from the database.
#[tokio::test]
async fn cancel_asks_the_saga_even_when_the_database_says_failed() -> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    let mug = stack.product("MUG-1", 1_000, 10).await?;
    // The charge runs in the saga's first workflow task (`local-charge-v1`);
    // slower than that task's heartbeat (8 s), it lets the cancel reach the
    // saga while it runs. (Sent during a fast first task, the cancel would
    // find the saga already unwinding and be refused; the order still ends
    // FAILED and refunded.)
    stack.start_worker(WorkerSettings {
        gateway_latency: Duration::from_secs(12),
        ..Default::default()
    })?;
    let placed = stack
        .grpc
        .place_order(place_request("sven", &[("MUG-1", 1)], ""))
        .await?
        .into_inner();
    let txn = placed.transaction_id.clone();
    eventually("the capture at the gateway", SAGA_TIMEOUT, || async {
        Ok((gateway_counts(&stack, &txn).await?.1 == 1).then_some(()))
    })
    .await?;
    fail_behind_the_sagas_back(&stack, &placed.order_id).await?;

    let accepted = stack
        .grpc
        .cancel_order(pb::CancelOrderRequest {
            order_id: placed.order_id.clone(),
            reason: "retrying my cancel".into(),
        })
        .await?
        .into_inner();
    assert_eq!(accepted.status, pb::OrderStatus::Pending as i32);

    let refunded = eventually("the refund", SAGA_TIMEOUT, || async {
        let order = stack.terminal_order(&placed.order_id).await?;
        Ok((order.payment_status == pb::PaymentStatus::Refunded as i32).then_some(order))
    })
    .await?;
    assert_eq!(refunded.status, pb::OrderStatus::Failed as i32);
    assert_eq!(refunded.failure_code, "CANCELLED");
    assert_eq!(gateway_counts(&stack, &txn).await?.2, 1, "one refund");
    assert_eq!(stack.on_hand(&mug).await?, 10);
    let handle = stack
        .client
        .get_workflow_handle::<UntypedWorkflow>(placed.workflow_id.clone());
    let ended = handle.get_result(WorkflowGetResultOptions::default()).await;
    assert!(ended.is_err(), "a cancelled order's saga ends cancelled");
    assert_eq!(
        stack.order_status_attribute(&placed.workflow_id).await?,
        "FAILED"
    );
    stack
        .replay_check(&placed.workflow_id, "cancel-update-durable-local-charge")
        .await?;
    stack.stop_workers()
}

/// Sessions of this database waiting for a lock.
async fn blocked_sessions(pool: &sqlx::AnyPool) -> anyhow::Result<i64> {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(pool)
    .await?;
    Ok(row.try_get("n")?)
}

/// Whether the worker has completed a workflow task that began after the
/// cancel request: the saga has acted on the cancel (or is past it).
async fn cancel_handled(stack: &Stack, workflow_id: &str) -> anyhow::Result<bool> {
    let events = stack
        .client
        .get_workflow_handle::<UntypedWorkflow>(workflow_id.to_string())
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .into_events()
        .await?;
    let mut requested = false;
    let mut started_after = false;
    for e in events {
        match e.attributes {
            Some(Attributes::WorkflowExecutionCancelRequestedEventAttributes(_)) => {
                requested = true;
            }
            Some(Attributes::WorkflowTaskStartedEventAttributes(_)) if requested => {
                started_after = true;
            }
            Some(Attributes::WorkflowTaskCompletedEventAttributes(_)) if started_after => {
                return Ok(true);
            }
            _ => {}
        }
    }
    Ok(false)
}

/// Defect 3, as the issue reproduces it on PostgreSQL: the product row is
/// locked, so `ProcessInventory`'s transaction waits inside the database
/// when the workflow is cancelled. Before the fix the local activity was
/// resolved cancelled at once, the release found nothing to release, and
/// the deduction committed afterwards for a FAILED order.
#[tokio::test]
async fn a_cancel_during_the_deduction_waits_for_it_and_releases_what_it_took() -> anyhow::Result<()>
{
    let db = TestDatabase::postgres().await?;
    let url = db.url().to_string();
    let mut stack = Stack::builder()
        .database(db)
        .without_worker()
        .start()
        .await?;
    let mug = stack.product("MUG-1", 1_000, 10).await?;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await?;
    let mut lock = pool.begin().await?;
    sqlx::query("SELECT on_hand FROM products WHERE sku = $1 FOR UPDATE")
        .bind(mug.as_str())
        .fetch_one(&mut *lock)
        .await?;

    stack.start_worker(WorkerSettings::default())?;
    let placed = stack
        .grpc
        .place_order(place_request("tove", &[("MUG-1", 2)], ""))
        .await?
        .into_inner();
    eventually(
        "the deduction waiting on the lock",
        SAGA_TIMEOUT,
        || async { Ok((blocked_sessions(&pool).await? > 0).then_some(())) },
    )
    .await?;
    let handle = stack
        .client
        .get_workflow_handle::<UntypedWorkflow>(placed.workflow_id.clone());
    handle
        .cancel(WorkflowCancelOptions::builder().reason("ops").build())
        .await?;
    // The worker holds a task open for at most ~8 s around a running local
    // activity; two of them may pass before the saga gets to the cancel.
    eventually("the saga handling the cancel", 3 * SAGA_TIMEOUT, || async {
        Ok(cancel_handled(&stack, &placed.workflow_id)
            .await?
            .then_some(()))
    })
    .await?;
    lock.rollback().await?;

    let ended = handle.get_result(WorkflowGetResultOptions::default()).await;
    assert!(ended.is_err(), "the saga ends cancelled");
    eventually("the deduction decided", SAGA_TIMEOUT, || async {
        Ok((blocked_sessions(&pool).await? == 0).then_some(()))
    })
    .await?;
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Failed as i32);
    assert_eq!(order.failure_code, "CANCELLED");
    assert_eq!(
        stack.on_hand(&mug).await?,
        10,
        "nothing kept for a FAILED order"
    );
    assert_eq!(stack.store.stock().ledger_balance(&mug).await?, 10);
    let (_, captures, refunds) = gateway_counts(&stack, &placed.transaction_id).await?;
    assert_eq!((captures, refunds), (1, 1));
    stack.stop_workers()
}

/// Issue 11, defect 1: compensations settle the money first and a database
/// compensation that fails keeps retrying until it finishes. The release's
/// write is refused by a trigger (a database fault the step cannot tell
/// from an outage) until the test drops it. Before the fix the release ran
/// first, so the refund waited behind the stuck release while the money
/// stayed captured.
#[tokio::test]
async fn the_money_goes_back_first_and_a_failing_release_retries_until_it_lands()
-> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    let mug = stack.product("MUG-1", 1_000, 10).await?;
    let mut doomed = stack.spawn_worker_process(&[
        ("ORDERSAGA_CRASH_AFTER", "ProcessInventory"),
        ("ORDERSAGA_STICKY_TIMEOUT_MS", "1000"),
    ])?;
    let placed = stack
        .grpc
        .place_order(place_request("uma", &[("MUG-1", 3)], ""))
        .await?
        .into_inner();
    let status = tokio::time::timeout(SAGA_TIMEOUT, doomed.wait()).await??;
    assert!(!status.success(), "the worker crashed after the deduction");
    assert_eq!(stack.on_hand(&mug).await?, 7);
    fail_behind_the_sagas_back(&stack, &placed.order_id).await?;

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&stack.database_url).await?;
    sqlx::query(
        "CREATE TRIGGER release_fault BEFORE UPDATE ON inventory_deductions \
         WHEN NEW.status = 'RELEASED' \
         BEGIN SELECT RAISE(ABORT, 'injected fault: the release cannot write'); END",
    )
    .execute(&pool)
    .await?;
    stack.start_worker(WorkerSettings::default())?;
    let txn = placed.transaction_id.clone();
    eventually("the refund", SAGA_TIMEOUT, || async {
        Ok((gateway_counts(&stack, &txn).await?.2 == 1).then_some(()))
    })
    .await?;
    let order = eventually("the refund recorded", SAGA_TIMEOUT, || async {
        let order = stack.terminal_order(&placed.order_id).await?;
        Ok((order.payment_status == pb::PaymentStatus::Refunded as i32).then_some(order))
    })
    .await?;
    assert!(
        !order.events.iter().any(|e| e.name == "InventoryReleased"),
        "the release is still failing"
    );
    assert_eq!(
        stack.on_hand(&mug).await?,
        7,
        "the release is still failing"
    );

    sqlx::query("DROP TRIGGER release_fault")
        .execute(&pool)
        .await?;
    let handle = stack
        .client
        .get_workflow_handle::<UntypedWorkflow>(placed.workflow_id.clone());
    let ended = handle.get_result(WorkflowGetResultOptions::default()).await;
    assert!(ended.is_err(), "a cancelled order's saga ends cancelled");
    assert_eq!(stack.on_hand(&mug).await?, 10, "the stock came back");
    assert_eq!(stack.store.stock().ledger_balance(&mug).await?, 10);
    let (_, captures, refunds) = gateway_counts(&stack, &placed.transaction_id).await?;
    assert_eq!((captures, refunds), (1, 1));
    assert_eq!(
        stack.order_status_attribute(&placed.workflow_id).await?,
        "FAILED"
    );
    stack.stop_workers()
}
