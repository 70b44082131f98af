//! End to end: the notifications and shipping services on their own task
//! queues, fed by the saga through the outbox, against a real SMTP server (aiosmtpd) that the tests stop,
//! start and slow down. Each test has its own Temporal namespace (on the
//! binary's one dev server) and database.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use ordersaga_domain::names::OUTBOX_RELAY_WORKFLOW_ID_PREFIX;
use ordersaga_domain::{EmailStage, OrderId, Topic};
use ordersaga_proto::v1 as pb;
use ordersaga_store::{NotificationStatus, OutboxStatus};
use ordersaga_tests::{ReceivedMail, Stack, eventually};
use ordersaga_worker::{Queue, WorkerSettings};
use temporalio_client::{UntypedWorkflow, WorkflowDescribeOptions, WorkflowFetchHistoryOptions};

const SAGA_TIMEOUT: Duration = Duration::from_secs(30);
const MAIL_TIMEOUT: Duration = Duration::from_secs(45);

fn place(customer: &str, lines: &[(&str, i64)]) -> pb::PlaceOrderRequest {
    pb::PlaceOrderRequest {
        customer_id: customer.to_string(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| pb::OrderLineRequest {
                sku: (*sku).to_string(),
                quantity: *quantity,
            })
            .collect(),
        idempotency_key: String::new(),
        customer_email: format!("{customer}@example.com"),
        shipping_address: Some(pb::ShippingAddress {
            name: format!("{customer} Liddell"),
            line1: "1 Rabbit Hole".into(),
            line2: "Flat 2".into(),
            city: "Oxford".into(),
            postal_code: "OX1 1AA".into(),
            country: "gb".into(),
        }),
    }
}

fn workers(queues: &[Queue]) -> WorkerSettings {
    WorkerSettings {
        queues: queues.to_vec(),
        ..Default::default()
    }
}

/// Waits for the order's shipping request (created after `OrderConfirmed`,
/// without the saga waiting for it).
async fn shipment(stack: &Stack, order_id: &str) -> anyhow::Result<pb::Shipment> {
    let grpc = stack.grpc.clone();
    eventually("a shipping request", SAGA_TIMEOUT, || {
        let mut grpc = grpc.clone();
        let order_id = order_id.to_string();
        async move {
            let order = grpc
                .get_order(pb::GetOrderRequest { order_id })
                .await?
                .into_inner();
            Ok(order.shipment)
        }
    })
    .await
}

/// Waits until the SMTP server holds `n` messages, then until every email
/// of `orders` is recorded `SENT`, and returns the messages.
async fn mail(stack: &Stack, n: usize, orders: &[&str]) -> anyhow::Result<Vec<ReceivedMail>> {
    let smtp = stack.smtp.as_ref().context("no SMTP server")?;
    eventually(&format!("{n} emails"), MAIL_TIMEOUT, || async {
        let got = smtp.messages()?;
        Ok((got.len() >= n).then_some(()))
    })
    .await?;
    for order in orders {
        eventually("emails recorded SENT", MAIL_TIMEOUT, || async {
            let records = stack.store.notifications().of_subject(order).await?;
            let all_sent =
                !records.is_empty() && records.iter().all(|r| r.status == NotificationStatus::Sent);
            Ok(all_sent.then_some(()))
        })
        .await?;
    }
    smtp.messages()
}

/// Exactly one message per `Message-ID`.
fn by_message_id(mails: &[ReceivedMail]) -> anyhow::Result<HashMap<String, ReceivedMail>> {
    let mut seen = HashMap::new();
    for m in mails {
        if seen.insert(m.message_id.clone(), m.clone()).is_some() {
            anyhow::bail!("{} arrived twice", m.message_id);
        }
    }
    Ok(seen)
}

fn message_id(stage: EmailStage, order_id: &str) -> String {
    format!("<{}.{order_id}@ordersaga>", stage.slug())
}

