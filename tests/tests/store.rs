//! The store's contract, run against both backends: an SQLite file and a
//! fresh PostgreSQL database ([`ordersaga_tests::TestDatabase`]). Every case
//! proves that a repeated step has no second effect.

// Fixture builders take literals that are valid by construction.
#![allow(clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ordersaga_activities::gateway::{
    ChargeOutcome, ChargeRefund, ChargeRequest, PaymentGateway, SimulatedGateway,
};
use ordersaga_domain::{
    AttentionStatus, CatalogEvent, Compensation, Currency, CustomerId, EmailAddress, EmailStage,
    FailureReason, Finding, FindingKind, Money, Notification, OperatorNote, OrderEmail, OrderEvent,
    OrderId, OrderInput, OrderLine, OrderStatus, Outgoing, PaymentStatus, Sku, Topic,
    TransactionId, WarehouseId,
};
use ordersaga_store::Ended;
use ordersaga_store::NewStockReceipt;
use ordersaga_store::PaymentRecord;
use ordersaga_store::Store;
use ordersaga_store::StoreError;
use ordersaga_store::{Claimed, KeyClaim};
use ordersaga_store::{NewProduct, OrderQuery, OutboxStatus, PaymentLink, WebhookClaim};
use ordersaga_tests::create_product;

ordersaga_tests::both_backends!(
    place_order_is_idempotent,
    deduction_happens_once_and_matches_the_ledger,
    deduction_is_all_or_nothing_and_its_outcome_sticks,
    release_puts_stock_back_once_and_only_after_a_deduction,
    payment_outcomes_and_refunds_are_recorded_once,
    checkout_payments_keep_their_link_and_are_voided_once,
    confirm_and_fail_are_final,
    a_failed_order_keeps_its_reason_and_refuses_confirm_and_deduction,
    concurrent_orders_never_oversell,
    list_orders_filters_and_pages,
    simulated_gateway_captures_and_refunds_at_most_once,
    receipts_raise_stock_once_per_key_and_store_nothing_for_unknown_skus,
    idempotency_keys_belong_to_the_first_request,
    low_stock_alert_once_per_crossing,
    ratings_only_from_buyers_and_replacement_is_exact,
    outbox_commits_with_the_step_and_relays_claim_each_message_once,
    reconciler_queries_find_each_inconsistency_and_findings_open_once,
    outbox_a_lapsed_claim_settles_nothing,
    webhook_events_are_signalled_once,
    parked_compensations_need_attention_until_resolved_or_closed,
);

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("EUR is a currency"))
}

async fn product(store: &Store, sku: &str, stock: i64) -> anyhow::Result<Sku> {
    create_product(store, sku, 1_000, stock, 0).await
}

fn order(customer: &str, lines: &[(&Sku, i64)]) -> OrderInput {
    let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
    let lines: Vec<OrderLine> = lines
        .iter()
        .map(|(sku, quantity)| OrderLine {
            sku: (*sku).clone(),
            quantity: *quantity,
            unit_price: eur(1_000),
        })
        .collect();
    let total = eur(lines.iter().map(|l| l.quantity * 1_000).sum());
    OrderInput {
        order_id,
        transaction_id: TransactionId::for_order(&order_id),
        customer_id: CustomerId::parse(customer).expect("valid customer"),
        lines,
        total,
        customer_email: None,
        shipping_address: None,
        payment: Default::default(),
    }
}

async fn events(store: &Store, id: &OrderId) -> anyhow::Result<Vec<OrderEvent>> {
    let o = store.orders().get(id).await?.context("order")?;
    Ok(o.events.iter().map(|e| e.event).collect())
}

async fn on_hand(store: &Store, sku: &Sku) -> anyhow::Result<i64> {
    let p = store.catalog().get(sku).await?.context("product")?;
    assert_eq!(
        p.on_hand,
        store.stock().ledger_balance(sku).await?,
        "on-hand = ledger"
    );
    Ok(p.on_hand)
}

async fn place_order_is_idempotent(store: Store) -> anyhow::Result<()> {
    let mug = product(&store, "MUG", 10).await?;
    let tee = product(&store, "TEE", 10).await?;
    let mut o = order("alice", &[(&mug, 2), (&tee, 1), (&mug, 3)]);
    o.lines[1].unit_price = eur(750);
    assert!(store.orders().place(&o, &[]).await?);
    assert!(
        !store.orders().place(&o, &[]).await?,
        "second call creates nothing"
    );
    let rec = store.orders().get(&o.order_id).await?.context("stored")?;
    assert_eq!(rec.summary.status, OrderStatus::Pending);
    assert_eq!(rec.summary.transaction_id, o.transaction_id);
    // Every line once, in the order's order, as placed.
    let lines: Vec<(&str, i64, i64)> = rec
        .lines
        .iter()
        .map(|l| (l.sku.as_str(), l.quantity, l.unit_price_minor))
        .collect();
    assert_eq!(
        lines,
        [("MUG", 2, 1_000), ("TEE", 1, 750), ("MUG", 3, 1_000)]
    );
    assert_eq!(
        events(&store, &o.order_id).await?,
        [OrderEvent::OrderPlaced]
    );
    // Creating a product twice keeps the first.
    let again = store
        .catalog()
        .create(&NewProduct {
            sku: mug.clone(),
            name: "other".into(),
            price: eur(1),
            low_stock_threshold: 0,
        })
        .await;
    assert!(matches!(again, Err(StoreError::ProductExists(_))));
    assert_eq!(on_hand(&store, &mug).await?, 10);
    Ok(())
}

async fn deduction_happens_once_and_matches_the_ledger(store: Store) -> anyhow::Result<()> {
    let mug = product(&store, "MUG", 10).await?;
    let tee = product(&store, "TEE", 5).await?;
    // The same sku on two lines counts once, summed.
    let o = order("alice", &[(&mug, 2), (&tee, 1), (&mug, 1)]);
    store.orders().place(&o, &[]).await?;
    assert_eq!(store.stock().deduct(&o.order_id).await?.map(drop), Ok(()));
    assert_eq!(
        store.stock().deduct(&o.order_id).await?.map(drop),
        Ok(()),
        "retry"
    );
    assert_eq!(on_hand(&store, &mug).await?, 7);
    assert_eq!(on_hand(&store, &tee).await?, 4);
    assert_eq!(
        events(&store, &o.order_id).await?,
        [OrderEvent::OrderPlaced, OrderEvent::InventoryProcessed]
    );
    Ok(())
}

