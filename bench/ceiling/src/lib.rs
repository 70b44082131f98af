//! The Rust ceiling of the peer benchmark: the contract of
//! `shared/bench/peer-python/saga_defs.py` (`OrderSaga`, `NoopWorkflow`,
//! `SingleActivityWorkflow` and their trivial activities) written with our
//! SDK, so `bench.py` drives the Python peer and this worker on identical
//! terms.
//!
//! It owns nothing of the shop: no database, no gateway. What it measures is
//! the cost of the SDK and the server for the saga's *shape* (four regular
//! activities on the happy path), the upper bound for ordersaga's own
//! worker. Every name and payload here mirrors `saga_defs.py`; change both
//! or neither, else the state transitions per workflow differ and the
//! comparison is void.

#![allow(missing_docs)] // #[activities] and #[workflow] generate undocumented items

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use temporalio_common::RetryPolicy;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityOptions, ApplicationFailure, WorkflowContext, WorkflowResult};

/// The saga's input: `{"order_id", "amount", "fail_at": "" | "payment" | "inventory"}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Order {
    pub order_id: String,
    pub amount: i64,
    #[serde(default)]
    pub fail_at: String,
}

/// The saga's result; it returns `FAILED`, it does not fail.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SagaResult {
    pub order_id: String,
    pub status: String,
    pub steps: Vec<String>,
}

/// `ACT_OPTS` of `saga_defs.py`: start-to-close 30 s, 3 attempts, 100 ms.
fn act_opts() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .retry_policy(
            RetryPolicy::builder()
                .maximum_attempts(3)
                .initial_interval(Duration::from_millis(100))
                .build(),
        )
        .build()
}

fn declined(message: &str, type_name: &str) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(message.to_string())
            .type_name(type_name.to_string())
            .non_retryable(true)
            .build(),
    )
}

/// The contract's activities: trivial work, small JSON objects in and out.
pub struct SagaActivities;

#[activities]
impl SagaActivities {
    #[activity(name = "place_order")]
    pub async fn place_order(_ctx: ActivityContext, order: Order) -> Result<Value, ActivityError> {
        Ok(json!({"order_id": order.order_id, "reserved": true}))
    }

    #[activity(name = "process_payment")]
    pub async fn process_payment(
        _ctx: ActivityContext,
        order: Order,
    ) -> Result<Value, ActivityError> {
        if order.fail_at == "payment" {
            return Err(declined("card declined", "PaymentDeclined"));
        }
        Ok(json!({
            "order_id": order.order_id,
            "payment_id": format!("pay-{}", order.order_id),
            "amount": order.amount,
        }))
    }

    #[activity(name = "process_inventory")]
    pub async fn process_inventory(
        _ctx: ActivityContext,
        order: Order,
    ) -> Result<Value, ActivityError> {
        if order.fail_at == "inventory" {
            return Err(declined("out of stock", "OutOfStock"));
        }
        Ok(json!({"order_id": order.order_id, "picked": true}))
    }

    #[activity(name = "confirm_order")]
    pub async fn confirm_order(
        _ctx: ActivityContext,
        order: Order,
    ) -> Result<Value, ActivityError> {
        Ok(json!({"order_id": order.order_id, "status": "CONFIRMED"}))
    }

    #[activity(name = "refund_payment")]
    pub async fn refund_payment(
        _ctx: ActivityContext,
        order: Order,
    ) -> Result<Value, ActivityError> {
        Ok(json!({"order_id": order.order_id, "refunded": true}))
    }

    #[activity(name = "release_stock")]
    pub async fn release_stock(
        _ctx: ActivityContext,
        order: Order,
    ) -> Result<Value, ActivityError> {
        Ok(json!({"order_id": order.order_id, "released": true}))
    }

    #[activity(name = "fail_order")]
    pub async fn fail_order(_ctx: ActivityContext, order: Order) -> Result<Value, ActivityError> {
        Ok(json!({"order_id": order.order_id, "status": "FAILED"}))
    }

    #[activity(name = "noop")]
    pub async fn noop(_ctx: ActivityContext, x: Value) -> Result<Value, ActivityError> {
        Ok(x)
    }
}

/// `OrderSaga`: four steps forward; on any activity failure, refund,
/// release and fail (the compensations of `saga_defs.py`, unconditionally).
#[workflow]
#[derive(Default)]
pub struct OrderSaga;

#[workflow_methods]
impl OrderSaga {
    #[run(name = "OrderSaga")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, order: Order) -> WorkflowResult<SagaResult> {
        let mut steps = Vec::new();
        let forward = async {
            ctx.execute_activity(SagaActivities::place_order, order.clone(), act_opts())
                .await?;
            steps.push("placed");
            ctx.execute_activity(SagaActivities::process_payment, order.clone(), act_opts())
                .await?;
            steps.push("paid");
            ctx.execute_activity(SagaActivities::process_inventory, order.clone(), act_opts())
                .await?;
            steps.push("picked");
            ctx.execute_activity(SagaActivities::confirm_order, order.clone(), act_opts())
                .await?;
            steps.push("confirmed");
            Ok::<(), temporalio_sdk::ActivityExecutionError>(())
        };
        let status = if forward.await.is_ok() {
            "CONFIRMED"
        } else {
            // The peer compensates unconditionally; a failing compensation
            // fails the workflow there too.
            ctx.execute_activity(SagaActivities::refund_payment, order.clone(), act_opts())
                .await?;
            steps.push("refunded");
            ctx.execute_activity(SagaActivities::release_stock, order.clone(), act_opts())
                .await?;
            steps.push("released");
            ctx.execute_activity(SagaActivities::fail_order, order.clone(), act_opts())
                .await?;
            steps.push("failed");
            "FAILED"
        };
        Ok(SagaResult {
            order_id: order.order_id,
            status: status.to_string(),
            steps: steps.into_iter().map(str::to_string).collect(),
        })
    }
}

/// `NoopWorkflow`: no activities (the server's ceiling).
#[workflow]
#[derive(Default)]
pub struct NoopWorkflow;

#[workflow_methods]
impl NoopWorkflow {
    #[run(name = "NoopWorkflow")]
    pub async fn run(_ctx: &mut WorkflowContext<Self>, x: Value) -> WorkflowResult<Value> {
        Ok(x)
    }
}

/// `SingleActivityWorkflow`: one no-op activity.
#[workflow]
#[derive(Default)]
pub struct SingleActivityWorkflow;

#[workflow_methods]
impl SingleActivityWorkflow {
    #[run(name = "SingleActivityWorkflow")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, x: Value) -> WorkflowResult<Value> {
        Ok(ctx
            .execute_activity(SagaActivities::noop, x, act_opts())
            .await?)
    }
}