#[tokio::test]
async fn each_stage_email_arrives_once_and_confirmed_orders_ship_once() -> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    stack.start_smtp(Duration::ZERO).await?;
    stack.start_worker(WorkerSettings::default())?;
    stack.product("MUG-1", 1_250, 10).await?;
    stack.product("LAST-ONE", 4_999, 1).await?;
    stack.product("GOLD-BAR", 250_000, 5).await?;
    let mut grpc = stack.grpc.clone();

    let ok = grpc
        .place_order(place("alice", &[("MUG-1", 3)]))
        .await?
        .into_inner();
    let short = grpc
        .place_order(place("carol", &[("LAST-ONE", 2)]))
        .await?
        .into_inner();
    let declined = grpc
        .place_order(place("bob", &[("GOLD-BAR", 1)]))
        .await?
        .into_inner();
    assert_eq!(
        stack.terminal_order(&ok.order_id).await?.status,
        pb::OrderStatus::Confirmed as i32
    );
    for p in [&short, &declined] {
        assert_eq!(
            stack.terminal_order(&p.order_id).await?.status,
            pb::OrderStatus::Failed as i32
        );
    }

    let ids = [
        ok.order_id.as_str(),
        short.order_id.as_str(),
        declined.order_id.as_str(),
    ];
    let mails = by_message_id(&mail(&stack, 6, &ids).await?)?;
    assert_eq!(mails.len(), 6, "{:?}", mails.keys());

    let received = &mails[&message_id(EmailStage::OrderReceived, &ok.order_id)];
    assert_eq!(received.rcpt_tos, ["alice@example.com"]);
    assert_eq!(received.to, "alice@example.com");
    assert_eq!(
        received.subject,
        format!("We received your order {}", ok.order_id)
    );
    assert!(
        received.from.contains("Ordersaga Shop"),
        "{}",
        received.from
    );
    assert!(
        received.text.contains("payment is\nbeing processed"),
        "{}",
        received.text
    );
    assert!(
        received
            .text
            .contains(&format!("/v1/orders/{}", ok.order_id)),
        "status link: {}",
        received.text
    );

    let confirmed = &mails[&message_id(EmailStage::OrderConfirmed, &ok.order_id)];
    assert_eq!(confirmed.rcpt_tos, ["alice@example.com"]);
    assert_eq!(
        confirmed.subject,
        format!("Your order {} is confirmed", ok.order_id)
    );
    for want in [
        "3 x MUG-1 at 12.50 EUR = 37.50 EUR",
        "Total: 37.50 EUR",
        "OX1 1AA Oxford",
        "GB",
    ] {
        assert!(
            confirmed.text.contains(want),
            "{want:?} in {}",
            confirmed.text
        );
    }
    assert!(
        confirmed.html.contains("<td>MUG-1</td>"),
        "{}",
        confirmed.html
    );
    assert!(confirmed.html.contains("37.50 EUR"));

    let refunded = &mails[&message_id(EmailStage::OrderFailed, &short.order_id)];
    assert_eq!(refunded.rcpt_tos, ["carol@example.com"]);
    assert_eq!(
        refunded.subject,
        format!("Your order {} could not be completed", short.order_id)
    );
    assert!(
        refunded
            .text
            .contains("Why: out of stock: LAST-ONE (ordered 2, 1 available)"),
        "{}",
        refunded.text
    );
    assert!(
        refunded.text.contains("You have been refunded"),
        "{}",
        refunded.text
    );
    assert!(refunded.html.contains("You have been refunded"));

    let no_money = &mails[&message_id(EmailStage::OrderFailed, &declined.order_id)];
    assert_eq!(no_money.rcpt_tos, ["bob@example.com"]);
    assert!(
        no_money.text.contains("Why: payment declined"),
        "{}",
        no_money.text
    );
    assert!(!no_money.text.contains("refunded"), "{}", no_money.text);
    assert!(no_money.text.contains("No money was taken"));
    for p in [&short, &declined] {
        assert!(mails.contains_key(&message_id(EmailStage::OrderReceived, &p.order_id)));
        assert!(!mails.contains_key(&message_id(EmailStage::OrderConfirmed, &p.order_id)));
    }

    // One shipping request, for the confirmed order only.
    shipment(&stack, &ok.order_id).await?;
    let shipments = grpc
        .list_shipments(pb::ListShipmentsRequest::default())
        .await?
        .into_inner()
        .shipments;
    assert_eq!(shipments.len(), 1, "{shipments:?}");
    let shipment = &shipments[0];
    assert_eq!(shipment.order_id, ok.order_id);
    assert_eq!(shipment.status, "REQUESTED");
    assert_eq!(
        shipment
            .lines
            .iter()
            .map(|l| (l.sku.as_str(), l.quantity))
            .collect::<Vec<_>>(),
        [("MUG-1", 3)]
    );
    let address = shipment.address.clone().context("address")?;
    assert_eq!(
        (address.city.as_str(), address.country.as_str()),
        ("Oxford", "GB")
    );
    let order = stack.terminal_order(&ok.order_id).await?;
    assert_eq!(order.shipment.as_ref(), Some(shipment));
    for p in [&short, &declined] {
        assert!(stack.terminal_order(&p.order_id).await?.shipment.is_none());
    }
    let http: serde_json::Value = stack
        .http
        .get(format!("{}/v1/shipments", stack.http_base))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(http["shipments"][0]["order_id"], ok.order_id.as_str());
    assert_eq!(http["shipments"][0]["address"]["postal_code"], "OX1 1AA");

    // Replaying the saga (its emails and shipping request committed to the
    // outbox with its steps) is deterministic; saved for tests/replay.rs
    // with ORDERSAGA_RECORD_HISTORIES=1.
    stack
        .replay_check(&ok.workflow_id, "confirmed-outbox")
        .await?;
    stack
        .replay_check(&short.workflow_id, "out-of-stock-refunded-outbox")
        .await?;
    stack.stop_workers()
}

