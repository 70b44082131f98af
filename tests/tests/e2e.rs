//! End to end: real Temporal dev server, real worker and API, real gRPC and
//! HTTP. Each test has its own namespace on the binary's one dev server, its
//! own task queue and database.

use std::time::Duration;

use anyhow::Context;
use ordersaga_domain::{OrderId, OrderStatus, OrderView, TransactionId};
use ordersaga_proto::v1 as pb;
use ordersaga_tests::{Stack, eventually};
use ordersaga_worker::WorkerSettings;
use ordersaga_workflows::{OrderWorkflow, WORKFLOW_TASK_TIMEOUT};
use serde_json::{Value, json};
use temporalio_client::{
    UntypedWorkflow, WorkflowCancelOptions, WorkflowDescribeOptions, WorkflowGetResultOptions,
    WorkflowQueryOptions,
};
use temporalio_common::search_attributes::SearchAttributeKey;
use tonic::Code;

const SAGA_TIMEOUT: Duration = Duration::from_secs(20);

/// A valid shipping address, as the HTTP API takes it.
fn address_json() -> Value {
    json!({"name": "Test Customer", "line1": "1 Test Street", "city": "Berlin",
           "postal_code": "10115", "country": "DE"})
}

fn place(customer: &str, lines: &[(&str, i64)], key: &str) -> pb::PlaceOrderRequest {
    ordersaga_tests::place_request(customer, lines, key)
}

/// Polls `GET /v1/orders/{id}` until the order is terminal.
async fn terminal_http(stack: &Stack, order_id: &str) -> anyhow::Result<Value> {
    let url = format!("{}/v1/orders/{order_id}", stack.http_base);
    eventually("a terminal order", SAGA_TIMEOUT, || {
        let req = stack.http.get(&url);
        async move {
            let body: Value = req.send().await?.error_for_status()?.json().await?;
            let done = matches!(body["status"].as_str(), Some("CONFIRMED" | "FAILED"));
            Ok(done.then_some(body))
        }
    })
    .await
}

fn event_names(order: &pb::Order) -> Vec<&str> {
    order.events.iter().map(|e| e.name.as_str()).collect()
}

async fn gateway_counts(stack: &Stack, transaction_id: &str) -> anyhow::Result<(i64, i64, i64)> {
    let txn = TransactionId::parse(transaction_id)?;
    Ok(stack
        .gateway
        .ledger(&txn)
        .await?
        .map_or((0, 0, 0), |l| (l.charge_requests, l.captures, l.refunds)))
}

/// Waits until the gateway has booked the capture of this transaction.
async fn captured(stack: &Stack, transaction_id: &str) -> anyhow::Result<()> {
    eventually("the capture at the gateway", SAGA_TIMEOUT, || async move {
        Ok((gateway_counts(stack, transaction_id).await?.1 == 1).then_some(()))
    })
    .await
}

/// A simulated charge that outlasts the heartbeat of the saga's first
/// workflow task: the worker completes that task after 8 s (80% of its
/// 10 s timeout) with the charge still running, and the next task brings
/// what arrived meanwhile (a cancel). Faster charges run the whole forward
/// path in one task (`local-charge-v1`): a cancel sent during it is seen
/// when the order is already confirmed.
const SLOW_CHARGE: Duration = Duration::from_secs(12);