async fn deduction_is_all_or_nothing_and_its_outcome_sticks(store: Store) -> anyhow::Result<()> {
    let mug = product(&store, "MUG", 10).await?;
    let one = product(&store, "ONE", 1).await?;
    let o = order("alice", &[(&mug, 3), (&one, 2)]);
    store.orders().place(&o, &[]).await?;
    let short = store
        .stock()
        .deduct(&o.order_id)
        .await?
        .err()
        .context("short")?;
    assert_eq!(
        (short.sku.as_str(), short.requested, short.available),
        ("ONE", 2, 1)
    );
    assert_eq!(on_hand(&store, &mug).await?, 10, "first line rolled back");
    assert_eq!(on_hand(&store, &one).await?, 1);
    // A retry after a restock still answers as the first attempt did.
    let more = order("bob", &[(&one, 1)]);
    store.orders().place(&more, &[]).await?;
    assert!(store.stock().deduct(&o.order_id).await?.is_err());
    assert_eq!(
        events(&store, &o.order_id).await?,
        [OrderEvent::OrderPlaced, OrderEvent::InventoryProcessFailed]
    );
    Ok(())
}

async fn release_puts_stock_back_once_and_only_after_a_deduction(
    store: Store,
) -> anyhow::Result<()> {
    let mug = product(&store, "MUG", 10).await?;
    let o = order("alice", &[(&mug, 4)]);
    store.orders().place(&o, &[]).await?;
    assert!(
        !store.stock().release(&o.order_id).await?,
        "nothing to undo yet"
    );
    store
        .stock()
        .deduct(&o.order_id)
        .await?
        .ok()
        .context("deducted")?;
    assert_eq!(on_hand(&store, &mug).await?, 6);
    assert!(store.stock().release(&o.order_id).await?);
    assert!(
        !store.stock().release(&o.order_id).await?,
        "second release is a no-op"
    );
    assert_eq!(on_hand(&store, &mug).await?, 10);
    assert!(
        events(&store, &o.order_id)
            .await?
            .contains(&OrderEvent::InventoryReleased)
    );
    Ok(())
}

async fn checkout_payments_keep_their_link_and_are_voided_once(store: Store) -> anyhow::Result<()> {
    let mug = product(&store, "MUG", 10).await?;
    let o = order("alice", &[(&mug, 1)]);
    store.orders().place(&o, &[]).await?;
    assert_eq!(store.payments().link(&o.order_id).await?, None);
    assert_eq!(
        store.orders().paid_by(&o.transaction_id).await?,
        Some(o.order_id)
    );
    let link = PaymentLink {
        gateway_order_id: "GW-1".to_string(),
        approval_url: "http://gw.test/checkoutnow?token=GW-1".to_string(),
    };
    let p = store
        .payments()
        .open_checkout(&o.order_id, &o.transaction_id, o.total, &link, &[])
        .await?;
    assert_eq!(p.status, PaymentStatus::Pending);
    assert_eq!(p.approval_url.as_deref(), Some(link.approval_url.as_str()));
    // A retry with another link keeps the first (the gateway order is one).
    let other = PaymentLink {
        gateway_order_id: "GW-2".to_string(),
        approval_url: "http://gw.test/other".to_string(),
    };
    store
        .payments()
        .open_checkout(&o.order_id, &o.transaction_id, o.total, &other, &[])
        .await?;
    assert_eq!(store.payments().link(&o.order_id).await?, Some(link));
    assert!(
        store
            .payments()
            .record_voided(&o.order_id, "payment expired")
            .await?
    );
    assert!(!store.payments().record_voided(&o.order_id, "again").await?);
    let rec = store.orders().get(&o.order_id).await?.context("order")?;
    let payment = rec.payment.context("payment")?;
    assert_eq!(payment.status, PaymentStatus::Voided);
    assert_eq!(payment.decline_reason.as_deref(), Some("payment expired"));
    assert_eq!(
        events(&store, &o.order_id).await?,
        [OrderEvent::OrderPlaced, OrderEvent::PaymentProcessFailed]
    );
    let unknown = TransactionId::for_order(&OrderId::from_uuid(uuid::Uuid::new_v4()));
    assert_eq!(store.orders().paid_by(&unknown).await?, None);
    Ok(())
}

/// `ProcessPayment`'s first half for `o`.
async fn ensure_payment(store: &Store, o: &OrderInput) -> anyhow::Result<Option<PaymentRecord>> {
    Ok(store
        .payments()
        .ensure(&o.order_id, &o.transaction_id, o.total)
        .await?)
}

/// The payment stored for `o`, if any.
async fn stored_payment(store: &Store, o: &OrderInput) -> anyhow::Result<Option<PaymentRecord>> {
    Ok(store
        .orders()
        .get(&o.order_id)
        .await?
        .context("order")?
        .payment)
}

async fn payment_outcomes_and_refunds_are_recorded_once(store: Store) -> anyhow::Result<()> {
    let mug = product(&store, "MUG", 10).await?;
    let o = order("alice", &[(&mug, 1)]);
    store.orders().place(&o, &[]).await?;
    let p = ensure_payment(&store, &o)
        .await?
        .context("a pending order's payment")?;
    assert_eq!(p.status, PaymentStatus::Pending);
    // What the first attempt answers without reading is what is stored.
    assert_eq!(stored_payment(&store, &o).await?, Some(p.clone()));
    assert_eq!(ensure_payment(&store, &o).await?, Some(p));
    // No payment for an order that failed first; one created before the
    // failure is left as it is, and not answered either.
    let reason = FailureReason::PaymentDeclined {
        message: "cancelled".into(),
    };
    let late = order("carol", &[(&mug, 1)]);
    store.orders().place(&late, &[]).await?;
    store.orders().fail(&late.order_id, &reason, &[]).await?;
    assert_eq!(ensure_payment(&store, &late).await?, None);
    assert_eq!(stored_payment(&store, &late).await?, None);
    let early = order("dave", &[(&mug, 1)]);
    store.orders().place(&early, &[]).await?;
    ensure_payment(&store, &early)
        .await?
        .context("a pending order's payment")?;
    store.orders().fail(&early.order_id, &reason, &[]).await?;
    assert_eq!(ensure_payment(&store, &early).await?, None);
    assert_eq!(
        stored_payment(&store, &early).await?.map(|p| p.status),
        Some(PaymentStatus::Pending)
    );
    let captured = store.payments().record_outcome(&o.order_id, Ok(())).await?;
    assert_eq!(captured.status, PaymentStatus::Captured);
    // The moved row comes back with the update: the payment as stored.
    assert_eq!(Some(&captured), stored_payment(&store, &o).await?.as_ref());
    assert_eq!(captured.transaction_id, o.transaction_id);
    assert_eq!(captured.amount, o.total);
    // A late "declined" for a settled payment changes nothing.
    let late = store
        .payments()
        .record_outcome(&o.order_id, Err("late"))
        .await?;
    assert_eq!(late, captured);
    let declined = order("erin", &[(&mug, 1)]);
    store.orders().place(&declined, &[]).await?;
    ensure_payment(&store, &declined)
        .await?
        .context("a pending order's payment")?;
    let recorded = store
        .payments()
        .record_outcome(&declined.order_id, Err("insufficient funds"))
        .await?;
    assert_eq!(
        (recorded.status, recorded.decline_reason.as_deref()),
        (PaymentStatus::Declined, Some("insufficient funds"))
    );
    assert_eq!(Some(recorded), stored_payment(&store, &declined).await?);
    assert!(store.payments().record_refund(&o.order_id).await?);
    assert!(!store.payments().record_refund(&o.order_id).await?);
    let rec = store.orders().get(&o.order_id).await?.context("order")?;
    assert_eq!(
        rec.payment.context("payment")?.status,
        PaymentStatus::Refunded
    );
    assert_eq!(
        events(&store, &o.order_id).await?,
        [
            OrderEvent::OrderPlaced,
            OrderEvent::PaymentProcessed,
            OrderEvent::PaymentRefunded
        ]
    );
    Ok(())
}