#[tokio::test]
async fn smtp_down_orders_still_confirm_and_every_email_arrives_once_when_it_is_back()
-> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    stack.start_smtp(Duration::ZERO).await?;
    stack.smtp.as_mut().context("smtp")?.stop().await?;
    stack.start_worker(WorkerSettings::default())?;
    stack.product("MUG-1", 1_000, 10).await?;

    let mut ids = Vec::new();
    for customer in ["dora", "emil", "fay"] {
        let placed = stack
            .grpc
            .clone()
            .place_order(place(customer, &[("MUG-1", 1)]))
            .await?
            .into_inner();
        ids.push(placed.order_id);
    }
    // Orders are not delayed or failed by the outage.
    for id in &ids {
        let order = stack.terminal_order(id).await?;
        assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
        shipment(&stack, id).await?;
    }
    // The emails are recorded, retried, and not sent.
    for id in &ids {
        eventually("a retried email", MAIL_TIMEOUT, || async {
            let records = stack.store.notifications().of_subject(id).await?;
            let retried = records.len() == 2
                && records.iter().all(|r| {
                    r.status == NotificationStatus::Pending
                        && r.attempts >= 2
                        && r.last_error.is_some()
                });
            Ok(retried.then_some(()))
        })
        .await?;
    }
    let smtp = stack.smtp.as_mut().context("smtp")?;
    assert!(smtp.messages()?.is_empty());

    smtp.start_again().await?;
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mails = by_message_id(&mail(&stack, 6, &refs).await?)?;
    assert_eq!(mails.len(), 6);
    for id in &ids {
        for stage in [EmailStage::OrderReceived, EmailStage::OrderConfirmed] {
            assert!(
                mails.contains_key(&message_id(stage, id)),
                "{stage} of {id}"
            );
        }
    }
    stack.stop_workers()
}

#[tokio::test]
async fn notifications_worker_killed_mid_send_loses_no_email() -> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    // Each RCPT takes 2 s: a send is in flight for that long.
    stack.start_smtp(Duration::from_secs(2)).await?;
    stack.start_worker(workers(&[Queue::Orders, Queue::Shipping]))?;
    stack.product("MUG-1", 1_000, 10).await?;
    // The killed attempt's claims return when their lease runs out (a
    // retried slot never takes back a leased row): a short lease, and SMTP
    // timeouts that fit in it, keep the test short.
    let env = [
        ("ORDERSAGA_STICKY_TIMEOUT_MS", "1000"),
        ("ORDERSAGA_RELAY_LEASE_MS", "10000"),
        ("ORDERSAGA_SMTP_TIMEOUT_MS", "3000"),
    ];
    let args = ["--queues", "notifications"];
    let mut doomed = stack.spawn_worker_process_with_args(&args, &env)?;

    let placed = stack
        .grpc
        .clone()
        .place_order(place("gus", &[("MUG-1", 1)]))
        .await?
        .into_inner();
    let smtp = stack.smtp.as_ref().context("smtp")?;
    eventually("a send in flight", MAIL_TIMEOUT, || async {
        Ok(smtp.events().contains("RCPT gus@example.com").then_some(()))
    })
    .await?;
    doomed.start_kill()?; // SIGKILL, mid-RCPT
    doomed.wait().await?;
    assert!(smtp.messages()?.is_empty(), "nothing was handed over");
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);

    let _restarted = stack.spawn_worker_process_with_args(&args, &env)?;
    let mails = by_message_id(&mail(&stack, 2, &[&placed.order_id]).await?)?;
    assert_eq!(mails.len(), 2);
    for stage in [EmailStage::OrderReceived, EmailStage::OrderConfirmed] {
        assert!(mails.contains_key(&message_id(stage, &placed.order_id)));
    }
    let received = stack
        .store
        .notifications()
        .get(&placed.order_id, EmailStage::OrderReceived)
        .await?
        .context("record")?;
    assert!(
        received.attempts >= 2,
        "retried after the kill: {received:?}"
    );
    stack.stop_workers()
}