#[tokio::test]
async fn happy_path_confirms_deducts_stock_and_captures_once() -> anyhow::Result<()> {
    let mut stack = Stack::builder().start().await?;
    let mug = stack.product("MUG-1", 1_250, 10).await?;
    let tee = stack.product("TEE-1", 2_000, 5).await?;

    let placed = stack
        .grpc
        .place_order(place("alice", &[("MUG-1", 3), ("TEE-1", 1)], ""))
        .await?
        .into_inner();
    assert_eq!(placed.status, pb::OrderStatus::Pending as i32);
    let total = placed.total.clone().context("total")?;
    assert_eq!((total.minor_units, total.currency.as_str()), (5_750, "EUR"));
    let order_id = OrderId::parse(&placed.order_id)?;
    TransactionId::parse(&placed.transaction_id)?;
    assert_eq!(placed.workflow_id, format!("order-{order_id}"));

    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    assert_eq!(order.payment_status, pb::PaymentStatus::Captured as i32);
    assert_eq!(order.transaction_id, placed.transaction_id);
    assert_eq!(order.lines.len(), 2);
    assert_eq!(
        event_names(&order),
        [
            "OrderPlaced",
            "PaymentProcessed",
            "InventoryProcessed",
            "OrderConfirmed"
        ]
    );
    assert!(order.events.iter().all(|e| e.occurred_at.is_some()));
    assert_eq!(stack.on_hand(&mug).await?, 7);
    assert_eq!(stack.on_hand(&tee).await?, 4);
    assert_eq!(stack.store.stock().ledger_balance(&mug).await?, 7);
    assert_eq!(
        gateway_counts(&stack, &placed.transaction_id).await?,
        (1, 1, 0)
    );

    // The workflow's result, search attribute and live query agree.
    let handle = stack
        .client
        .get_workflow_handle::<OrderWorkflow>(placed.workflow_id.clone());
    let outcome = handle
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    assert_eq!(outcome.status, OrderStatus::Confirmed);
    let view: OrderView = handle
        .query(
            OrderWorkflow::get_status,
            (),
            WorkflowQueryOptions::default(),
        )
        .await?;
    assert_eq!(view.status, OrderStatus::Confirmed);
    let description = stack
        .client
        .get_workflow_handle::<UntypedWorkflow>(placed.workflow_id.clone())
        .describe(WorkflowDescribeOptions::default())
        .await?;
    let attrs = description.search_attributes();
    let keyword = |name| attrs.get(&SearchAttributeKey::<String>::keyword(name));
    assert_eq!(keyword("OrderStatus").as_deref(), Some("CONFIRMED"));
    assert_eq!(keyword("OrderId"), Some(order_id.to_string()));
    assert_eq!(keyword("CustomerId").as_deref(), Some("alice"));
    let summary = description.static_summary().context("UI summary")?;
    assert_eq!(
        summary,
        format!("Order {order_id}: 4 items, 57.50 EUR for alice")
    );
    // A task lost with its worker (or in transit) stalls the order for
    // this long, not the server's default 10 s.
    assert_eq!(
        stack.workflow_task_timeout(&placed.workflow_id).await?,
        WORKFLOW_TASK_TIMEOUT
    );
    stack
        .replay_check(&placed.workflow_id, "confirmed-local-charge")
        .await?;
    stack.stop_workers()
}

#[tokio::test]
async fn declined_payment_fails_the_order_and_touches_no_stock() -> anyhow::Result<()> {
    let stack = Stack::builder().start().await?;
    // 2500.00 EUR: inside the simulated gateway's declined range.
    let bar = stack.product("GOLD-BAR", 250_000, 3).await?;

    let res = stack
        .http
        .post(format!("{}/v1/orders", stack.http_base))
        .json(&json!({"customer_id": "bob", "customer_email": "bob@example.com", "shipping_address": address_json(), "lines": [{"sku": "GOLD-BAR", "quantity": 1}]}))
        .send()
        .await?;
    assert_eq!(res.status(), 202);
    assert!(res.headers().contains_key("location"));
    let placed: Value = res.json().await?;
    assert_eq!(placed["status"], "PENDING");
    let order_id = placed["order_id"].as_str().context("order_id")?;

    let order = terminal_http(&stack, order_id).await?;
    assert_eq!(order["status"], "FAILED");
    assert_eq!(order["failure_code"], "PAYMENT_DECLINED");
    assert_eq!(order["payment_status"], "DECLINED");
    let events: Vec<&str> = order["events"]
        .as_array()
        .context("events")?
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(
        events,
        ["OrderPlaced", "PaymentProcessFailed", "OrderFailed"]
    );
    assert_eq!(stack.on_hand(&bar).await?, 3);
    let txn = placed["transaction_id"]
        .as_str()
        .context("transaction_id")?;
    let (_, captures, refunds) = gateway_counts(&stack, txn).await?;
    assert_eq!((captures, refunds), (0, 0));
    let workflow_id = placed["workflow_id"].as_str().context("workflow_id")?;
    stack
        .replay_check(workflow_id, "payment-declined-local-charge")
        .await
}