async fn confirm_and_fail_are_final(store: Store) -> anyhow::Result<()> {
    let mug = product(&store, "MUG", 10).await?;
    let a = order("alice", &[(&mug, 1)]);
    let b = order("alice", &[(&mug, 1)]);
    store.orders().place(&a, &[]).await?;
    store.orders().place(&b, &[]).await?;
    // Each says whether it changed the row: the business counters count
    // changes, so a retried step (its workflow task retried) counts once.
    let ended = |status, changed| Ended { status, changed };
    assert_eq!(
        store.orders().confirm(&a.order_id, &[]).await?,
        ended(OrderStatus::Confirmed, true)
    );
    assert_eq!(
        store.orders().confirm(&a.order_id, &[]).await?,
        ended(OrderStatus::Confirmed, false)
    );
    let reason = FailureReason::PaymentDeclined {
        message: "nope".into(),
    };
    assert_eq!(
        store.orders().fail(&a.order_id, &reason, &[]).await?,
        ended(OrderStatus::Confirmed, false)
    );
    assert_eq!(
        store.orders().fail(&b.order_id, &reason, &[]).await?,
        ended(OrderStatus::Failed, true)
    );
    assert_eq!(
        store.orders().fail(&b.order_id, &reason, &[]).await?,
        ended(OrderStatus::Failed, false)
    );
    let rec = store.orders().get(&b.order_id).await?.context("order")?;
    assert_eq!(
        rec.summary.failure_code.as_deref(),
        Some("PAYMENT_DECLINED")
    );
    assert_eq!(
        rec.summary.failure_reason.as_deref(),
        Some("payment declined: nope")
    );
    assert_eq!(
        events(&store, &a.order_id).await?,
        [OrderEvent::OrderPlaced, OrderEvent::OrderConfirmed]
    );
    assert!(
        store
            .orders()
            .confirm(&OrderId::from_uuid(uuid::Uuid::new_v4()), &[])
            .await
            .is_err()
    );
    Ok(())
}