/// The one window SMTP leaves open: the server stores a message at the end
/// of `DATA`, before its `250` reaches the sender. A worker killed in
/// between has not recorded the send, so the email goes out again, once:
/// after the killed attempt's claim lapses, by the one attempt holding it.
#[tokio::test]
async fn a_worker_killed_after_the_end_of_data_sends_that_email_exactly_twice() -> anyhow::Result<()>
{
    let mut stack = Stack::builder().without_worker().start().await?;
    // Each message is stored, then its 250 held for 2 s.
    stack
        .start_smtp_holding_replies(Duration::from_secs(2))
        .await?;
    stack.start_worker(workers(&[Queue::Orders, Queue::Shipping]))?;
    stack.product("MUG-1", 1_000, 10).await?;
    let env = [
        ("ORDERSAGA_STICKY_TIMEOUT_MS", "1000"),
        ("ORDERSAGA_RELAY_LEASE_MS", "10000"),
        ("ORDERSAGA_SMTP_TIMEOUT_MS", "3000"),
    ];
    let args = ["--queues", "notifications"];
    let mut doomed = stack.spawn_worker_process_with_args(&args, &env)?;

    let placed = stack
        .grpc
        .clone()
        .place_order(place("max", &[("MUG-1", 1)]))
        .await?
        .into_inner();
    let smtp = stack.smtp.as_ref().context("smtp")?;
    let stored = eventually("a message stored, its 250 held", MAIL_TIMEOUT, || async {
        Ok(smtp
            .events()
            .lines()
            .find_map(|l| l.strip_prefix("DATA ").map(str::to_string)))
    })
    .await?;
    doomed.start_kill()?; // SIGKILL, waiting for the 250
    doomed.wait().await?;
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);

    let _restarted = stack.spawn_worker_process_with_args(&args, &env)?;
    let mails = mail(&stack, 3, &[&placed.order_id]).await?;
    let mut copies: HashMap<String, usize> = HashMap::new();
    for m in &mails {
        *copies.entry(m.message_id.clone()).or_default() += 1;
    }
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert_eq!(copies.get(&stored), Some(&2), "sent again once: {copies:?}");
    assert!(copies.values().all(|&n| n <= 2), "{copies:?}");
    stack.stop_workers()
}

#[tokio::test]
async fn without_a_notifications_worker_orders_confirm_and_the_queue_backs_up() -> anyhow::Result<()>
{
    let mut stack = Stack::builder().without_worker().start().await?;
    stack.start_worker(workers(&[Queue::Orders, Queue::Shipping]))?;
    stack.product("MUG-1", 1_000, 10).await?;
    let mut ids = Vec::new();
    for customer in ["hal", "ida"] {
        let placed = stack
            .grpc
            .clone()
            .place_order(place(customer, &[("MUG-1", 1)]))
            .await?
            .into_inner();
        let order = stack.terminal_order(&placed.order_id).await?;
        assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
        shipment(&stack, &placed.order_id).await?;
        ids.push(placed.order_id);
    }

    // Visible backlog: four emails waiting in the outbox, and the email
    // relay's first task waiting on the `notifications` queue, which no
    // worker polls.
    assert_eq!(stack.store.outbox().backlog(Topic::Email).await?, 4);
    let workflow_id = format!("{OUTBOX_RELAY_WORKFLOW_ID_PREFIX}email");
    let handle = stack
        .client
        .get_workflow_handle::<UntypedWorkflow>(workflow_id.clone());
    let description = handle.describe(WorkflowDescribeOptions::default()).await?;
    assert_eq!(
        description.task_queue(),
        "notifications",
        "{workflow_id} runs on its own queue"
    );
    let history = handle
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .to_json()
        .await?;
    let history: serde_json::Value = serde_json::from_slice(&history)?;
    let events = history["events"].as_array().context("events")?;
    assert_eq!(events.len(), 2, "started and a workflow task nobody took");
    assert!(
        std::fs::read_dir(stack.mailbox_dir()).is_err(),
        "no email yet"
    );

    // A notifications fleet arrives: the backlog drains into the mailbox.
    stack.start_worker(workers(&[Queue::Notifications]))?;
    let dir = stack.mailbox_dir();
    let files = eventually("four .eml files", MAIL_TIMEOUT, || {
        let dir = dir.clone();
        async move {
            let mut names: Vec<String> = match std::fs::read_dir(&dir) {
                Ok(entries) => entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".eml") && !n.starts_with('.'))
                    .collect(),
                Err(_) => Vec::new(),
            };
            names.sort();
            Ok((names.len() == 4).then_some(names))
        }
    })
    .await?;
    for id in &ids {
        OrderId::parse(id)?;
        assert!(
            files.contains(&format!("order-received.{id}.eml")),
            "{files:?}"
        );
        assert!(
            files.contains(&format!("order-confirmed.{id}.eml")),
            "{files:?}"
        );
    }
    let eml = std::fs::read_to_string(dir.join(format!("order-confirmed.{}.eml", ids[0])))?;
    assert!(
        eml.contains(&format!(
            "Message-ID: <order-confirmed.{}@ordersaga>",
            ids[0]
        )),
        "{eml}"
    );
    assert!(eml.contains("multipart/alternative"), "{eml}");
    stack.stop_workers()
}

