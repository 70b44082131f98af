//! The event outbox's contract on both backends (docs/events.md): steps
//! write their events once, in commit order, only when told to publish;
//! one relay holds the lease at a time; concurrent writers never deadlock;
//! on PostgreSQL a step waiting for a row does not hold up the others.

// Fixture builders take literals that are valid by construction.
#![allow(clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use ordersaga_domain::events::{CatalogEventData, DomainEvent, OrderEventData};
use ordersaga_domain::{
    CatalogEvent, Compensation, Currency, CustomerId, FailureReason, Money, OperatorNote,
    OrderEvent, OrderId, OrderInput, OrderLine, Sku, TransactionId, WarehouseId,
};
use ordersaga_store::{NewStockReceipt, Store, StoredEvent, now_ms};
use ordersaga_tests::{TestDatabase, create_product};
use sqlx::{Connection, Row};

ordersaga_tests::both_backends!(
    steps_write_their_events_once_in_commit_order,
    without_events_no_rows_are_written,
    one_relay_holds_the_lease_at_a_time,
    needs_attention_events_carry_no_operator_text,
    concurrent_orders_and_receipts_with_alerts_do_not_deadlock,
);

fn order(customer: &str, sku: &Sku, quantity: i64) -> OrderInput {
    let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
    let eur = |minor| Money::new(minor, Currency::parse("EUR").expect("EUR"));
    OrderInput {
        order_id,
        transaction_id: TransactionId::for_order(&order_id),
        customer_id: CustomerId::parse(customer).expect("valid customer"),
        lines: vec![OrderLine {
            sku: sku.clone(),
            quantity,
            unit_price: eur(1_000),
        }],
        total: eur(quantity * 1_000),
        customer_email: None,
        shipping_address: None,
        payment: Default::default(),
    }
}

async fn pending(store: &Store) -> anyhow::Result<Vec<StoredEvent>> {
    Ok(store.event_outbox().pending(10_000).await?)
}

fn name(e: &StoredEvent) -> &str {
    e.nats_subject.rsplit('.').next().unwrap_or_default()
}

async fn steps_write_their_events_once_in_commit_order(store: Store) -> anyhow::Result<()> {
    let store = store.with_events(true);
    let mug = create_product(&store, "MUG.1", 1_000, 3, 1).await?;
    let o = order("alice", &mug, 2);
    // Each step twice: a retried step writes nothing again.
    for _ in 0..2 {
        store.orders().place(&o, &[]).await?;
        store
            .payments()
            .ensure(&o.order_id, &o.transaction_id, o.total)
            .await?;
        store.payments().record_outcome(&o.order_id, Ok(())).await?;
        store.stock().deduct(&o.order_id).await?.expect("in stock");
        store.orders().confirm(&o.order_id, &[]).await?;
    }
    let events = pending(&store).await?;
    let names: Vec<&str> = events.iter().map(name).collect();
    assert_eq!(
        names,
        [
            "ProductCreated",
            "StockReceiptCreated",
            "OrderPlaced",
            "PaymentProcessed",
            // 3 - 2 = 1 <= threshold 1, in the deduction's transaction.
            "LowStockAlertTriggered",
            "InventoryProcessed",
            "OrderConfirmed",
        ]
    );
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    let placed = &events[2];
    let expected = DomainEvent::order(&o.order_id, OrderEvent::OrderPlaced);
    assert_eq!(placed.event_id, expected.id.to_string());
    assert_eq!(placed.event_type, "shop.order.placed.v1");
    assert_eq!(placed.subject, o.order_id.to_string());
    let confirmed: OrderEventData = serde_json::from_str(&events[6].data)?;
    assert_eq!(confirmed.sequence, 4);
    assert_eq!(confirmed.status, "CONFIRMED");
    assert_eq!(confirmed.customer_id.as_str(), "alice");
    assert_eq!(confirmed.lines.len(), 1);
    assert_eq!(confirmed.lines[0].quantity, 2);
    let paid: OrderEventData = serde_json::from_str(&events[3].data)?;
    assert_eq!(paid.payment_status.as_deref(), Some("CAPTURED"));
    let created: CatalogEventData = serde_json::from_str(&events[0].data)?;
    assert_eq!(created.low_stock_threshold, Some(1));
    assert_eq!(events[0].nats_subject, "shop.catalog.MUG~1.ProductCreated");
    assert_eq!(
        events[0].event_id,
        DomainEvent::catalog(&mug, CatalogEvent::ProductCreated, "product-created/MUG.1")
            .id
            .to_string()
    );

    // Every line once, in the order's line order.
    let plate = create_product(&store, "PLATE", 500, 10, 0).await?;
    let mut two = order("bob", &plate, 3);
    two.lines.push(OrderLine {
        sku: mug.clone(),
        quantity: 1,
        unit_price: two.lines[0].unit_price,
    });
    two.total = Money::new(4_000, two.total.currency);
    store.orders().place(&two, &[]).await?;
    let events = pending(&store).await?;
    let placed: OrderEventData = serde_json::from_str(&events[events.len() - 1].data)?;
    let lines: Vec<(&str, i64)> = placed
        .lines
        .iter()
        .map(|l| (l.sku.as_str(), l.quantity))
        .collect();
    assert_eq!(lines, [("PLATE", 3), ("MUG.1", 1)]);
    assert_eq!(placed.sequence, 1);

    // Published ones leave the backlog and are pruned once old enough.
    store.event_outbox().published(seqs[0]..=seqs[2]).await?;
    assert_eq!(store.event_outbox().backlog().await?, 7);
    assert_eq!(pending(&store).await?[0].seq, seqs[3]);
    assert_eq!(store.event_outbox().prune(now_ms() + 1).await?, 3);
    assert_eq!(store.event_outbox().count().await?, 7);
    Ok(())
}