/// The database is the arbiter (issue 11, defect 0): a step that finds its
/// order already failed refuses, and tells the reason the saga must follow.
async fn a_failed_order_keeps_its_reason_and_refuses_confirm_and_deduction(
    store: Store,
) -> anyhow::Result<()> {
    let mug = product(&store, "MUG", 10).await?;
    let lost = order("alice", &[(&mug, 2)]);
    let live = order("alice", &[(&mug, 1)]);
    store.orders().place(&lost, &[]).await?;
    store.orders().place(&live, &[]).await?;
    assert_eq!(store.orders().failure(&live.order_id).await?, None);
    // A cancel's FailOrder committed, then its workflow task was lost.
    let reason = FailureReason::Cancelled {
        message: "changed my mind".into(),
    };
    store.orders().fail(&lost.order_id, &reason, &[]).await?;
    assert_eq!(
        store.orders().failure(&lost.order_id).await?,
        Some(reason.clone())
    );

    // The replayed saga deducts: refused, nothing taken, nothing recorded.
    let refused = store.stock().deduct(&lost.order_id).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::OrderEnded {
                status: OrderStatus::Failed,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(on_hand(&store, &mug).await?, 10);
    assert_eq!(store.stock().ledger_balance(&mug).await?, 10);
    // ... and confirms: the row stays FAILED with its reason.
    assert_eq!(
        store.orders().confirm(&lost.order_id, &[]).await?.status,
        OrderStatus::Failed
    );
    let rec = store.orders().get(&lost.order_id).await?.context("order")?;
    assert_eq!(rec.summary.failure_code.as_deref(), Some("CANCELLED"));
    assert_eq!(
        events(&store, &lost.order_id).await?,
        [OrderEvent::OrderPlaced, OrderEvent::OrderFailed]
    );

    // A deduction decided before the order failed is still reported, so
    // the saga's compensation releases it.
    assert_eq!(
        store.stock().deduct(&live.order_id).await?.map(drop),
        Ok(())
    );
    store.orders().fail(&live.order_id, &reason, &[]).await?;
    assert_eq!(
        store.stock().deduct(&live.order_id).await?.map(drop),
        Ok(())
    );
    assert!(store.stock().release(&live.order_id).await?);
    assert_eq!(on_hand(&store, &mug).await?, 10);
    Ok(())
}

async fn concurrent_orders_never_oversell(store: Store) -> anyhow::Result<()> {
    let last = product(&store, "LAST", 5).await?;
    let orders: Vec<OrderInput> = (0..12).map(|_| order("crowd", &[(&last, 1)])).collect();
    for o in &orders {
        store.orders().place(o, &[]).await?;
    }
    let tasks: Vec<_> = orders
        .iter()
        .map(|o| {
            let store = store.clone();
            let id = o.order_id;
            tokio::spawn(async move { store.stock().deduct(&id).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await??.is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 5, "exactly the available units are sold");
    assert_eq!(on_hand(&store, &last).await?, 0);
    Ok(())
}

async fn list_orders_filters_and_pages(store: Store) -> anyhow::Result<()> {
    let mug = product(&store, "MUG", 100).await?;
    let mut alice = Vec::new();
    for _ in 0..5 {
        let o = order("alice", &[(&mug, 1)]);
        store.orders().place(&o, &[]).await?;
        alice.push(o.order_id);
    }
    let bob = order("bob", &[(&mug, 1)]);
    store.orders().place(&bob, &[]).await?;
    store.orders().confirm(&alice[0], &[]).await?;

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let (page, next) = store
            .orders()
            .list(&OrderQuery {
                customer_id: Some(CustomerId::parse("alice")?),
                limit: 2,
                after,
                ..Default::default()
            })
            .await?;
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|o| o.order_id));
        match next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    seen.sort();
    alice.sort();
    assert_eq!(seen, alice);
    let (confirmed, next) = store
        .orders()
        .list(&OrderQuery {
            status: Some(OrderStatus::Confirmed),
            limit: 10,
            ..Default::default()
        })
        .await?;
    assert_eq!(confirmed.len(), 1);
    assert!(next.is_none());
    Ok(())
}

async fn simulated_gateway_captures_and_refunds_at_most_once(store: Store) -> anyhow::Result<()> {
    let gw = Arc::new(SimulatedGateway::new(store.clone(), Duration::ZERO));
    let txn = TransactionId::from_uuid(uuid::Uuid::new_v4());
    let charge = ChargeRequest {
        transaction_id: txn,
        amount: eur(1_999),
    };
    assert_eq!(gw.charge(&charge).await?, ChargeOutcome::Captured);
    assert_eq!(gw.charge(&charge).await?, ChargeOutcome::Captured);
    assert_eq!(gw.refund(&txn).await?, ChargeRefund::Refunded);
    assert_eq!(gw.refund(&txn).await?, ChargeRefund::Refunded);
    let books = gw.ledger(&txn).await?.context("books")?;
    assert_eq!(
        (books.charge_requests, books.captures, books.refunds),
        (2, 1, 1)
    );

    let declined = TransactionId::from_uuid(uuid::Uuid::new_v4());
    let big = ChargeRequest {
        transaction_id: declined,
        amount: eur(250_000),
    };
    assert!(matches!(
        gw.charge(&big).await?,
        ChargeOutcome::Declined { .. }
    ));
    assert_eq!(gw.refund(&declined).await?, ChargeRefund::NothingCaptured);
    let never = TransactionId::from_uuid(uuid::Uuid::new_v4());
    assert_eq!(gw.refund(&never).await?, ChargeRefund::NothingCaptured);
    Ok(())
}

fn receipt(key: &str, lines: &[(&Sku, i64)]) -> NewStockReceipt {
    NewStockReceipt {
        idempotency_key: key.to_string(),
        warehouse_id: WarehouseId::main(),
        lines: lines.iter().map(|(s, q)| ((*s).clone(), *q)).collect(),
    }
}

async fn receipts_raise_stock_once_per_key_and_store_nothing_for_unknown_skus(
    store: Store,
) -> anyhow::Result<()> {
    let mug = product(&store, "MUG", 0).await?;
    let tee = product(&store, "TEE", 0).await?;
    let first = store
        .stock()
        .receive(&receipt("grn-1", &[(&mug, 5), (&tee, 2), (&mug, 1)]))
        .await?;
    assert!(first.created);
    let again = store
        .stock()
        .receive(&receipt("grn-1", &[(&mug, 5), (&tee, 2), (&mug, 1)]))
        .await?;
    assert!(!again.created);
    assert_eq!(again.receipt_id, first.receipt_id);
    assert_eq!(again.lines, first.lines, "the first receipt is answered");
    // The same key with other lines is another document: refused.
    let reused = store.stock().receive(&receipt("grn-1", &[(&mug, 5)])).await;
    assert!(
        matches!(reused, Err(StoreError::KeyReused(_))),
        "{reused:?}"
    );
    assert_eq!(on_hand(&store, &mug).await?, 6);
    assert_eq!(on_hand(&store, &tee).await?, 2);

    let ghost = Sku::parse("GHOST")?;
    let err = store
        .stock()
        .receive(&receipt("grn-2", &[(&mug, 3), (&ghost, 1)]))
        .await;
    assert!(matches!(err, Err(StoreError::UnknownProduct(_))), "{err:?}");
    assert_eq!(on_hand(&store, &mug).await?, 6, "nothing of grn-2 stayed");
    // The failed key is still free.
    assert!(
        store
            .stock()
            .receive(&receipt("grn-2", &[(&mug, 3)]))
            .await?
            .created
    );
    assert_eq!(on_hand(&store, &mug).await?, 9);
    let events: Vec<CatalogEvent> = store
        .catalog()
        .events(&mug)
        .await?
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(
        events
            .iter()
            .filter(|e| **e == CatalogEvent::StockReceiptCreated)
            .count(),
        2
    );
    assert_eq!(events.first(), Some(&CatalogEvent::ProductCreated));
    Ok(())
}

async fn idempotency_keys_belong_to_the_first_request(store: Store) -> anyhow::Result<()> {
    let customer = CustomerId::parse("erin")?;
    let claim = |fingerprint: &str, minor: i64| KeyClaim {
        customer_id: customer.clone(),
        key: "k-1".into(),
        fingerprint: fingerprint.into(),
        // Order ids are random; the key maps to the first claim's.
        order_id: OrderId::from_uuid(uuid::Uuid::new_v4()),
        total: eur(minor),
    };
    // 20 racing claims, two different requests: exactly one claim wins,
    // its request is a replay, the other request is refused.
    let claims: Vec<KeyClaim> = (0..20)
        .map(|n| {
            if n % 2 == 0 {
                claim("aaaa", 1_000)
            } else {
                claim("bbbb", 2_000)
            }
        })
        .collect();
    let answers = futures::future::try_join_all(
        claims
            .iter()
            .map(|c| async { store.idempotency_keys().claim(c).await }),
    )
    .await?;
    let firsts: Vec<&KeyClaim> = claims
        .iter()
        .zip(&answers)
        .filter(|(_, a)| **a == Claimed::First)
        .map(|(c, _)| c)
        .collect();
    assert_eq!(firsts.len(), 1, "{answers:?}");
    let winner = firsts[0];
    for (c, a) in claims.iter().zip(&answers) {
        let expected = if c.fingerprint != winner.fingerprint {
            Claimed::Conflict
        } else if c == winner && *a == Claimed::First {
            Claimed::First
        } else {
            Claimed::Replay {
                order_id: winner.order_id,
                total: winner.total,
            }
        };
        assert_eq!(*a, expected, "{}", c.fingerprint);
    }
    // The same key of another customer is another key.
    let other = CustomerId::parse("frank")?;
    let theirs = KeyClaim {
        customer_id: other.clone(),
        ..claim("cccc", 500)
    };
    assert_eq!(
        store.idempotency_keys().claim(&theirs).await?,
        Claimed::First
    );
    Ok(())
}

async fn low_stock_alert_once_per_crossing(store: Store) -> anyhow::Result<()> {
    let mug = create_product(&store, "MUG", 1_000, 6, 3).await?;
    let alerts = |store: Store| async move {
        let (page, _) = store.stock().low_stock_alerts(None, 100, None).await?;
        anyhow::Ok(page.len())
    };
    assert_eq!(alerts(store.clone()).await?, 0, "6 > 3: no alert");
    let sell = |n: i64| {
        let store = store.clone();
        let mug = mug.clone();
        async move {
            let o = order("buyer", &[(&mug, n)]);
            store.orders().place(&o, &[]).await?;
            let deducted = store
                .stock()
                .deduct(&o.order_id)
                .await?
                .ok()
                .context("deducted")?;
            anyhow::Ok((o.order_id, deducted))
        }
    };
    let (crossing, deducted) = sell(3).await?; // 6 -> 3: crosses
    assert_eq!(alerts(store.clone()).await?, 1);
    // What ProcessInventory gets: the alert it raised and its stock, as
    // written; read back, and answered to a retry, the same.
    assert_eq!(deducted, store.stock().deducted(&crossing).await?);
    assert_eq!(
        store.stock().deduct(&crossing).await?,
        Ok(deducted.clone()),
        "a retry answers what the first attempt wrote"
    );
    let (notices, allocation) = (deducted.low_stock_alerts, deducted.allocations);
    assert_eq!(notices.len(), 1);
    assert_eq!(
        (
            notices[0].sku.as_str(),
            notices[0].on_hand,
            notices[0].threshold
        ),
        ("MUG", 3, 3)
    );
    assert_eq!(allocation, store.stock().allocation(&crossing).await?);
    assert_eq!(allocation.iter().map(|a| a.lines.len()).sum::<usize>(), 1);
    let (quiet, deducted) = sell(1).await?; // 3 -> 2: still low, no new alert
    assert!(deducted.low_stock_alerts.is_empty());
    assert!(
        store
            .stock()
            .deducted(&quiet)
            .await?
            .low_stock_alerts
            .is_empty()
    );
    sell(1).await?; // 2 -> 1
    assert_eq!(alerts(store.clone()).await?, 1);
    store
        .stock()
        .receive(&receipt("refill", &[(&mug, 9)]))
        .await?; // 1 -> 10: re-arms
    assert_eq!(alerts(store.clone()).await?, 1);
    sell(7).await?; // 10 -> 3: crosses again
    let (page, _) = store
        .stock()
        .low_stock_alerts(Some(&mug), 100, None)
        .await?;
    assert_eq!(page.len(), 2);
    assert_eq!((page[1].on_hand, page[1].threshold), (3, 3));
    assert_eq!(page[1].cause, format!("order:{crossing}"));
    // A receipt that leaves a product low alerts too (it was never above).
    let bolt = create_product(&store, "BOLT", 10, 2, 5).await?;
    let (bolts, _) = store
        .stock()
        .low_stock_alerts(Some(&bolt), 100, None)
        .await?;
    assert_eq!(bolts.len(), 1);
    assert!(bolts[0].cause.starts_with("receipt:"));
    Ok(())
}

async fn ratings_only_from_buyers_and_replacement_is_exact(store: Store) -> anyhow::Result<()> {
    let mug = product(&store, "MUG", 10).await?;
    let buy = |customer: &'static str| {
        let store = store.clone();
        let mug = mug.clone();
        async move {
            let o = order(customer, &[(&mug, 1)]);
            store.orders().place(&o, &[]).await?;
            store.orders().confirm(&o.order_id, &[]).await?;
            anyhow::Ok(())
        }
    };
    buy("ann").await?;
    buy("ben").await?;
    let ann = CustomerId::parse("ann")?;
    let ben = CustomerId::parse("ben")?;
    let p = store.catalog().rate(&ann, &mug, 4).await?;
    assert_eq!((p.rating_sum, p.rating_count), (4, 1));
    let p = store.catalog().rate(&ann, &mug, 2).await?; // replaces 4
    assert_eq!((p.rating_sum, p.rating_count), (2, 1));
    let p = store.catalog().rate(&ben, &mug, 5).await?;
    assert_eq!(p.rating_average(), Some(3.5));

    // Placed but never confirmed: not a buyer.
    let cid = CustomerId::parse("cid")?;
    store
        .orders()
        .place(&order("cid", &[(&mug, 1)]), &[])
        .await?;
    let err = store.catalog().rate(&cid, &mug, 5).await;
    assert!(matches!(err, Err(StoreError::NotABuyer { .. })), "{err:?}");
    let ghost = Sku::parse("GHOST")?;
    assert!(matches!(
        store.catalog().rate(&ann, &ghost, 5).await,
        Err(StoreError::UnknownProduct(_))
    ));
    let p = store.catalog().get(&mug).await?.context("mug")?;
    assert_eq!(
        (p.rating_sum, p.rating_count),
        (7, 2),
        "failed attempts changed nothing"
    );
    let events: Vec<CatalogEvent> = store
        .catalog()
        .events(&mug)
        .await?
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(
        events
            .iter()
            .filter(|e| **e == CatalogEvent::ReviewRatingSubmitted)
            .count(),
        3
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| **e == CatalogEvent::ProductRatingUpdated)
            .count(),
        3
    );
    Ok(())
}