#[tokio::test]
async fn a_refused_recipient_fails_only_the_email_never_the_order() -> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    stack.start_smtp(Duration::ZERO).await?;
    stack.start_worker(WorkerSettings::default())?;
    stack.product("MUG-1", 1_000, 10).await?;
    let placed = stack
        .grpc
        .clone()
        .place_order(place("bounce", &[("MUG-1", 1)]))
        .await?
        .into_inner();
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    shipment(&stack, &placed.order_id).await?;

    // 550 is permanent: no retries, the email is FAILED with the reason,
    // in the notifications records and in the outbox.
    let failed = eventually("a failed email", MAIL_TIMEOUT, || async {
        let records = stack
            .store
            .notifications()
            .of_subject(&placed.order_id)
            .await?;
        let done = records.len() == 2
            && records
                .iter()
                .all(|r| r.status == NotificationStatus::Failed);
        Ok(done.then_some(records))
    })
    .await?;
    for r in &failed {
        assert_eq!(r.attempts, 1, "{r:?}");
        assert!(
            r.last_error.as_deref().is_some_and(|e| e.contains("550")),
            "{r:?}"
        );
    }
    for stage in ["order-received", "order-confirmed"] {
        let key = format!("notification-{stage}-{}", placed.order_id);
        let state = stack
            .store
            .outbox()
            .state(&key)
            .await?
            .context("outbox row")?;
        assert_eq!(state.status, OutboxStatus::Failed, "{key}: {state:?}");
        assert_eq!(state.attempts, 1, "{key}: {state:?}");
        assert!(
            state
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("550")),
            "{key}: {state:?}"
        );
    }
    assert!(stack.smtp.as_ref().context("smtp")?.messages()?.is_empty());
    stack.stop_workers()
}

/// `LowStockAlertTriggered` reaches the merchant by email, once per alert,
/// whether an order's deduction or a stock receipt raised it; a receipt
/// retried with its key hands its alert over again and sends nothing new.
#[tokio::test]
async fn low_stock_alerts_email_the_merchant_once_per_alert() -> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    let mut settings = WorkerSettings::default();
    settings.mail.merchant = Some("merchant@example.com".to_string());
    stack.start_worker(settings)?;
    ordersaga_tests::create_product(&stack.store, "MUG-1", 1_000, 5, 2).await?;

    // An order takes stock from 5 to 2: at the threshold.
    let placed = stack
        .grpc
        .clone()
        .place_order(place("lowa", &[("MUG-1", 3)]))
        .await?
        .into_inner();
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);

    // A new product whose first receipt leaves it low, received twice.
    let mut catalog = stack.catalog();
    catalog
        .create_product(pb::CreateProductRequest {
            sku: "BOLT-1".into(),
            name: "Bolt".into(),
            price: Some(pb::Money {
                minor_units: 10,
                currency: "EUR".into(),
            }),
            low_stock_threshold: 5,
        })
        .await?;
    let receipt = pb::CreateStockReceiptRequest {
        idempotency_key: "grn-bolts".into(),
        warehouse: String::new(),
        lines: vec![pb::StockReceiptLine {
            sku: "BOLT-1".into(),
            quantity: 2,
        }],
    };
    catalog.create_stock_receipt(receipt.clone()).await?;
    catalog.create_stock_receipt(receipt).await?;

    let dir = stack.mailbox_dir();
    let alerts = eventually("two low-stock emails", MAIL_TIMEOUT, || {
        let dir = dir.clone();
        async move {
            let names: Vec<String> = match std::fs::read_dir(&dir) {
                Ok(entries) => entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("low-stock-alert.") && n.ends_with(".eml"))
                    .collect(),
                Err(_) => Vec::new(),
            };
            Ok((names.len() >= 2).then_some(names))
        }
    })
    .await?;
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    let bodies = alerts
        .iter()
        .map(|n| std::fs::read_to_string(dir.join(n)))
        .collect::<Result<Vec<_>, _>>()?;
    for body in &bodies {
        assert!(body.contains("To: merchant@example.com"), "{body}");
    }
    assert!(bodies.iter().any(|b| b.contains("MUG-1")));
    assert!(bodies.iter().any(|b| b.contains("BOLT-1")));
    // Two alerts, two emails: the replayed receipt raised and sent nothing new.
    let (stored, _) = stack.store.stock().low_stock_alerts(None, 10, None).await?;
    assert_eq!(stored.len(), 2);
    stack.stop_workers()
}

