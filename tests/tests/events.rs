//! The shop's domain events on NATS JetStream (docs/events.md), end to end:
//! real Temporal dev server, worker and API, and a real `nats-server -js`
//! of each test's own (free port, own storage) so a test may stop it.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::Context;
use cloudevents::AttributesReader;
use ordersaga_domain::events::{DomainEvent, EventLine, OrderEventData};
use ordersaga_domain::{
    CatalogEvent, Currency, CustomerId, Money, OrderEvent, OrderId, Sku, TransactionId,
};
use ordersaga_events::cloud::{self, data_json};
use ordersaga_events::read::StreamEvent;
use ordersaga_events::{StreamSettings, nats};
use ordersaga_proto::v1 as pb;
use ordersaga_store::StoredEvent;
use ordersaga_tests::{NatsServer, ORDER_TIMEOUT, Stack, built_binary, eventually, place_request};
use serde_json::{Value, json};

/// Waits until the stream holds `n` events and returns them.
async fn stream_with(nats: &NatsServer, n: usize) -> anyhow::Result<Vec<StreamEvent>> {
    eventually(
        &format!("{n} events in the stream"),
        ORDER_TIMEOUT,
        || async {
            let events = nats.events().await?;
            Ok((events.len() >= n).then_some(events))
        },
    )
    .await
}