/// A worker and an API starting together on a fresh SQLite file must not
/// both apply the same migration (sqlx has no migration lock for SQLite).
#[tokio::test]
async fn sqlite_processes_starting_together_migrate_once() -> anyhow::Result<()> {
    let db = ordersaga_tests::TestDatabase::sqlite()?;
    let url = db.url().to_string();
    let starts = (0..6).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { Store::connect(&url).await })
    });
    for start in futures::future::join_all(starts).await {
        start??.close().await;
    }
    Ok(())
}

fn email(o: &OrderInput, stage: EmailStage) -> Outgoing {
    Outgoing::Email(Notification::Order(OrderEmail {
        stage,
        order_id: o.order_id,
        customer_id: o.customer_id.clone(),
        to: EmailAddress::parse("buyer@example.com").expect("valid address"),
        lines: o.lines.clone(),
        total: o.total,
        reason: None,
        refunded: false,
        ship_to: None,
        payment_url: None,
        warehouse: None,
        amendment: None,
    }))
}

/// The outbox: a step's messages commit with it (once, however often the
/// step runs; none for an order that ended otherwise), concurrent relay
/// slots never claim one message twice, a leased message is nobody else's
/// (not even a retry of the same slot), and settled messages are not
/// claimed again.
async fn outbox_commits_with_the_step_and_relays_claim_each_message_once(
    store: Store,
) -> anyhow::Result<()> {
    let lease = Duration::from_secs(60);
    let sku = product(&store, "OUT-1", 10).await?;
    let mut orders = Vec::new();
    for n in 0..6 {
        let o = order(&format!("out-{n}"), &[(&sku, 1)]);
        let received = [email(&o, EmailStage::OrderReceived)];
        store.orders().place(&o, &received).await?;
        store.orders().place(&o, &received).await?; // a retried step
        orders.push(o);
    }
    assert_eq!(store.outbox().backlog(Topic::Email).await?, 6);
    assert_eq!(store.outbox().backlog(Topic::Shipment).await?, 0);
    // FailOrder on a confirmed order commits nothing.
    store
        .orders()
        .confirm(
            &orders[0].order_id,
            &[email(&orders[0], EmailStage::OrderConfirmed)],
        )
        .await?;
    let reason = FailureReason::Cancelled {
        message: "late".into(),
    };
    store
        .orders()
        .fail(
            &orders[0].order_id,
            &reason,
            &[email(&orders[0], EmailStage::OrderFailed)],
        )
        .await?;
    assert_eq!(store.outbox().backlog(Topic::Email).await?, 7);

    // Two slots claiming at once never take the same message (on
    // PostgreSQL the loser skips rows the winner took); a third takes the
    // rest.
    let (a, b) = tokio::join!(
        store.outbox().claim(Topic::Email, "email#0/a", 4, lease),
        store.outbox().claim(Topic::Email, "email#1/a", 4, lease)
    );
    let (a, b) = (a?.entries, b?.entries);
    let c = store
        .outbox()
        .claim(Topic::Email, "email#2/a", 10, lease)
        .await?
        .entries;
    let mut keys: Vec<_> = a
        .iter()
        .chain(&b)
        .chain(&c)
        .map(|e| e.key.clone())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        a.len() + b.len() + c.len(),
        "no message claimed twice"
    );
    assert_eq!(keys.len(), 7);
    assert!(
        store
            .outbox()
            .claim(Topic::Email, "email#3/a", 10, lease)
            .await?
            .entries
            .is_empty(),
        "everything is leased"
    );

    // A slot's retried attempt does not take back what its previous
    // attempt holds: that one may still be sending (a zombie).
    let (slot, again) = [("email#0/a", &a), ("email#1/a", &b), ("email#2/a", &c)]
        .into_iter()
        .max_by_key(|(_, claims)| claims.len())
        .context("slots")?;
    assert!(again.len() >= 3, "7 messages over 3 slots");
    let retried_slot = format!("{}/b", slot.trim_end_matches("/a"));
    assert_eq!(
        store
            .outbox()
            .claim(Topic::Email, &retried_slot, 10, lease)
            .await?,
        ordersaga_store::OutboxClaim::default(),
        "still leased by {slot}"
    );
    assert!(again.iter().all(|e| e.attempts == 1), "{again:?}");

    // Settle: done, retry later, give up. None is claimable right now.
    let done = again[0].key.as_str();
    assert_eq!(
        store.outbox().complete(&[done], slot).await?,
        HashSet::from([done.to_string()])
    );
    // Completing nothing writes nothing.
    assert!(store.outbox().complete(&[], slot).await?.is_empty());
    assert!(
        store
            .outbox()
            .retry(&again[1].key, slot, Duration::from_secs(3600), "421 busy")
            .await?
    );
    assert!(
        store
            .outbox()
            .fail(&again[2].key, slot, "550 no such user")
            .await?
    );
    // A claimant that does not hold the message cannot undo its outcome.
    assert!(
        !store
            .outbox()
            .retry(done, "email#3/a", Duration::ZERO, "stale")
            .await?
    );
    assert_eq!(
        store.outbox().state(done).await?.context("row")?.status,
        OutboxStatus::Done
    );
    let retried = store.outbox().state(&again[1].key).await?.context("row")?;
    assert_eq!(retried.status, OutboxStatus::Pending);
    assert_eq!(retried.last_error.as_deref(), Some("421 busy"));
    assert_eq!(
        store
            .outbox()
            .state(&again[2].key)
            .await?
            .context("row")?
            .status,
        OutboxStatus::Failed
    );
    // The settled ones are nobody's any more; the others stay leased.
    let rest = store
        .outbox()
        .claim(Topic::Email, "email#4/a", 10, lease)
        .await?;
    assert!(rest.entries.is_empty(), "{rest:?}");
    assert_eq!(store.outbox().backlog(Topic::Email).await?, 5);
    Ok(())
}