/// The last value of a counter of the worker's `/metrics` for `topic`.
fn counter(metrics: &str, name: &str, topic: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(&format!("topic=\"{topic}\"")))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Outbox rows nobody can read (a truncated payload, a newer writer's
/// topic) sit in the first batch of each relay. They are set aside
/// (`FAILED` with the reason, counted in `ordersaga_outbox_quarantined`)
/// and every order's emails and shipping request still go out.
#[tokio::test]
async fn unreadable_outbox_rows_are_quarantined_and_the_rest_still_flows() -> anyhow::Result<()> {
    let mut stack = Stack::builder().without_worker().start().await?;
    stack.start_smtp(Duration::ZERO).await?;
    let raw = sqlx::AnyPool::connect(&stack.database_url).await?;
    let bad = [
        (
            "bad-email",
            "email",
            r#"{"topic":"email","message":{"Order":{"stage""#,
        ),
        (
            "bad-shipment",
            "shipment",
            r#"{"topic":"fax","message":{}}"#,
        ),
    ];
    for (key, topic, payload) in bad {
        sqlx::query(
            "INSERT INTO outbox (message_key, topic, payload, status, available_at, created_at, \
             updated_at) VALUES ($1, $2, $3, 'PENDING', 0, 0, 0)",
        )
        .bind(key)
        .bind(topic)
        .bind(payload)
        .execute(&raw)
        .await?;
    }
    raw.close().await;
    let addr: std::net::SocketAddr =
        format!("127.0.0.1:{}", ordersaga_tests::free_port()?).parse()?;
    stack.start_worker(WorkerSettings {
        metrics_addr: Some(addr),
        ..Default::default()
    })?;
    stack.product("MUG-1", 1_000, 10).await?;
    let mut ids = Vec::new();
    for customer in ["kim", "lou"] {
        let placed = stack
            .grpc
            .clone()
            .place_order(place(customer, &[("MUG-1", 1)]))
            .await?
            .into_inner();
        let order = stack.terminal_order(&placed.order_id).await?;
        assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
        ids.push(placed.order_id);
    }
    for id in &ids {
        shipment(&stack, id).await?;
    }
    let orders: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mails = by_message_id(&mail(&stack, 4, &orders).await?)?;
    assert_eq!(mails.len(), 4);

    for (key, _, _) in bad {
        let state = stack.store.outbox().state(key).await?.context("row")?;
        assert_eq!(state.status, OutboxStatus::Failed, "{key}");
        let why = state.last_error.unwrap_or_default();
        assert!(why.starts_with("undecodable payload"), "{key}: {why}");
    }
    let url = format!("http://{addr}/metrics");
    let http = reqwest::Client::new();
    eventually("each topic's quarantined row counted", MAIL_TIMEOUT, || {
        let req = http.get(&url);
        async move {
            let body = req.send().await?.text().await?;
            let counted = ["email", "shipment"]
                .iter()
                .all(|t| counter(&body, "ordersaga_outbox_quarantined", t) == Some(1.0));
            Ok(counted.then_some(()))
        }
    })
    .await?;
    stack.stop_workers()
}
