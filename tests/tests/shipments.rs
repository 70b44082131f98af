//! End to end: shipments with a life. A confirmed order's shipment is
//! dispatched and delivered by the courier (gRPC and HTTP, courier role)
//! through its `ShippingWorkflow` on the shipping queue; the customer gets
//! one email on dispatch and one on delivery (real SMTP); the order's
//! fulfilment is `COMPLETED` only after the delivery; moves that do not fit
//! are refused and write nothing; a shipping worker killed between dispatch
//! and delivery loses nothing; a shipment the courier does not pick up in
//! time is flagged. An order whose stock comes from two warehouses gets
//! two shipments, each with its lines, its emails and its courier moves,
//! and completes with the second delivery, a worker killed between the two
//! (on SQLite and PostgreSQL). A shipment has no workflow until the
//! courier dispatches it: confirming an order starts no second workflow.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use ordersaga_domain::{EmailStage, OrderId, ShipmentStatus};
use ordersaga_proto::v1 as pb;
use ordersaga_runtime::auth::Role;
use ordersaga_store::NotificationStatus;
use ordersaga_tests::auth::{http_client, token};
use ordersaga_tests::{ReceivedMail, Stack, TestDatabase, eventually, place_request};
use ordersaga_worker::{Queue, WorkerSettings};
use reqwest::StatusCode;
use serde_json::Value;
use temporalio_client::errors::WorkflowInteractionError;
use temporalio_client::{UntypedWorkflow, WorkflowDescribeOptions};
use tonic::Code;

const TIMEOUT: Duration = Duration::from_secs(45);

fn workers(queues: &[Queue]) -> WorkerSettings {
    WorkerSettings {
        queues: queues.to_vec(),
        ..Default::default()
    }
}

fn courier(stack: &Stack) -> ordersaga_tests::auth::OrdersClient {
    stack.orders_as(Role::Courier, "van-7")
}

fn action(order_id: &str) -> pb::ShipmentActionRequest {
    action_from(order_id, "")
}

fn action_from(order_id: &str, warehouse: &str) -> pb::ShipmentActionRequest {
    pb::ShipmentActionRequest {
        order_id: order_id.to_string(),
        warehouse: warehouse.to_string(),
    }
}

/// Places an order and waits until it is confirmed.
async fn confirmed_order(stack: &Stack, customer: &str, sku: &str) -> anyhow::Result<pb::Order> {
    let placed = stack
        .grpc
        .clone()
        .place_order(place_request(customer, &[(sku, 1)], ""))
        .await?
        .into_inner();
    let order = stack.terminal_order(&placed.order_id).await?;
    anyhow::ensure!(
        order.status == pb::OrderStatus::Confirmed as i32,
        "{order:?}"
    );
    Ok(order)
}

/// Waits until the order's shipment is `status`, and returns the order.
async fn shipment_is(
    stack: &Stack,
    order_id: &str,
    status: ShipmentStatus,
) -> anyhow::Result<pb::Order> {
    eventually(&format!("shipment {status}"), TIMEOUT, || {
        let mut grpc = stack.grpc.clone();
        let order_id = order_id.to_string();
        async move {
            let order = grpc
                .get_order(pb::GetOrderRequest { order_id })
                .await?
                .into_inner();
            let there = order
                .shipment
                .as_ref()
                .is_some_and(|s| s.status == status.as_str());
            Ok(there.then_some(order))
        }
    })
    .await
}