#[tokio::test]
async fn out_of_stock_after_payment_refunds_and_fails() -> anyhow::Result<()> {
    let mut stack = Stack::builder().start().await?;
    let one = stack.product("LAST-ONE", 4_999, 1).await?;

    let placed = stack
        .grpc
        .place_order(place("carol", &[("LAST-ONE", 2)], ""))
        .await?
        .into_inner();
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Failed as i32);
    assert_eq!(order.failure_code, "OUT_OF_STOCK");
    assert!(
        order.failure_reason.contains("LAST-ONE"),
        "{}",
        order.failure_reason
    );
    assert_eq!(order.payment_status, pb::PaymentStatus::Refunded as i32);
    assert_eq!(
        event_names(&order),
        [
            "OrderPlaced",
            "PaymentProcessed",
            "InventoryProcessFailed",
            "PaymentRefunded",
            "OrderFailed"
        ]
    );
    assert_eq!(stack.on_hand(&one).await?, 1);
    assert_eq!(stack.store.stock().ledger_balance(&one).await?, 1);
    let (_, captures, refunds) = gateway_counts(&stack, &placed.transaction_id).await?;
    assert_eq!((captures, refunds), (1, 1));

    let outcome = stack
        .client
        .get_workflow_handle::<OrderWorkflow>(placed.workflow_id.clone())
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    assert!(outcome.refunded);
    stack
        .replay_check(&placed.workflow_id, "out-of-stock-refunded-local-charge")
        .await?;
    stack.stop_workers()
}