/// The names of the order's events in stream order.
fn of_order(events: &[StreamEvent], order_id: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event.subject() == Some(order_id))
        .map(|e| {
            e.nats_subject
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// Every event's id appears once.
fn assert_unique(events: &[StreamEvent]) {
    let mut seen = HashSet::new();
    for e in events {
        assert!(
            seen.insert(e.event.id().to_string()),
            "duplicate {}",
            e.event.id()
        );
    }
}

/// Every order's events are in the order of its `sequence` (commit order).
fn assert_ordered_per_order(events: &[StreamEvent]) {
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.nats_subject.starts_with("shop.orders."))
    {
        let data: OrderEventData = serde_json::from_value(data_json(&e.event).unwrap_or_default())
            .unwrap_or_else(|err| panic!("order data of {}: {err}", e.nats_subject));
        let prev = last
            .insert(data.order_id.to_string(), data.sequence)
            .unwrap_or(0);
        assert_eq!(
            data.sequence,
            prev + 1,
            "gap or reorder at {}",
            e.nats_subject
        );
    }
}

async fn place(
    stack: &Stack,
    customer: &str,
    lines: &[(&str, i64)],
) -> anyhow::Result<pb::PlaceOrderResponse> {
    Ok(stack
        .grpc
        .clone()
        .place_order(place_request(customer, lines, ""))
        .await?
        .into_inner())
}

#[tokio::test]
async fn confirmed_declined_and_refunded_orders_publish_exactly_their_events() -> anyhow::Result<()>
{
    let nats = NatsServer::start().await?;
    let stack = Stack::builder().events(nats.url()).start().await?;
    // Catalog changes through the API: each is its event.
    let created = stack
        .http
        .post(format!("{}/v1/products", stack.http_base))
        .json(&json!({"sku": "CAP.BLUE", "name": "Cap", "price": {"minor_units": 1_999, "currency": "EUR"}, "low_stock_threshold": 5}))
        .send()
        .await?;
    assert_eq!(created.status(), 201);
    let received = stack
        .http
        .post(format!("{}/v1/stock-receipts", stack.http_base))
        .header("Idempotency-Key", "delivery-1")
        .json(&json!({"lines": [{"sku": "CAP.BLUE", "quantity": 6}]}))
        .send()
        .await?;
    assert_eq!(received.status(), 201);
    stack.product("GOLD-BAR", 250_000, 3).await?;
    stack.product("LAST-ONE", 4_999, 1).await?;

    // Confirmed (and CAP.BLUE drops to 4 <= 5: a low-stock alert),
    // declined (2500.00 EUR), paid but out of stock (refunded).
    let confirmed = place(&stack, "alice", &[("CAP.BLUE", 2)]).await?;
    let declined = place(&stack, "bob", &[("GOLD-BAR", 1)]).await?;
    let refunded = place(&stack, "carol", &[("LAST-ONE", 2)]).await?;
    for p in [&confirmed, &declined, &refunded] {
        stack.terminal_order(&p.order_id).await?;
    }

    let want = [
        (
            &confirmed,
            vec![
                "OrderPlaced",
                "PaymentProcessed",
                "InventoryProcessed",
                "OrderConfirmed",
            ],
        ),
        (
            &declined,
            vec!["OrderPlaced", "PaymentProcessFailed", "OrderFailed"],
        ),
        (
            &refunded,
            vec![
                "OrderPlaced",
                "PaymentProcessed",
                "InventoryProcessFailed",
                "PaymentRefunded",
                "OrderFailed",
            ],
        ),
    ];
    // 3 + 1 + 1 catalog events (CAP.BLUE created, received, alerted; the
    // two test products created and received through the store: 4 more).
    let order_events: usize = want.iter().map(|(_, names)| names.len()).sum();
    let total = order_events + 3 + 4;
    let events = stream_with(&nats, total).await?;
    assert_eq!(events.len(), total, "no more than expected");
    assert_unique(&events);
    assert_ordered_per_order(&events);

    for (placed, names) in &want {
        assert_eq!(
            of_order(&events, &placed.order_id),
            *names,
            "{}",
            placed.order_id
        );
        let order_id = OrderId::parse(&placed.order_id)?;
        for e in events
            .iter()
            .filter(|e| e.event.subject() == Some(placed.order_id.as_str()))
        {
            let name: OrderEvent = e
                .nats_subject
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .parse()
                .map_err(anyhow::Error::msg)?;
            // Stable ids: derived from the order and the event, nothing else.
            assert_eq!(
                e.event.id(),
                DomainEvent::order(&order_id, name).id.to_string()
            );
            assert_eq!(
                e.event.ty(),
                ordersaga_domain::events::order_event_type(name)
            );
            assert_eq!(e.event.source().to_string(), "/ordersaga/orders");
            assert_eq!(e.event.datacontenttype(), Some("application/json"));
            assert!(e.event.time().is_some());
            let data: OrderEventData =
                serde_json::from_value(data_json(&e.event).context("data")?)?;
            assert_eq!(data.transaction_id.to_string(), placed.transaction_id);
            // No personal data beyond the customer id.
            let raw = serde_json::to_string(&e.event)?;
            for personal in ["@example.com", "Test Customer", "Test Street", "10115"] {
                assert!(!raw.contains(personal), "{personal} in {raw}");
            }
        }
    }
    let confirmed_data: OrderEventData = events
        .iter()
        .find(|e| e.nats_subject == format!("shop.orders.{}.OrderConfirmed", confirmed.order_id))
        .and_then(|e| data_json(&e.event))
        .map(serde_json::from_value)
        .context("OrderConfirmed")??;
    assert_eq!(confirmed_data.customer_id.as_str(), "alice");
    assert_eq!(confirmed_data.status, "CONFIRMED");
    assert_eq!(confirmed_data.lines.len(), 1);
    assert_eq!(
        (
            confirmed_data.lines[0].quantity,
            confirmed_data.lines[0].unit_price_minor
        ),
        (2, 1_999)
    );
    let declined_failed = events
        .iter()
        .find(|e| e.nats_subject == format!("shop.orders.{}.OrderFailed", declined.order_id))
        .and_then(|e| data_json(&e.event))
        .context("OrderFailed")?;
    assert_eq!(declined_failed["failure_code"], "PAYMENT_DECLINED");

    // The catalog: the product's events on its subject (the sku's dot
    // becomes `~`), with the sku as CloudEvents subject.
    let cap: Vec<&StreamEvent> = events
        .iter()
        .filter(|e| e.event.subject() == Some("CAP.BLUE"))
        .collect();
    let cap_subjects: Vec<&str> = cap.iter().map(|e| e.nats_subject.as_str()).collect();
    assert_eq!(
        cap_subjects,
        [
            "shop.catalog.CAP~BLUE.ProductCreated",
            "shop.catalog.CAP~BLUE.StockReceiptCreated",
            "shop.catalog.CAP~BLUE.LowStockAlertTriggered"
        ]
    );
    assert_eq!(cap[0].event.ty(), "shop.product.created.v1");
    let product = data_json(&cap[0].event).context("data")?;
    assert_eq!(product["name"], "Cap");
    assert_eq!(product["price"]["minor"], 1_999);
    let alert = data_json(&cap[2].event).context("data")?;
    assert_eq!(alert["on_hand"], 4);
    assert_eq!(alert["cause"], format!("order:{}", confirmed.order_id));
    let sku = Sku::parse("CAP.BLUE")?;
    assert_eq!(
        cap[0].event.id(),
        DomainEvent::catalog(
            &sku,
            CatalogEvent::ProductCreated,
            "product-created/CAP.BLUE"
        )
        .id
        .to_string()
    );

    // The CLI reads the same: `replay` prints every event as CloudEvents JSON.
    let out = tokio::process::Command::new(built_binary("ordersaga-events")?)
        .args(["replay", "--since", "start"])
        .env("ORDERSAGA_NATS_URL", nats.url())
        .output()
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), total);
    assert_eq!(lines[0]["specversion"], "1.0");
    assert_eq!(lines[0]["id"], events[0].event.id());
    Ok(())
}