/// Whether the shipment's workflow exists (running or ended).
async fn has_workflow(stack: &Stack, order_id: &str, warehouse: &str) -> anyhow::Result<bool> {
    let workflow_id = ordersaga_domain::shipment_workflow_id(&OrderId::parse(order_id)?, warehouse);
    let described = stack
        .client
        .get_workflow_handle::<UntypedWorkflow>(workflow_id)
        .describe(WorkflowDescribeOptions::default())
        .await;
    match described {
        Ok(_) => Ok(true),
        Err(WorkflowInteractionError::NotFound(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Dispatches as the courier once the shipping relay has stored the
/// shipment (its workflow starts with the dispatch).
async fn dispatch(stack: &Stack, order_id: &str) -> anyhow::Result<pb::ShipmentActionResponse> {
    dispatch_from(stack, order_id, "").await
}

/// [`dispatch`] of the order's shipment from `warehouse`.
async fn dispatch_from(
    stack: &Stack,
    order_id: &str,
    warehouse: &str,
) -> anyhow::Result<pb::ShipmentActionResponse> {
    eventually("the shipment to take a dispatch", TIMEOUT, || {
        let mut courier = courier(stack);
        let request = action_from(order_id, warehouse);
        async move {
            match courier.dispatch_shipment(request).await {
                Ok(r) => Ok(Some(r.into_inner())),
                Err(s) if s.code() == Code::NotFound => Ok(None),
                Err(s) => Err(s.into()),
            }
        }
    })
    .await
}

/// Waits until `n` emails arrived and the order's are all recorded sent;
/// returns them by `Message-ID`, failing if one arrived twice.
async fn mails(
    stack: &Stack,
    n: usize,
    order_id: &str,
) -> anyhow::Result<HashMap<String, ReceivedMail>> {
    let smtp = stack.smtp.as_ref().context("no SMTP server")?;
    eventually(&format!("{n} emails"), TIMEOUT, || async {
        Ok((smtp.messages()?.len() >= n).then_some(()))
    })
    .await?;
    eventually("emails recorded SENT", TIMEOUT, || async {
        let records = stack.store.notifications().of_subject(order_id).await?;
        let sent =
            records.len() == n && records.iter().all(|r| r.status == NotificationStatus::Sent);
        Ok(sent.then_some(()))
    })
    .await?;
    let mut seen = HashMap::new();
    for m in smtp.messages()? {
        if seen.insert(m.message_id.clone(), m.clone()).is_some() {
            anyhow::bail!("{} arrived twice", m.message_id);
        }
    }
    Ok(seen)
}

fn message_id(stage: EmailStage, order_id: &str) -> String {
    format!("<{}.{order_id}@ordersaga>", stage.slug())
}

fn events(order: &pb::Order) -> Vec<&str> {
    order.events.iter().map(|e| e.name.as_str()).collect()
}

#[tokio::test]
async fn dispatch_and_deliver_email_once_each_and_complete_the_order() -> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    stack.start_smtp(Duration::ZERO).await?;
    stack.start_worker(WorkerSettings::default())?;
    stack.product("BOX-1", 1_500, 10).await?;
    let order = confirmed_order(&stack, "alice", "BOX-1").await?;
    let id = order.order_id.clone();
    let requested = shipment_is(&stack, &id, ShipmentStatus::Requested).await?;
    assert_eq!(requested.fulfilment_status, "REQUESTED");
    assert_eq!(
        requested.shipment.as_ref().map(|s| s.warehouse.as_str()),
        Some("main")
    );
    // Until the courier comes, the shipment is its row: no workflow.
    assert!(!has_workflow(&stack, &id, "main").await?);

    // Delivering before the dispatch is refused, and writes nothing.
    let early = courier(&stack)
        .deliver_shipment(action(&id))
        .await
        .err()
        .context("an undispatched shipment cannot be delivered")?;
    assert_eq!(early.code(), Code::FailedPrecondition);
    // A customer is no courier.
    let url = format!("{}/v1/shipments/{id}/dispatch", stack.http_base);
    let alice = http_client(&token(Role::Customer, "alice"))?;
    assert_eq!(
        alice.post(&url).send().await?.status(),
        StatusCode::FORBIDDEN
    );

    assert!(
        !has_workflow(&stack, &id, "main").await?,
        "a refused move starts nothing"
    );
    // No such shipment (another warehouse, an unknown order): 404, nothing
    // started.
    let stranger = uuid::Uuid::new_v4().to_string();
    for (order, warehouse) in [(id.as_str(), "east"), (stranger.as_str(), "main")] {
        let refused = courier(&stack)
            .dispatch_shipment(action_from(order, warehouse))
            .await
            .err()
            .context("a dispatch of no shipment is refused")?;
        assert_eq!(refused.code(), Code::NotFound, "{order} {warehouse}");
        assert!(!has_workflow(&stack, order, warehouse).await?);
    }

    let moved = dispatch(&stack, &id).await?;
    assert_eq!(
        (moved.status.as_str(), moved.warehouse.as_str()),
        ("DISPATCHED", "main")
    );
    assert!(has_workflow(&stack, &id, "main").await?);
    let on_its_way = shipment_is(&stack, &id, ShipmentStatus::Dispatched).await?;
    assert_eq!(on_its_way.fulfilment_status, "DISPATCHED");
    assert!(
        on_its_way
            .shipment
            .as_ref()
            .is_some_and(|s| s.dispatched_at.is_some())
    );
    // The courier's retry over HTTP: the same answer, nothing twice.
    let van = http_client(&token(Role::Courier, "van-7"))?;
    let again: Value = van
        .post(&url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(again["status"], "DISPATCHED");

    let delivered = courier(&stack)
        .deliver_shipment(action(&id))
        .await?
        .into_inner();
    assert_eq!(delivered.status, "DELIVERED");
    let done = shipment_is(&stack, &id, ShipmentStatus::Delivered).await?;
    eventually("the order completed", TIMEOUT, || {
        let mut grpc = stack.grpc.clone();
        let order_id = id.clone();
        async move {
            let order = grpc
                .get_order(pb::GetOrderRequest { order_id })
                .await?
                .into_inner();
            Ok((order.fulfilment_status == "COMPLETED").then_some(()))
        }
    })
    .await?;
    assert_eq!(
        done.status,
        pb::OrderStatus::Confirmed as i32,
        "the saga's status stands"
    );
    let delivered_at = done.shipment.as_ref().and_then(|s| s.delivered_at);
    assert!(delivered_at.is_some());

    // Dispatching a delivered shipment: 409, nothing written.
    let late = van.post(&url).send().await?;
    assert_eq!(late.status(), StatusCode::CONFLICT);
    let body: Value = late.json().await?;
    assert_eq!(body["error"]["code"], "FAILED_PRECONDITION");
    let after = stack.terminal_order(&id).await?;
    assert_eq!(
        after.shipment.as_ref().and_then(|s| s.delivered_at),
        delivered_at
    );
    assert_eq!(
        after.shipment.as_ref().map(|s| s.status.as_str()),
        Some("DELIVERED")
    );
    assert_eq!(
        events(&after),
        [
            "OrderPlaced",
            "PaymentProcessed",
            "InventoryProcessed",
            "OrderConfirmed",
            "ShipmentDispatched",
            "ShipmentDelivered",
            "OrderCompleted"
        ]
    );

    // One email per stage: received, confirmed, dispatched, delivered.
    let mails = mails(&stack, 4, &id).await?;
    let dispatched = &mails[&message_id(EmailStage::ShipmentDispatched, &id)];
    assert_eq!(dispatched.rcpt_tos, ["alice@example.com"]);
    assert_eq!(dispatched.subject, format!("Your order {id} is on its way"));
    let delivered = &mails[&message_id(EmailStage::ShipmentDelivered, &id)];
    assert_eq!(delivered.subject, format!("Your order {id} was delivered"));
    assert!(delivered.text.contains("BOX-1"), "{}", delivered.text);

    let workflow_id = ordersaga_domain::shipment_workflow_id(&OrderId::parse(&id)?, "main");
    stack
        .replay_check(&workflow_id, "shipment-delivered-on-dispatch")
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_shipping_worker_killed_between_dispatch_and_delivery_loses_nothing() -> anyhow::Result<()>
{
    let mut stack = Stack::builder().without_worker().start().await?;
    stack.start_smtp(Duration::ZERO).await?;
    stack.start_worker(workers(&[Queue::Orders, Queue::Notifications]))?;
    let mut first = stack.spawn_worker_process_with_args(&["--queues", "shipping"], &[])?;
    stack.product("BOX-2", 2_500, 10).await?;
    let order = confirmed_order(&stack, "bob", "BOX-2").await?;
    let id = order.order_id.clone();
    dispatch(&stack, &id).await?;
    shipment_is(&stack, &id, ShipmentStatus::Dispatched).await?;

    first.start_kill()?; // SIGKILL
    first.wait().await?;
    let _second = stack.spawn_worker_process_with_args(&["--queues", "shipping"], &[])?;
    let delivered = courier(&stack)
        .deliver_shipment(action(&id))
        .await?
        .into_inner();
    assert_eq!(delivered.status, "DELIVERED");
    let done = shipment_is(&stack, &id, ShipmentStatus::Delivered).await?;
    eventually("the order completed", TIMEOUT, || {
        let mut grpc = stack.grpc.clone();
        let order_id = id.clone();
        async move {
            let order = grpc
                .get_order(pb::GetOrderRequest { order_id })
                .await?
                .into_inner();
            Ok((order.fulfilment_status == "COMPLETED").then_some(()))
        }
    })
    .await?;
    assert!(events(&done).contains(&"ShipmentDispatched"));
    let mails = mails(&stack, 4, &id).await?;
    assert!(mails.contains_key(&message_id(EmailStage::ShipmentDispatched, &id)));
    assert!(mails.contains_key(&message_id(EmailStage::ShipmentDelivered, &id)));
    Ok(())
}

#[tokio::test]
async fn a_shipment_not_dispatched_in_time_is_flagged_and_still_ships() -> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    let mut settings = WorkerSettings::default();
    settings.relay.dispatch_alert = Some(Duration::from_secs(1));
    stack.start_worker(settings)?;
    stack.product("BOX-3", 900, 10).await?;
    let order = confirmed_order(&stack, "carol", "BOX-3").await?;
    let id = order.order_id.clone();
    let flagged = eventually("the overdue flag", TIMEOUT, || {
        let mut grpc = stack.grpc.clone();
        let order_id = id.clone();
        async move {
            let order = grpc
                .get_order(pb::GetOrderRequest { order_id })
                .await?
                .into_inner();
            Ok(order.shipment.filter(|s| s.dispatch_overdue_at.is_some()))
        }
    })
    .await?;
    assert_eq!(flagged.status, "REQUESTED");
    let listed: Value = stack
        .http
        .get(format!("{}/v1/shipments", stack.http_base))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert!(
        listed["shipments"][0]["dispatch_overdue_at"].is_string(),
        "{listed}"
    );
    assert_eq!(stack.store.shipments().overdue().await?, 1);
    // Late, but the courier still takes it.
    dispatch(&stack, &id).await?;
    shipment_is(&stack, &id, ShipmentStatus::Dispatched).await?;
    assert_eq!(stack.store.shipments().overdue().await?, 0);
    Ok(())
}

/// Waits until the order's shipment from `warehouse` is `status`, and
/// returns the order.
async fn shipment_from_is(
    stack: &Stack,
    order_id: &str,
    warehouse: &str,
    status: ShipmentStatus,
) -> anyhow::Result<pb::Order> {
    eventually(&format!("{warehouse}'s shipment {status}"), TIMEOUT, || {
        let mut grpc = stack.grpc.clone();
        let order_id = order_id.to_string();
        async move {
            let order = grpc
                .get_order(pb::GetOrderRequest { order_id })
                .await?
                .into_inner();
            let there = order
                .shipments
                .iter()
                .any(|s| s.warehouse == warehouse && s.status == status.as_str());
            Ok(there.then_some(order))
        }
    })
    .await
}

fn receipt(key: &str, warehouse: &str, sku: &str, quantity: i64) -> pb::CreateStockReceiptRequest {
    pb::CreateStockReceiptRequest {
        idempotency_key: key.into(),
        warehouse: warehouse.into(),
        lines: vec![pb::StockReceiptLine {
            sku: sku.into(),
            quantity,
        }],
    }
}

/// `{lines}` of a shipment as `sku x quantity`.
fn contents(s: &pb::Shipment) -> Vec<(String, i64)> {
    s.lines
        .iter()
        .map(|l| (l.sku.clone(), l.quantity))
        .collect()
}

async fn two_warehouses(db: TestDatabase) -> anyhow::Result<()> {
    let mut stack = Stack::builder()
        .database(db)
        .without_worker()
        .start()
        .await?;
    stack.start_smtp(Duration::ZERO).await?;
    stack.start_worker(workers(&[Queue::Orders, Queue::Notifications]))?;
    let mut first = stack.spawn_worker_process_with_args(&["--queues", "shipping"], &[])?;
    // A lamp held only in north, a rug only in south.
    stack.product("LAMP-1", 4_000, 0).await?;
    stack.product("RUG-1", 9_000, 0).await?;
    let mut catalog = stack.catalog();
    catalog
        .create_stock_receipt(receipt("grn-north", "north", "LAMP-1", 5))
        .await?;
    catalog
        .create_stock_receipt(receipt("grn-south", "south", "RUG-1", 3))
        .await?;

    // GET product shows the stock per warehouse (gRPC and HTTP); the
    // units sum to on-hand.
    let lamp = catalog
        .get_product(pb::GetProductRequest {
            sku: "LAMP-1".into(),
        })
        .await?
        .into_inner();
    let north: Vec<(String, i64)> = lamp
        .warehouses
        .iter()
        .filter(|w| w.on_hand > 0)
        .map(|w| (w.warehouse.clone(), w.on_hand))
        .collect();
    assert_eq!(north, [("north".to_string(), 5)], "{lamp:?}");
    assert_eq!(
        lamp.warehouses.iter().map(|w| w.on_hand).sum::<i64>(),
        lamp.on_hand
    );
    let rug: Value = stack
        .http
        .get(format!("{}/v1/products/RUG-1", stack.http_base))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let south = rug["warehouses"]
        .as_array()
        .context("warehouses")?
        .iter()
        .find(|w| w["warehouse"] == "south")
        .context("south")?;
    assert_eq!(south["on_hand"], 3, "{rug}");

    let placed = stack
        .grpc
        .clone()
        .place_order(place_request("dora", &[("LAMP-1", 2), ("RUG-1", 1)], ""))
        .await?
        .into_inner();
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32, "{order:?}");
    let id = placed.order_id.clone();

    // Two shipments, each with its own lines.
    shipment_from_is(&stack, &id, "north", ShipmentStatus::Requested).await?;
    let both = shipment_from_is(&stack, &id, "south", ShipmentStatus::Requested).await?;
    assert_eq!(both.shipments.len(), 2, "{both:?}");
    let by_warehouse: HashMap<&str, &pb::Shipment> = both
        .shipments
        .iter()
        .map(|s| (s.warehouse.as_str(), s))
        .collect();
    assert_eq!(contents(by_warehouse["north"]), [("LAMP-1".to_string(), 2)]);
    assert_eq!(contents(by_warehouse["south"]), [("RUG-1".to_string(), 1)]);
    assert_eq!(both.fulfilment_status, "REQUESTED");
    let json: Value = stack
        .http
        .get(format!("{}/v1/orders/{id}", stack.http_base))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(
        json["shipments"].as_array().map(Vec::len),
        Some(2),
        "{json}"
    );
    // No shipment from main: that warehouse gives nothing to this order.
    let from_main = courier(&stack)
        .dispatch_shipment(action(&id))
        .await
        .err()
        .context("the order has no shipment from main")?;
    assert_eq!(from_main.code(), Code::NotFound);

    // Both dispatched, the first delivered: not complete yet.
    dispatch_from(&stack, &id, "north").await?;
    dispatch_from(&stack, &id, "south").await?;
    let delivered = courier(&stack)
        .deliver_shipment(action_from(&id, "north"))
        .await?
        .into_inner();
    assert_eq!(
        (delivered.status.as_str(), delivered.warehouse.as_str()),
        ("DELIVERED", "north")
    );
    let half = shipment_from_is(&stack, &id, "north", ShipmentStatus::Delivered).await?;
    assert_eq!(half.fulfilment_status, "DISPATCHED");
    assert!(!events(&half).contains(&"OrderCompleted"), "{half:?}");

    // The shipping worker dies between the two deliveries; a new one
    // takes over.
    first.start_kill()?; // SIGKILL
    first.wait().await?;
    let _second = stack.spawn_worker_process_with_args(&["--queues", "shipping"], &[])?;
    let delivered = courier(&stack)
        .deliver_shipment(action_from(&id, "south"))
        .await?
        .into_inner();
    assert_eq!(delivered.status, "DELIVERED");
    shipment_from_is(&stack, &id, "south", ShipmentStatus::Delivered).await?;
    let done = eventually("the order completed", TIMEOUT, || {
        let mut grpc = stack.grpc.clone();
        let order_id = id.clone();
        async move {
            let order = grpc
                .get_order(pb::GetOrderRequest { order_id })
                .await?
                .into_inner();
            Ok((order.fulfilment_status == "COMPLETED").then_some(order))
        }
    })
    .await?;
    let names = events(&done);
    assert_eq!(
        names.iter().filter(|e| **e == "ShipmentDispatched").count(),
        2
    );
    assert_eq!(
        names.iter().filter(|e| **e == "ShipmentDelivered").count(),
        2
    );
    assert_eq!(names.iter().filter(|e| **e == "OrderCompleted").count(), 1);
    assert_eq!(names.last(), Some(&"OrderCompleted"), "{names:?}");

    // Emails: received, confirmed, and one dispatch and one delivery email
    // per shipment, each once, each listing its parcel.
    let smtp = stack.smtp.as_ref().context("no SMTP server")?;
    let subjects = [id.clone(), format!("{id}-north"), format!("{id}-south")];
    eventually("six emails recorded SENT", TIMEOUT, || async {
        let mut records = Vec::new();
        for subject in &subjects {
            records.extend(stack.store.notifications().of_subject(subject).await?);
        }
        let sent =
            records.len() == 6 && records.iter().all(|r| r.status == NotificationStatus::Sent);
        Ok(sent.then_some(()))
    })
    .await?;
    let mut seen: HashMap<String, ReceivedMail> = HashMap::new();
    for m in smtp.messages()? {
        if seen.insert(m.message_id.clone(), m.clone()).is_some() {
            anyhow::bail!("{} arrived twice", m.message_id);
        }
    }
    assert_eq!(seen.len(), 6, "{:?}", seen.keys().collect::<Vec<_>>());
    for (warehouse, sku, other) in [("north", "LAMP-1", "RUG-1"), ("south", "RUG-1", "LAMP-1")] {
        let subject = format!("{id}-{warehouse}");
        for stage in [
            EmailStage::ShipmentDispatched,
            EmailStage::ShipmentDelivered,
        ] {
            let mail = seen
                .get(&message_id(stage, &subject))
                .with_context(|| format!("{stage} email of {warehouse}"))?;
            assert_eq!(mail.rcpt_tos, ["dora@example.com"]);
            assert!(mail.text.contains(sku), "{}", mail.text);
            assert!(!mail.text.contains(other), "{}", mail.text);
        }
    }

    // The saga's history is the one-shipment shape; each shipment's
    // workflow replays.
    let order_id = OrderId::parse(&id)?;
    stack
        .replay_check(&order_id.workflow_id(), "shipments-two-warehouses")
        .await?;
    for warehouse in ["north", "south"] {
        let workflow_id = ordersaga_domain::shipment_workflow_id(&order_id, warehouse);
        stack
            .replay_check(&workflow_id, &format!("shipment-delivered-{warehouse}"))
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn an_order_from_two_warehouses_ships_twice_and_completes_with_the_second_delivery_on_sqlite()
-> anyhow::Result<()> {
    two_warehouses(TestDatabase::sqlite()?).await
}

#[tokio::test]
async fn an_order_from_two_warehouses_ships_twice_and_completes_with_the_second_delivery_on_postgres()
-> anyhow::Result<()> {
    two_warehouses(TestDatabase::postgres().await?).await
}