async fn needs_attention_events_carry_no_operator_text(store: Store) -> anyhow::Result<()> {
    let store = store.with_events(true);
    let mug = create_product(&store, "MUG", 1_000, 1, 0).await?;
    let o = order("carol", &mug, 2);
    store.orders().place(&o, &[]).await?;
    store
        .payments()
        .ensure(&o.order_id, &o.transaction_id, o.total)
        .await?;
    store.payments().record_outcome(&o.order_id, Ok(())).await?;
    let short = store.stock().deduct(&o.order_id).await?;
    assert!(short.is_err());
    let refused = "gateway refused (422 REFUND_DENIED)";
    store
        .attention()
        .park(&o.order_id, Compensation::RefundPayment, refused)
        .await?;
    let cancel = FailureReason::Cancelled {
        message: "call me on +49 30 1234".to_string(),
    };
    store.orders().fail(&o.order_id, &cancel, &[]).await?;
    let note = OperatorNote::new("ops-ana", "refunded to IBAN DE02 1234", true)?;
    store.attention().close(&o.order_id, &note).await?;

    let events = pending(&store).await?;
    let of_order: Vec<&StoredEvent> = events
        .iter()
        .filter(|e| e.subject == o.order_id.to_string())
        .collect();
    let names: Vec<&str> = of_order.iter().map(|e| name(e)).collect();
    assert_eq!(
        names,
        [
            "OrderPlaced",
            "PaymentProcessed",
            "InventoryProcessFailed",
            "PaymentRefundFailed",
            "OrderFailed",
            "AttentionClosed"
        ]
    );
    let parked: OrderEventData = serde_json::from_str(&of_order[3].data)?;
    assert_eq!(parked.reason.as_deref(), Some(refused));
    assert_eq!(parked.payment_status.as_deref(), Some("REFUND_FAILED"));
    assert_eq!(of_order[3].event_type, "shop.payment.refund_failed.v1");
    assert_eq!(of_order[5].event_type, "shop.attention.closed.v1");
    let failed: OrderEventData = serde_json::from_str(&of_order[4].data)?;
    assert_eq!(failed.failure_code.as_deref(), Some("CANCELLED"));
    for e in &of_order {
        for typed in ["+49", "IBAN", "ops-ana"] {
            assert!(!e.data.contains(typed), "{typed} in {}", e.data);
        }
    }
    Ok(())
}

async fn without_events_no_rows_are_written(store: Store) -> anyhow::Result<()> {
    assert!(!store.publishes_events());
    let mug = create_product(&store, "MUG", 1_000, 3, 5).await?;
    let o = order("bob", &mug, 1);
    store.orders().place(&o, &[]).await?;
    store.stock().deduct(&o.order_id).await?.expect("in stock");
    assert_eq!(store.event_outbox().count().await?, 0);
    Ok(())
}

async fn one_relay_holds_the_lease_at_a_time(store: Store) -> anyhow::Result<()> {
    let outbox = store.event_outbox();
    let later = now_ms() + 60_000;
    assert!(outbox.take_lease("a", later).await?);
    assert!(!outbox.take_lease("b", later).await?, "a holds it");
    assert!(outbox.take_lease("a", later + 1).await?, "a renews");
    outbox.release_lease("b").await?;
    assert!(!outbox.take_lease("b", later).await?, "only a lets it go");
    outbox.release_lease("a").await?;
    assert!(outbox.take_lease("b", now_ms() - 1).await?);
    // b's lease has run out (a crashed relay): a takes over.
    assert!(outbox.take_lease("a", later).await?);
    Ok(())
}