#[tokio::test]
async fn without_a_nats_url_no_event_rows_are_written() -> anyhow::Result<()> {
    let stack = Stack::builder().start().await?;
    stack.product("MUG-1", 1_000, 5).await?;
    let placed = place(&stack, "dave", &[("MUG-1", 1)]).await?;
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    assert_eq!(stack.store.event_outbox().count().await?, 0);
    Ok(())
}

#[tokio::test]
async fn nats_down_while_orders_run_then_every_event_arrives_once() -> anyhow::Result<()> {
    let mut nats = NatsServer::start().await?;
    let stack = Stack::builder().events(nats.url()).start().await?;
    stack.product("MUG-1", 1_000, 100).await?;
    // The relay has made the stream and published the catalog's events.
    stream_with(&nats, 2).await?;

    nats.stop().await?;
    let mut placed = Vec::new();
    for n in 0..6 {
        placed.push(place(&stack, &format!("erin-{n}"), &[("MUG-1", 1)]).await?);
    }
    // The saga never waits for the broker: every order completes.
    for p in &placed {
        let order = stack.terminal_order(&p.order_id).await?;
        assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    }
    assert_eq!(
        stack.store.event_outbox().backlog().await?,
        6 * 4,
        "events wait in the outbox"
    );

    nats.start_again().await?;
    let total = 2 + 6 * 4;
    let events = stream_with(&nats, total).await?;
    eventually("an empty outbox", ORDER_TIMEOUT, || async {
        Ok((stack.store.event_outbox().backlog().await? == 0).then_some(()))
    })
    .await?;
    let events = if events.len() < total {
        nats.events().await?
    } else {
        events
    };
    assert_eq!(events.len(), total, "no gap, no duplicate");
    assert_unique(&events);
    assert_ordered_per_order(&events);
    for p in &placed {
        assert_eq!(
            of_order(&events, &p.order_id),
            [
                "OrderPlaced",
                "PaymentProcessed",
                "InventoryProcessed",
                "OrderConfirmed"
            ]
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_worker_killed_while_relaying_loses_nothing_and_repeats_are_dropped() -> anyhow::Result<()>
{
    let nats = NatsServer::start().await?;
    let stack = Stack::builder()
        .events(nats.url())
        .without_worker()
        .start()
        .await?;
    stack.product("MUG-1", 1_000, 1_000).await?;
    let mut doomed = stack.spawn_worker_process(&[])?;
    let mut placed = Vec::new();
    for n in 0..20 {
        placed.push(place(&stack, &format!("frank-{n}"), &[("MUG-1", 1)]).await?);
    }
    // Kill the worker (its relay and its sagas) once it has published some.
    eventually("the relay publishing", ORDER_TIMEOUT, || async {
        Ok((nats.events().await?.len() > 2).then_some(()))
    })
    .await?;
    doomed.start_kill()?; // SIGKILL
    doomed.wait().await?;
    // A crash between publishing and marking a batch published: the
    // successor publishes those events again. Unmark everything to make
    // that window as wide as it gets; the stream must drop every repeat.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&stack.database_url).await?;
    sqlx::query("UPDATE event_outbox SET published_at = NULL")
        .execute(&pool)
        .await?;
    pool.close().await;

    let mut successor = stack.spawn_worker_process(&[])?;
    for p in &placed {
        stack.terminal_order(&p.order_id).await?;
    }
    let total = usize::try_from(stack.store.event_outbox().count().await?)?;
    assert_eq!(total, 2 + 20 * 4);
    eventually("an empty outbox", ORDER_TIMEOUT, || async {
        Ok((stack.store.event_outbox().backlog().await? == 0).then_some(()))
    })
    .await?;
    let events = nats.events().await?;
    assert_eq!(events.len(), total, "every event once");
    assert_unique(&events);
    assert_ordered_per_order(&events);
    successor.start_kill()?;
    successor.wait().await?;
    Ok(())
}

/// Publishes a synthetic `OrderConfirmed` for the projection tests.
async fn publish_confirmed(
    js: &async_nats::jetstream::Context,
    n: u32,
    day: &str,
    lines: &[(&str, i64, i64)],
    currency: &str,
) -> anyhow::Result<()> {
    let order_id = OrderId::from_uuid(uuid::Uuid::from_u128(u128::from(n) + 1));
    let currency = Currency::parse(currency)?;
    let lines: Vec<EventLine> = lines
        .iter()
        .map(|(sku, q, p)| {
            Ok(EventLine {
                sku: Sku::parse(sku)?,
                quantity: *q,
                unit_price_minor: *p,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let total = lines.iter().map(|l| l.quantity * l.unit_price_minor).sum();
    let data = OrderEventData {
        order_id,
        customer_id: CustomerId::parse("projection")?,
        transaction_id: TransactionId::from_uuid(uuid::Uuid::from_u128(u128::from(n) + 1_000_000)),
        sequence: 4,
        total: Money::new(total, currency),
        lines,
        status: "CONFIRMED".to_string(),
        payment_status: None,
        failure_code: None,
        reason: None,
        warehouse: None,
    };
    let event = DomainEvent::order(&order_id, OrderEvent::OrderConfirmed);
    let time = chrono::DateTime::parse_from_rfc3339(&format!("{day}T12:00:00Z"))?;
    let stored = StoredEvent {
        seq: i64::from(n),
        event_id: event.id.to_string(),
        event_type: event.event_type,
        source: event.source.to_string(),
        subject: event.subject,
        nats_subject: event.nats_subject.clone(),
        data: serde_json::to_string(&data)?,
        occurred_at_ms: time.timestamp_millis(),
    };
    let message = async_nats::jetstream::message::PublishMessage::build()
        .message_id(&stored.event_id)
        .payload(cloud::encode(&stored)?.into());
    js.send_publish(event.nats_subject, message).await?.await?;
    Ok(())
}

fn projection_cmd(
    nats: &NatsServer,
    durable: &str,
    db: &Path,
    extra: &[&str],
) -> anyhow::Result<tokio::process::Command> {
    let mut cmd = tokio::process::Command::new(built_binary("ordersaga-events")?);
    cmd.args(["project", "--durable", durable, "--db"])
        .arg(format!("sqlite://{}?mode=rwc", db.display()))
        .args(extra)
        .env("ORDERSAGA_NATS_URL", nats.url())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    Ok(cmd)
}

async fn sales(db: &Path) -> anyhow::Result<Vec<ordersaga_events::projection::SalesRow>> {
    let db =
        ordersaga_events::projection::SalesDb::open(&format!("sqlite://{}?mode=rwc", db.display()))
            .await?;
    Ok(db.totals(None).await?)
}

#[tokio::test]
async fn the_projection_restarted_mid_stream_ends_with_the_same_totals() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let js = nats.jetstream().await?;
    nats::ensure_stream(&js, &StreamSettings::default()).await?;
    // 400 confirmed orders over three days, two currencies, a sku twice in
    // one order; then 40 of them published again (the stream drops them).
    let days = ["2026-11-30", "2026-12-01", "2026-12-02"];
    let mut expected: BTreeMap<(String, String, String), (i64, i64, i64)> = BTreeMap::new();
    for n in 0..400u32 {
        let day = days[n as usize % 3];
        let currency = if n % 7 == 0 { "USD" } else { "EUR" };
        let q = i64::from(n % 5) + 1;
        let lines = [
            ("MUG-1", q, 1_299),
            ("TEE-1", 1, 2_499),
            ("MUG-1", 1, 1_299),
        ];
        let lines = if n % 2 == 0 { &lines[..] } else { &lines[..1] };
        publish_confirmed(&js, n, day, lines, currency).await?;
        let mut per_sku: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for (sku, q, p) in lines {
            let e = per_sku.entry(sku).or_default();
            e.0 += q;
            e.1 += q * p;
        }
        for (sku, (units, revenue)) in per_sku {
            let e = expected
                .entry((day.to_string(), sku.to_string(), currency.to_string()))
                .or_default();
            *e = (e.0 + units, e.1 + revenue, e.2 + 1);
        }
    }
    for n in (0..400u32).step_by(10) {
        let day = days[n as usize % 3];
        publish_confirmed(&js, n, day, &[("MUG-1", 99, 1)], "EUR").await?;
    }
    let expected: Vec<(String, String, String, i64, i64, i64)> = expected
        .into_iter()
        .map(|((d, s, c), (u, r, o))| (d, s, c, u, r, o))
        .collect();
    let rows = |v: Vec<ordersaga_events::projection::SalesRow>| -> Vec<(String, String, String, i64, i64, i64)> {
        v.into_iter().map(|r| (r.day, r.sku, r.currency, r.units, r.revenue_minor, r.orders)).collect()
    };

    let dir = tempfile::tempdir()?;
    // Uninterrupted.
    let straight = dir.path().join("straight.db");
    let status = projection_cmd(&nats, "straight", &straight, &["--until-caught-up"])?
        .status()
        .await?;
    assert!(status.success());
    assert_eq!(rows(sales(&straight).await?), expected);

    // SIGKILLed mid-stream (one event per fetch, so it is slow enough to
    // catch half-way), then restarted.
    let interrupted = dir.path().join("interrupted.db");
    let mut first =
        projection_cmd(&nats, "interrupted", &interrupted, &["--batch", "1"])?.spawn()?;
    let db = ordersaga_events::projection::SalesDb::open(&format!(
        "sqlite://{}?mode=rwc",
        interrupted.display()
    ))
    .await?;
    eventually("the projection half-way", ORDER_TIMEOUT, || async {
        Ok((db.applied().await? >= 50).then_some(()))
    })
    .await?;
    first.start_kill()?;
    first.wait().await?;
    let applied = db.applied().await?;
    assert!(applied < 400, "killed mid-stream ({applied} applied)");
    let status = projection_cmd(&nats, "interrupted", &interrupted, &["--until-caught-up"])?
        .status()
        .await?;
    assert!(status.success());
    assert_eq!(rows(sales(&interrupted).await?), expected);
    assert_eq!(db.applied().await?, 400);

    // `sales` shows the totals and no lag.
    let out = tokio::process::Command::new(built_binary("ordersaga-events")?)
        .args([
            "sales",
            "--durable",
            "interrupted",
            "--day",
            "2026-12-01",
            "--db",
        ])
        .arg(format!("sqlite://{}?mode=rwc", interrupted.display()))
        .env("ORDERSAGA_NATS_URL", nats.url())
        .output()
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    assert!(text.contains("lag: 0"), "{text}");
    assert!(
        text.contains("2026-12-01") && !text.contains("2026-11-30"),
        "{text}"
    );
    Ok(())
}