/// The reconciler's queries find each kind of inconsistency (and nothing
/// in flight or settled); a finding opens once, is seen again without
/// reopening, and is resolved when a run no longer sees it.
async fn reconciler_queries_find_each_inconsistency_and_findings_open_once(
    store: Store,
) -> anyhow::Result<()> {
    let mug = product(&store, "REC", 10).await?;
    let failed = |message: &str| FailureReason::Cancelled {
        message: message.to_string(),
    };
    // PENDING: found once placed before the cut-off, not after it.
    let pending = order("alice", &[(&mug, 1)]);
    store.orders().place(&pending, &[]).await?;
    let findings = store.findings();
    assert_eq!(
        findings
            .pending_orders(ordersaga_store::now_ms() + 1, 10)
            .await?,
        [pending.order_id]
    );
    assert!(findings.pending_orders(0, 10).await?.is_empty());

    // FAILED with a capture: found; refunded: not.
    let kept = order("bob", &[(&mug, 1)]);
    store.orders().place(&kept, &[]).await?;
    store
        .payments()
        .ensure(&kept.order_id, &kept.transaction_id, kept.total)
        .await?;
    store
        .payments()
        .record_outcome(&kept.order_id, Ok(()))
        .await?;
    store
        .orders()
        .fail(&kept.order_id, &failed("x"), &[])
        .await?;
    assert_eq!(findings.failed_with_capture(10).await?, [kept.order_id]);

    // FAILED with an open checkout payment: found; voided: not.
    let open = order("carol", &[(&mug, 1)]);
    store.orders().place(&open, &[]).await?;
    let link = PaymentLink {
        gateway_order_id: "GW-REC".to_string(),
        approval_url: "http://gw.test/checkoutnow?token=GW-REC".to_string(),
    };
    store
        .payments()
        .open_checkout(&open.order_id, &open.transaction_id, open.total, &link, &[])
        .await?;
    store
        .orders()
        .fail(&open.order_id, &failed("y"), &[])
        .await?;
    assert_eq!(
        findings.failed_with_open_checkout(10).await?,
        [open.order_id]
    );
    store
        .payments()
        .record_voided(&open.order_id, "void")
        .await?;
    assert!(findings.failed_with_open_checkout(10).await?.is_empty());
    store.payments().record_refund(&kept.order_id).await?;
    assert!(findings.failed_with_capture(10).await?.is_empty());

    // A claim whose lease ran out before the cut-off; none before 0.
    let lease = Duration::from_millis(1);
    let mut stuck_order = order("dave", &[(&mug, 1)]);
    stuck_order.customer_email = Some(EmailAddress::parse("dave@example.com")?);
    let messages = [Outgoing::Email(
        stuck_order.received_email(None).context("an email")?,
    )];
    store.orders().place(&stuck_order, &messages).await?;
    let claimed = store
        .outbox()
        .claim(Topic::Email, "dead-slot", 10, lease)
        .await?;
    assert_eq!(claimed.entries.len(), 1);
    let cutoff = ordersaga_store::now_ms() + 1_000;
    let stuck = findings.stuck_messages(cutoff, 10).await?;
    assert_eq!(stuck.len(), 1, "{stuck:?}");
    assert_eq!(stuck[0].order_id, Some(stuck_order.order_id));
    assert_eq!(stuck[0].claimed_by, "dead-slot");
    assert!(findings.stuck_messages(0, 10).await?.is_empty());

    // Findings: opened once, seen again, resolved when no longer seen.
    let finding = Finding {
        kind: FindingKind::PendingWorkflowMissing,
        subject: pending.order_id.to_string(),
        order_id: Some(pending.order_id),
        detail: "no workflow".to_string(),
    };
    assert!(findings.open(&finding).await?, "new");
    assert!(!findings.open(&finding).await?, "seen again");
    let open_now = findings.open_findings().await?;
    assert_eq!(open_now.len(), 1);
    assert_eq!(open_now[0].finding, finding);
    let seen = [(finding.kind, finding.subject.clone())];
    assert_eq!(findings.resolve_unseen(&seen).await?, 0);
    assert_eq!(findings.resolve_unseen(&[]).await?, 1);
    assert!(findings.open_findings().await?.is_empty());
    let history = findings.of_order(&pending.order_id).await?;
    assert!(history.len() == 1 && !history[0].open, "{history:?}");
    // Found again after being resolved: new again.
    assert!(findings.open(&finding).await?);
    Ok(())
}