async fn concurrent_orders_and_receipts_with_alerts_do_not_deadlock(
    store: Store,
) -> anyhow::Result<()> {
    let store = store.with_events(true);
    // Thresholds high enough that most stock changes cross them: alerts
    // (catalog events) in the middle of multi-sku transactions.
    let a = create_product(&store, "A", 1_000, 40, 30).await?;
    let b = create_product(&store, "B", 1_000, 40, 30).await?;
    let mut tasks = Vec::new();
    for n in 0..16 {
        let store = store.clone();
        let (a, b) = (a.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            if n % 4 == 0 {
                store
                    .stock()
                    .receive(&NewStockReceipt {
                        idempotency_key: format!("delivery-{n}"),
                        warehouse_id: WarehouseId::main(),
                        lines: vec![(b.clone(), 5), (a.clone(), 5)],
                    })
                    .await?;
                return anyhow::Ok(());
            }
            let sku = if n % 2 == 0 { &a } else { &b };
            let o = order(&format!("c{n}"), sku, 2);
            store.orders().place(&o, &[]).await?;
            store.stock().deduct(&o.order_id).await?.expect("in stock");
            store.stock().release(&o.order_id).await?;
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let events = pending(&store).await?;
    let ids: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "every event once");
    // Each order's events in its own order.
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for e in events.iter().filter(|e| e.source == "/ordersaga/orders") {
        let data: OrderEventData = serde_json::from_str(&e.data)?;
        let prev = last.insert(e.subject.clone(), data.sequence).unwrap_or(0);
        assert_eq!(data.sequence, prev + 1, "{}", name(e));
    }
    assert_eq!(last.len(), 12);
    Ok(())
}

/// Events are numbered when their transaction commits, not when it begins:
/// a deduction waiting for a product row another transaction holds keeps
/// no lock that an unrelated order's step needs, and the events still
/// come out in commit order. (Numbered at the start, every write on the
/// database queued behind the waiting one: the production shape's local
/// steps took 80-170 ms, bench/notes.md.)
#[tokio::test]
async fn postgres_a_step_waiting_for_a_row_holds_up_no_other_step() -> anyhow::Result<()> {
    let db = TestDatabase::postgres().await?;
    let store = db.store().await?.with_events(true);
    let mug = create_product(&store, "MUG.1", 1_000, 5, 0).await?;
    let cup = create_product(&store, "CUP.1", 1_000, 5, 0).await?;
    let first = order("alice", &mug, 1);
    store.orders().place(&first, &[]).await?;

    // Someone else holds the mug's row (an operator's stock correction, say).
    let mut holder = sqlx::AnyConnection::connect(db.url()).await?;
    let mut held = holder.begin().await?;
    sqlx::query("SELECT on_hand FROM products WHERE sku = $1 FOR UPDATE")
        .bind(mug.as_str())
        .fetch_one(&mut *held)
        .await?;
    let waiting = tokio::spawn({
        let store = store.clone();
        let id = first.order_id;
        async move { store.stock().deduct(&id).await }
    });
    // Until the deduction is queued on that row.
    let mut watcher = sqlx::AnyConnection::connect(db.url()).await?;
    let mut polls = 0;
    loop {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watcher)
        .await?;
        if row.try_get::<i64, _>("n")? > 0 {
            break;
        }
        polls += 1;
        assert!(polls < 3_000, "the deduction never waited for the held row");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let second = order("bob", &cup, 1);
    let placed =
        tokio::time::timeout(Duration::from_secs(20), store.orders().place(&second, &[])).await;
    // Let the deduction go whatever happened, so a failure ends cleanly.
    held.commit().await?;
    assert!(
        placed.is_ok(),
        "placing another order waited for the deduction of the first"
    );
    placed??;
    waiting.await??.expect("in stock");

    let events = pending(&store).await?;
    let seq_of = |subject: &OrderId, event: &str| {
        events
            .iter()
            .find(|e| e.subject == subject.to_string() && name(e) == event)
            .map(|e| e.seq)
    };
    let placed_second = seq_of(&second.order_id, "OrderPlaced").expect("second placed");
    let deducted_first = seq_of(&first.order_id, "InventoryProcessed").expect("first deducted");
    assert!(
        placed_second < deducted_first,
        "seq is commit order: the second order committed first"
    );
    drop(watcher);
    drop(holder);
    store.close().await;
    Ok(())
}