#[tokio::test]
async fn same_idempotency_key_gives_one_order() -> anyhow::Result<()> {
    let mut stack = Stack::builder().start().await?;
    stack.product("MUG-1", 1_000, 100).await?;
    let req = place("dave", &[("MUG-1", 1)], "checkout-7f3a");

    let first = stack.grpc.place_order(req.clone()).await?.into_inner();
    let again = stack.grpc.place_order(req.clone()).await?.into_inner();
    assert_eq!(first.order_id, again.order_id);
    assert_eq!(first.transaction_id, again.transaction_id);
    stack.terminal_order(&first.order_id).await?;

    // After completion, over HTTP with the header: still the same order,
    // and it reports the status it has now.
    let res = stack
        .http
        .post(format!("{}/v1/orders", stack.http_base))
        .header("Idempotency-Key", "checkout-7f3a")
        .json(&json!({"customer_id": "dave", "customer_email": "dave@example.com", "shipping_address": address_json(), "lines": [{"sku": "MUG-1", "quantity": 1}]}))
        .send()
        .await?;
    let third: Value = res.json().await?;
    assert_eq!(third["order_id"], first.order_id.as_str());
    assert_eq!(third["status"], "CONFIRMED");

    // The same key for a different order is refused, and changes nothing.
    let err = stack
        .grpc
        .place_order(place("dave", &[("MUG-1", 5)], "checkout-7f3a"))
        .await
        .err()
        .context("key reused for other lines")?;
    assert_eq!(err.code(), Code::FailedPrecondition);
    let res = stack
        .http
        .post(format!("{}/v1/orders", stack.http_base))
        .header("Idempotency-Key", "checkout-7f3a")
        .json(
            &json!({"customer_id": "dave", "customer_email": "dave@example.com",
                       "shipping_address": address_json(),
                       "lines": [{"sku": "MUG-1", "quantity": 5}]}),
        )
        .send()
        .await?;
    assert_eq!(res.status(), 409);
    assert_eq!(third["total"]["minor_units"], 1_000);

    let other = stack
        .grpc
        .place_order(place("dave", &[("MUG-1", 1)], "checkout-other"))
        .await?
        .into_inner();
    assert_ne!(other.order_id, first.order_id);
    stack.terminal_order(&other.order_id).await?;

    let listed = stack
        .grpc
        .list_orders(pb::ListOrdersRequest {
            customer_id: "dave".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(listed.orders.len(), 2);
    let mug = ordersaga_domain::Sku::parse("MUG-1")?;
    assert_eq!(stack.on_hand(&mug).await?, 98);
    stack.stop_workers()
}

#[tokio::test]
async fn bad_input_is_rejected_and_leaves_nothing_behind() -> anyhow::Result<()> {
    let mut stack = Stack::builder().start().await?;
    stack.product("MUG-1", 1_000, 10).await?;
    let mut grpc = stack.grpc.clone();

    let cases = [
        (place("erin", &[], ""), Code::InvalidArgument, "no lines"),
        (
            place("erin", &[("MUG-1", 0)], ""),
            Code::InvalidArgument,
            "quantity 0",
        ),
        (
            place("erin", &[("MUG-1", -2)], ""),
            Code::InvalidArgument,
            "negative quantity",
        ),
        (
            place("erin", &[("NOPE-1", 1)], ""),
            Code::NotFound,
            "unknown product",
        ),
        (
            place("erin", &[("bad sku!", 1)], ""),
            Code::InvalidArgument,
            "malformed sku",
        ),
        (
            place("", &[("MUG-1", 1)], ""),
            Code::InvalidArgument,
            "no customer",
        ),
        (
            place("a b", &[("MUG-1", 1)], ""),
            Code::InvalidArgument,
            "malformed customer",
        ),
        (
            place("erin", &[("MUG-1", 1)], &"k".repeat(200)),
            Code::InvalidArgument,
            "long key",
        ),
        (
            pb::PlaceOrderRequest {
                customer_email: String::new(),
                ..place("erin", &[("MUG-1", 1)], "")
            },
            Code::InvalidArgument,
            "no email",
        ),
        (
            pb::PlaceOrderRequest {
                customer_email: "erin@localhost".into(),
                ..place("erin", &[("MUG-1", 1)], "")
            },
            Code::InvalidArgument,
            "malformed email",
        ),
        (
            pb::PlaceOrderRequest {
                shipping_address: None,
                ..place("erin", &[("MUG-1", 1)], "")
            },
            Code::InvalidArgument,
            "no shipping address",
        ),
        (
            {
                let mut r = place("erin", &[("MUG-1", 1)], "");
                if let Some(a) = r.shipping_address.as_mut() {
                    a.country = "Germany".into();
                }
                r
            },
            Code::InvalidArgument,
            "bad country",
        ),
        (
            {
                let mut r = place("erin", &[("MUG-1", 1)], "");
                if let Some(a) = r.shipping_address.as_mut() {
                    a.city = "  ".into();
                }
                r
            },
            Code::InvalidArgument,
            "blank city",
        ),
    ];
    for (req, code, what) in cases {
        let err = grpc.place_order(req).await.err().context(what)?;
        assert_eq!(err.code(), code, "{what}: {}", err.message());
        assert!(!err.message().is_empty(), "{what}");
    }
    let too_big = place(&"x".repeat(100 * 1024), &[("MUG-1", 1)], "");
    let err = grpc.place_order(too_big).await.err().context("too big")?;
    assert_eq!(err.code(), Code::OutOfRange, "{}", err.message());

    let err = grpc
        .get_order(pb::GetOrderRequest {
            order_id: "not-a-uuid".into(),
        })
        .await
        .err()
        .context("malformed id")?;
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = grpc
        .get_order(pb::GetOrderRequest {
            order_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .err()
        .context("unknown id")?;
    assert_eq!(err.code(), Code::NotFound);
    let err = grpc
        .list_orders(pb::ListOrdersRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .err()
        .context("bad page token")?;
    assert_eq!(err.code(), Code::InvalidArgument);

    // HTTP: status and a JSON error body for each.
    let url = format!("{}/v1/orders", stack.http_base);
    let http_cases: [(reqwest::RequestBuilder, u16, &str); 9] =
        [
            (
                stack
                    .http
                    .post(&url)
                    .json(&json!({"customer_id": "erin", "customer_email": "erin@example.com", "shipping_address": address_json(), "lines": []})),
                400,
                "INVALID_ARGUMENT",
            ),
            (
                stack.http.post(&url).json(
                    &json!({"customer_id": "erin", "customer_email": "erin@example.com", "shipping_address": address_json(), "lines": [{"sku": "MUG-1", "quantity": 0}]}),
                ),
                400,
                "INVALID_ARGUMENT",
            ),
            (
                stack.http.post(&url).json(
                    &json!({"customer_id": "erin", "customer_email": "erin@example.com", "shipping_address": address_json(), "lines": [{"sku": "NOPE-1", "quantity": 1}]}),
                ),
                404,
                "NOT_FOUND",
            ),
            (
                stack
                    .http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body("{not json"),
                400,
                "INVALID_ARGUMENT",
            ),
            (
                stack
                    .http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(format!(
                        "{{\"customer_id\":\"{}\",\"lines\":[]}}",
                        "x".repeat(100 * 1024)
                    )),
                413,
                "PAYLOAD_TOO_LARGE",
            ),
            (
                stack.http.get(format!("{url}/not-a-uuid")),
                400,
                "INVALID_ARGUMENT",
            ),
            (
                stack.http.get(format!("{url}/{}", uuid::Uuid::new_v4())),
                404,
                "NOT_FOUND",
            ),
            (
                stack.http.post(&url).json(
                    &json!({"customer_id": "erin", "lines": [{"sku": "MUG-1", "quantity": 1}],
                            "shipping_address": address_json()}),
                ),
                400,
                "INVALID_ARGUMENT",
            ),
            (
                stack.http.post(&url).json(
                    &json!({"customer_id": "erin", "customer_email": "erin@example.com",
                            "lines": [{"sku": "MUG-1", "quantity": 1}],
                            "shipping_address": {"name": "E", "line1": "1 St", "city": "X",
                                                 "postal_code": "1;2", "country": "DE"}}),
                ),
                400,
                "INVALID_ARGUMENT",
            ),
        ];
    for (req, status, code) in http_cases {
        let res = req.send().await?;
        assert_eq!(res.status().as_u16(), status);
        let body: Value = res.json().await?;
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let res = stack
        .http
        .get(format!("{url}?status=SHIPPED"))
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 400);

    // Nothing stored, nothing started: after one good order, the store and
    // Temporal's visibility know exactly that one.
    let good = grpc
        .place_order(place("erin", &[("MUG-1", 1)], ""))
        .await?
        .into_inner();
    stack.terminal_order(&good.order_id).await?;
    let (all, _) = stack.store.orders().list(&Default::default()).await?;
    assert_eq!(all.len(), 1);
    let query = format!("TaskQueue = '{}'", stack.task_queue);
    let count = eventually("visibility to catch up", SAGA_TIMEOUT, || {
        let client = stack.client.clone();
        let query = query.clone();
        async move {
            let n = client
                .count_workflows(query, Default::default())
                .await?
                .count();
            Ok((n >= 1).then_some(n))
        }
    })
    .await?;
    assert_eq!(count, 1);
    stack.stop_workers()
}

#[tokio::test]
async fn list_orders_filters_and_pages() -> anyhow::Result<()> {
    let mut stack = Stack::builder().start().await?;
    stack.product("MUG-1", 1_000, 100).await?;
    stack.product("GOLD-BAR", 250_000, 100).await?;
    let mut ids = Vec::new();
    for sku in ["MUG-1", "MUG-1", "GOLD-BAR"] {
        let placed = stack
            .grpc
            .place_order(place("frank", &[(sku, 1)], ""))
            .await?
            .into_inner();
        stack.terminal_order(&placed.order_id).await?;
        ids.push(placed.order_id);
    }
    let failed: Value = stack
        .http
        .get(format!(
            "{}/v1/orders?customer_id=frank&status=FAILED",
            stack.http_base
        ))
        .send()
        .await?
        .json()
        .await?;
    let failed = failed["orders"].as_array().context("orders")?;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["order_id"], ids[2].as_str());

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = stack
            .grpc
            .list_orders(pb::ListOrdersRequest {
                customer_id: "frank".into(),
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        assert!(page.orders.len() <= 2);
        seen.extend(page.orders.into_iter().map(|o| o.order_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
    stack.stop_workers()
}

#[tokio::test]
async fn worker_killed_mid_saga_finishes_exactly_once() -> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    let mug = stack.product("MUG-1", 1_000, 10).await?;
    // This worker's gateway books the capture, then takes 30 s to answer:
    // we kill it in that window (money taken, no answer recorded).
    let mut doomed = stack.spawn_worker_process(&[
        ("ORDERSAGA_GATEWAY_LATENCY_MS", "30000"),
        ("ORDERSAGA_STICKY_TIMEOUT_MS", "1000"),
    ])?;
    let placed = stack
        .grpc
        .place_order(place("grace", &[("MUG-1", 2)], ""))
        .await?
        .into_inner();
    let txn = placed.transaction_id.clone();
    captured(&stack, &txn).await?;

    // The live query answers mid-saga.
    let handle = stack
        .client
        .get_workflow_handle::<OrderWorkflow>(placed.workflow_id.clone());
    let view: OrderView = handle
        .query(
            OrderWorkflow::get_status,
            (),
            WorkflowQueryOptions::default(),
        )
        .await?;
    assert_eq!(view.status, OrderStatus::Pending);
    assert_eq!(view.step, "ProcessPayment");

    doomed.start_kill()?; // SIGKILL
    doomed.wait().await?;
    stack.start_worker(WorkerSettings::default())?;

    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    let (requests, captures, refunds) = gateway_counts(&stack, &txn).await?;
    assert_eq!((captures, refunds), (1, 0), "one capture, no refund");
    assert!(
        requests >= 2,
        "the charge was retried ({requests} requests)"
    );
    assert_eq!(stack.on_hand(&mug).await?, 8);
    assert_eq!(stack.store.stock().ledger_balance(&mug).await?, 8);
    assert_eq!(
        event_names(&order),
        [
            "OrderPlaced",
            "PaymentProcessed",
            "InventoryProcessed",
            "OrderConfirmed"
        ]
    );
    stack
        .replay_check(&placed.workflow_id, "worker-killed-mid-local-charge")
        .await?;
    stack.stop_workers()
}

#[tokio::test]
async fn cancelled_saga_still_compensates() -> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    let mug = stack.product("MUG-1", 1_000, 10).await?;
    // The charge is a local activity (`local-charge-v1`) in the saga's
    // first workflow task; one slower than the task's heartbeat (8 s) lets
    // the cancel in while it runs, and the saga acts on it after the charge.
    stack.start_worker(WorkerSettings {
        gateway_latency: SLOW_CHARGE,
        ..Default::default()
    })?;
    let placed = stack
        .grpc
        .place_order(place("heidi", &[("MUG-1", 1)], ""))
        .await?
        .into_inner();
    let txn = placed.transaction_id.clone();
    captured(&stack, &txn).await?;
    let handle = stack
        .client
        .get_workflow_handle::<OrderWorkflow>(placed.workflow_id.clone());
    handle
        .cancel(
            WorkflowCancelOptions::builder()
                .reason("customer changed their mind")
                .build(),
        )
        .await?;

    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Failed as i32);
    assert_eq!(order.failure_code, "CANCELLED");
    assert_eq!(order.payment_status, pb::PaymentStatus::Refunded as i32);
    let (_, captures, refunds) = gateway_counts(&stack, &txn).await?;
    assert_eq!((captures, refunds), (1, 1));
    assert_eq!(stack.on_hand(&mug).await?, 10);
    assert!(
        handle
            .get_result(WorkflowGetResultOptions::default())
            .await
            .is_err()
    );
    stack
        .replay_check(&placed.workflow_id, "cancelled-during-local-charge")
        .await?;
    stack.stop_workers()
}

#[tokio::test]
async fn two_workers_on_one_queue_share_the_orders() -> anyhow::Result<()> {
    use temporalio_client::WorkflowFetchHistoryOptions;
    use temporalio_client::grpc::WorkflowService;
    use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
    use temporalio_common::protos::temporal::api::taskqueue::v1::TaskQueue;
    use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeTaskQueueRequest;

    let mut stack = Stack::builder().without_worker().start().await?;
    for name in ["worker-a", "worker-b"] {
        let mut settings = WorkerSettings::default();
        settings.temporal.identity = Some(name.to_string());
        stack.start_worker(settings)?;
    }
    // Both must be polling before the orders go in, or the first to start
    // (the other may still be creating its schedule) can take them all.
    eventually("both workers polling", Duration::from_secs(30), || async {
        let mut client = stack.client.clone();
        let queue = WorkflowService::describe_task_queue(
            &mut client,
            tonic::Request::new(DescribeTaskQueueRequest {
                namespace: stack.namespace.clone(),
                task_queue: Some(TaskQueue {
                    name: stack.task_queue.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        )
        .await?
        .into_inner();
        let polling = |name: &str| queue.pollers.iter().any(|p| p.identity == name);
        Ok((polling("worker-a") && polling("worker-b")).then_some(()))
    })
    .await?;
    let mug = stack.product("MUG-1", 1_000, 100).await?;
    let placed = futures::future::try_join_all((0..20).map(|_| {
        let mut grpc = stack.grpc.clone();
        async move {
            anyhow::Ok(
                grpc.place_order(place("ivan", &[("MUG-1", 1)], ""))
                    .await?
                    .into_inner(),
            )
        }
    }))
    .await?;
    let mut identities = std::collections::BTreeSet::new();
    for p in &placed {
        let order = stack.terminal_order(&p.order_id).await?;
        assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
        let events = stack
            .client
            .get_workflow_handle::<UntypedWorkflow>(p.workflow_id.clone())
            .fetch_history(WorkflowFetchHistoryOptions::default())
            .into_events()
            .await?;
        for e in events {
            match e.attributes {
                Some(Attributes::WorkflowTaskStartedEventAttributes(a)) => {
                    identities.insert(a.identity);
                }
                Some(Attributes::ActivityTaskStartedEventAttributes(a)) => {
                    identities.insert(a.identity);
                }
                _ => {}
            }
        }
    }
    assert!(
        identities.contains("worker-a") && identities.contains("worker-b"),
        "both workers took tasks: {identities:?}"
    );
    assert_eq!(stack.on_hand(&mug).await?, 80, "each order deducted once");
    stack.stop_workers()
}

#[tokio::test]
async fn grpc_health_and_reflection_work_without_proto_files() -> anyhow::Result<()> {
    use futures::StreamExt;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

    let stack = Stack::builder().without_worker().start().await?;
    let channel = tonic::transport::Channel::from_shared(stack.grpc_endpoint())?
        .connect()
        .await?;
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "ordersaga.v1.OrderService".into(),
        })
        .await?
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await?
        .into_inner();
    let first: ServerReflectionResponse = responses.next().await.context("no answer")??;
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        anyhow::bail!("unexpected reflection answer: {first:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"ordersaga.v1.OrderService"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    Ok(())
}

#[tokio::test]
async fn worker_process_drains_and_exits_cleanly_on_sigterm() -> anyhow::Result<()> {
    let stack = Stack::builder().without_worker().start().await?;
    stack.product("MUG-1", 1_000, 10).await?;
    let mut worker = stack.spawn_worker_process(&[])?;
    let placed = stack
        .grpc
        .clone()
        .place_order(place("judy", &[("MUG-1", 1)], ""))
        .await?
        .into_inner();
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);

    let pid = worker.id().context("worker pid")?;
    let pid = i32::try_from(pid)?;
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on our own child's pid; no memory is touched.
    let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let status = tokio::time::timeout(Duration::from_secs(30), worker.wait()).await??;
    assert!(status.success(), "worker exited with {status}");
    Ok(())
}

#[tokio::test]
async fn an_order_placed_with_no_worker_is_pending_and_completes_later() -> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    stack.product("MUG-1", 1_000, 10).await?;
    let placed = stack
        .grpc
        .place_order(place("kai", &[("MUG-1", 1)], ""))
        .await?
        .into_inner();
    // No worker: nothing is stored yet, but the order exists and says so.
    let order = stack
        .grpc
        .get_order(pb::GetOrderRequest {
            order_id: placed.order_id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(order.status, pb::OrderStatus::Pending as i32);
    assert_eq!(order.workflow_id, placed.workflow_id);
    assert!(order.events.is_empty());
    let body: Value = stack
        .http
        .get(format!("{}/v1/orders/{}", stack.http_base, placed.order_id))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(body["status"], "PENDING");

    stack.start_worker(WorkerSettings::default())?;
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    stack.stop_workers()
}

#[tokio::test]
async fn cancel_order_in_simulated_mode_refunds_during_the_charge_and_a_retry_changes_nothing()
-> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    let mug = stack.product("MUG-1", 1_000, 10).await?;
    // A charge slower than the workflow task's heartbeat: the update is
    // delivered with the task that follows it (see `SLOW_CHARGE`).
    stack.start_worker(WorkerSettings {
        gateway_latency: SLOW_CHARGE,
        ..Default::default()
    })?;
    let placed = stack
        .grpc
        .place_order(place("olga", &[("MUG-1", 1)], ""))
        .await?
        .into_inner();
    assert!(
        placed.approval_url.is_empty(),
        "simulated: no link to wait for"
    );
    let txn = placed.transaction_id.clone();
    // Captured, answer still on its way: cancelling now refunds.
    captured(&stack, &txn).await?;
    let accepted = stack
        .grpc
        .cancel_order(pb::CancelOrderRequest {
            order_id: placed.order_id.clone(),
            reason: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(accepted.status, pb::OrderStatus::Pending as i32);
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Failed as i32);
    assert_eq!(order.failure_code, "CANCELLED");
    assert_eq!(order.payment_status, pb::PaymentStatus::Refunded as i32);
    assert_eq!(gateway_counts(&stack, &txn).await?.2, 1, "one refund");
    assert_eq!(stack.on_hand(&mug).await?, 10);

    // A client retrying its accepted cancel gets the same answer, also once
    // the saga has ended (the update is deduplicated by its id), and
    // nothing happens twice. (Before, the API answered 409 from the row.)
    let _ = stack
        .client
        .get_workflow_handle::<UntypedWorkflow>(placed.workflow_id.clone())
        .get_result(WorkflowGetResultOptions::default())
        .await;
    let again = stack
        .grpc
        .cancel_order(pb::CancelOrderRequest {
            order_id: placed.order_id.clone(),
            reason: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(again.status, pb::OrderStatus::Pending as i32);
    assert_eq!(gateway_counts(&stack, &txn).await?.2, 1, "still one refund");
    stack.stop_workers()
}