/// A zombie relay attempt: its lease ran out while it was still sending,
/// another attempt claimed the message. Whatever the zombie then settles
/// changes nothing; the message stays with the attempt that holds it, which
/// alone settles it, and nobody claims it a third time meanwhile. (The
/// zombie's send itself is the one duplicate of that crash window.)
async fn outbox_a_lapsed_claim_settles_nothing(store: Store) -> anyhow::Result<()> {
    let sku = product(&store, "ZOMBIE-1", 10).await?;
    let o = order("zed", &[(&sku, 1)]);
    store
        .orders()
        .place(&o, &[email(&o, EmailStage::OrderReceived)])
        .await?;
    // The zombie's claim lapses at once; the next attempt's does not.
    let zombie = store
        .outbox()
        .claim(Topic::Email, "email#0/zombie", 10, Duration::ZERO)
        .await?
        .entries;
    assert_eq!(zombie.len(), 1);
    let key = zombie[0].key.as_str();
    let lease = Duration::from_secs(60);
    let current = store
        .outbox()
        .claim(Topic::Email, "email#0/current", 10, lease)
        .await?
        .entries;
    assert_eq!(current.len(), 1, "a lapsed lease frees the message");
    assert_eq!(current[0].attempts, 2);

    let outbox = store.outbox();
    assert!(
        outbox.complete(&[key], "email#0/zombie").await?.is_empty(),
        "the zombie completes nothing"
    );
    assert!(
        !outbox
            .retry(key, "email#0/zombie", Duration::ZERO, "zombie")
            .await?
    );
    assert!(!outbox.fail(key, "email#0/zombie", "zombie").await?);
    let state = outbox.state(key).await?.context("row")?;
    assert_eq!(
        (state.status, state.last_error),
        (OutboxStatus::Pending, None),
        "untouched by the zombie"
    );
    assert!(
        outbox
            .claim(Topic::Email, "email#1/other", 10, lease)
            .await?
            .entries
            .is_empty(),
        "still leased by the current attempt"
    );
    // One statement for a batch: only what the attempt holds completes.
    assert_eq!(
        outbox
            .complete(&[key, "notification-never-claimed"], "email#0/current")
            .await?,
        HashSet::from([key.to_string()])
    );
    assert_eq!(
        outbox.state(key).await?.context("row")?.status,
        OutboxStatus::Done
    );
    Ok(())
}

/// Payment webhooks by event id: the first claim signals, a copy while it
/// signals is told to come back, a copy after it is a duplicate; a failed
/// signal releases the id, and a claim whose request died lapses after its
/// hold.
async fn webhook_events_are_signalled_once(store: Store) -> anyhow::Result<()> {
    let events = store.webhook_events();
    let (hold, window) = (Duration::from_secs(30), Duration::from_secs(600));
    assert_eq!(
        events.claim("WH-1", hold, window).await?,
        WebhookClaim::First
    );
    assert_eq!(
        events.claim("WH-1", hold, window).await?,
        WebhookClaim::InFlight
    );
    events.signalled("WH-1").await?;
    assert_eq!(
        events.claim("WH-1", hold, window).await?,
        WebhookClaim::Duplicate
    );
    // Released after a failed signal: the redelivery is signalled.
    assert_eq!(
        events.claim("WH-2", hold, window).await?,
        WebhookClaim::First
    );
    events.release("WH-2").await?;
    assert_eq!(
        events.claim("WH-2", hold, window).await?,
        WebhookClaim::First
    );
    // Its request died mid-signal (no hold left): the next copy takes over.
    assert_eq!(
        events.claim("WH-3", Duration::ZERO, window).await?,
        WebhookClaim::First
    );
    assert_eq!(
        events.claim("WH-3", hold, window).await?,
        WebhookClaim::First
    );
    // Racing copies of a new event: exactly one signals.
    let racing = futures::future::join_all(
        (0..10).map(|_| async { events.claim("WH-4", hold, window).await }),
    )
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    assert_eq!(
        racing.iter().filter(|c| **c == WebhookClaim::First).count(),
        1,
        "{racing:?}"
    );
    Ok(())
}

/// A row whose payload cannot be read (a newer writer, a broken one):
/// the claim marks it `FAILED` with the reason and hands out the rest, so
/// the topic keeps flowing; it is never claimed again.
async fn outbox_quarantines_what_it_cannot_read(
    db: ordersaga_tests::TestDatabase,
) -> anyhow::Result<()> {
    let store = db.store().await?;
    let sku = product(&store, "BAD-1", 10).await?;
    let o = order("quinn", &[(&sku, 1)]);
    store
        .orders()
        .place(&o, &[email(&o, EmailStage::OrderReceived)])
        .await?;
    // Oldest first, so it sits in the first batch.
    let raw = sqlx::AnyPool::connect(db.url()).await?;
    for (key, payload) in [
        ("bad-truncated", r#"{"Email":{"Order":{"stage""#),
        (
            "bad-unknown",
            r#"{"topic":"fax","message":{"to":"+49 30 123456"}}"#,
        ),
    ] {
        sqlx::query(
            "INSERT INTO outbox (message_key, topic, payload, status, available_at, created_at, \
             updated_at) VALUES ($1, 'email', $2, 'PENDING', 0, 0, 0)",
        )
        .bind(key)
        .bind(payload)
        .execute(&raw)
        .await?;
    }
    raw.close().await;

    let lease = Duration::from_secs(60);
    let claimed = store
        .outbox()
        .claim(Topic::Email, "email#0/a", 10, lease)
        .await?;
    assert_eq!(claimed.entries.len(), 1, "the good message is handed out");
    let mut bad: Vec<_> = claimed.quarantined.iter().map(|q| q.key.as_str()).collect();
    bad.sort_unstable();
    assert_eq!(bad, ["bad-truncated", "bad-unknown"]);
    for q in &claimed.quarantined {
        assert!(q.reason.starts_with("undecodable payload"), "{q:?}");
        assert!(!q.reason.contains("+49"), "no payload content: {q:?}");
        let state = store.outbox().state(&q.key).await?.context("row")?;
        assert_eq!(state.status, OutboxStatus::Failed);
        assert_eq!(state.last_error.as_deref(), Some(q.reason.as_str()));
    }
    let key = claimed.entries[0].key.as_str();
    assert_eq!(
        store.outbox().complete(&[key], "email#0/a").await?,
        HashSet::from([key.to_string()])
    );
    assert_eq!(store.outbox().backlog(Topic::Email).await?, 0);
    assert_eq!(
        store
            .outbox()
            .claim(Topic::Email, "email#1/a", 10, Duration::ZERO)
            .await?,
        ordersaga_store::OutboxClaim::default(),
        "quarantined rows are not claimed again"
    );
    store.close().await;
    Ok(())
}

mod outbox_quarantine {
    #[tokio::test]
    async fn sqlite() -> anyhow::Result<()> {
        super::outbox_quarantines_what_it_cannot_read(ordersaga_tests::TestDatabase::sqlite()?)
            .await
    }

    #[tokio::test]
    async fn postgres() -> anyhow::Result<()> {
        super::outbox_quarantines_what_it_cannot_read(
            ordersaga_tests::TestDatabase::postgres().await?,
        )
        .await
    }
}

/// A pooled connection that the database cut while it sat idle (a restart,
/// a firewall's idle timeout) is found out before a step uses it, and the
/// step runs on a fresh one. `Store::connect` pings only connections idle
/// for a second or more, not every one it hands out.
#[tokio::test]
async fn postgres_a_connection_cut_while_idle_is_replaced_before_use() -> anyhow::Result<()> {
    let db = ordersaga_tests::TestDatabase::postgres().await?;
    let store = db.store().await?;
    let sku = product(&store, "CUT-1", 10).await?;
    let admin = sqlx::AnyPool::connect(db.url()).await?;
    let cut: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(&admin)
    .await?;
    assert!(cut >= 1, "the store's pool held no connection to cut");
    // What is waited for is the time itself: the pool's connections must
    // have been idle past the threshold.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(on_hand(&store, &sku).await?, 10);
    admin.close().await;
    store.close().await;
    Ok(())
}

/// The orders listed with `needs_attention`, newest first.
async fn needing_attention(store: &Store) -> anyhow::Result<Vec<(OrderId, Option<String>)>> {
    let (page, _) = store
        .orders()
        .list(&OrderQuery {
            needs_attention: true,
            limit: 100,
            ..Default::default()
        })
        .await?;
    Ok(page
        .into_iter()
        .map(|o| (o.order_id, o.attention))
        .collect())
}

async fn parked_compensations_need_attention_until_resolved_or_closed(
    store: Store,
) -> anyhow::Result<()> {
    let mug = product(&store, "MUG", 10).await?;
    let paid = order("alice", &[(&mug, 1)]);
    let other = order("bob", &[(&mug, 1)]);
    for o in [&paid, &other] {
        store.orders().place(o, &[]).await?;
        store
            .payments()
            .ensure(&o.order_id, &o.transaction_id, o.total)
            .await?;
        store.payments().record_outcome(&o.order_id, Ok(())).await?;
    }
    assert!(needing_attention(&store).await?.is_empty());

    // The gateway refused the refund for good: parked, once.
    let attention = store.attention();
    let refused = "refund: gateway refused (422 TRANSACTION_REFUSED)";
    assert!(
        attention
            .park(&paid.order_id, Compensation::RefundPayment, refused)
            .await?
    );
    assert!(
        !attention
            .park(&paid.order_id, Compensation::RefundPayment, refused)
            .await?,
        "a retried park opens nothing new"
    );
    let rec = store.orders().get(&paid.order_id).await?.context("order")?;
    let payment = rec.payment.context("payment")?;
    assert_eq!(payment.status, PaymentStatus::RefundFailed);
    assert_eq!(payment.decline_reason.as_deref(), Some(refused));
    assert_eq!(rec.attention.len(), 1);
    assert_eq!(rec.attention[0].status, AttentionStatus::Open);
    assert_eq!(rec.attention[0].reason, refused);
    assert_eq!(
        needing_attention(&store).await?,
        [(paid.order_id, Some(format!("RefundPayment: {refused}")))]
    );
    assert_eq!(attention.orders_open().await?, 1);

    // An operator's retry refunds it: the payment moves on, the row resolves.
    assert!(store.payments().record_refund(&paid.order_id).await?);
    assert!(
        attention
            .resolve(&paid.order_id, Compensation::RefundPayment)
            .await?
    );
    assert!(
        !attention
            .resolve(&paid.order_id, Compensation::RefundPayment)
            .await?
    );
    assert!(needing_attention(&store).await?.is_empty());
    assert_eq!(attention.orders_open().await?, 0);
    let rec = store.orders().get(&paid.order_id).await?.context("order")?;
    assert_eq!(
        rec.payment.context("payment")?.status,
        PaymentStatus::Refunded
    );
    assert_eq!(rec.attention[0].status, AttentionStatus::Resolved);
    assert_eq!(
        events(&store, &paid.order_id).await?,
        [
            OrderEvent::OrderPlaced,
            OrderEvent::PaymentProcessed,
            OrderEvent::PaymentRefundFailed,
            OrderEvent::PaymentRefunded,
        ]
    );

    // Two parked on one order; an operator closes both with a reason.
    attention
        .park(&other.order_id, Compensation::RefundPayment, "refused")
        .await?;
    attention
        .park(
            &other.order_id,
            Compensation::ReleaseInventory,
            "order gone",
        )
        .await?;
    assert_eq!(attention.orders_open().await?, 1, "counted per order");
    let note = OperatorNote::new("ops-ana", "refunded by bank transfer", true)?;
    assert_eq!(attention.close(&other.order_id, &note).await?, 2);
    assert_eq!(attention.close(&other.order_id, &note).await?, 0);
    assert!(needing_attention(&store).await?.is_empty());
    let rec = store
        .orders()
        .get(&other.order_id)
        .await?
        .context("order")?;
    assert!(
        rec.attention
            .iter()
            .all(|a| a.status == AttentionStatus::Closed && a.closed.as_ref() == Some(&note))
    );
    let closed: Vec<_> = rec
        .events
        .iter()
        .filter(|e| e.event == OrderEvent::AttentionClosed)
        .collect();
    assert_eq!(closed.len(), 1);
    assert_eq!(
        closed[0].detail.as_deref(),
        Some("closed by ops-ana: refunded by bank transfer")
    );
    // Closed, the refund stays refused: nobody pretends the money went back.
    assert_eq!(
        rec.payment.context("payment")?.status,
        PaymentStatus::RefundFailed
    );
    Ok(())
}
