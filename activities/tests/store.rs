//! The store's contract, run against both backends: an SQLite file and a
//! fresh PostgreSQL database (`ORDERSAGA_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). Every case proves that a
//! repeated step has no second effect.

// Fixture builders take literals that are valid by construction.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ordersaga_activities::Store;
use ordersaga_activities::gateway::{
    ChargeOutcome, ChargeRequest, PaymentGateway, RefundOutcome, SimulatedGateway,
};
use ordersaga_activities::store::{NewProduct, OrderQuery};
use ordersaga_domain::{
    Currency, CustomerId, FailureReason, Money, OrderEvent, OrderId, OrderInput, OrderLine,
    OrderStatus, PaymentStatus, Sku, TransactionId,
};
use sqlx::Executor;

/// A database that lives as long as the test.
enum TestDb {
    /// The temporary directory holding the file, removed on drop.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl TestDb {
    async fn sqlite() -> anyhow::Result<(Self, Store)> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        Ok((Self::Sqlite { _dir: dir }, Store::connect(&url).await?))
    }

    async fn postgres() -> anyhow::Result<(Self, Store)> {
        sqlx::any::install_default_drivers();
        let admin_url = std::env::var("ORDERSAGA_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let name = format!("ordersaga_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::AnyPool::connect(&admin_url)
            .await
            .with_context(|| format!("PostgreSQL at {admin_url}"))?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        admin.close().await;
        let (base, _) = admin_url
            .rsplit_once('/')
            .context("database URL has no path")?;
        let store = Store::connect(&format!("{base}/{name}")).await?;
        Ok((Self::Postgres { admin_url, name }, store))
    }

    async fn drop_db(self, store: Store) -> anyhow::Result<()> {
        store.close().await;
        if let Self::Postgres { admin_url, name } = self {
            let admin = sqlx::AnyPool::connect(&admin_url).await?;
            admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await?;
            admin.close().await;
        }
        Ok(())
    }
}

/// Runs each case on SQLite and on PostgreSQL.
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $case() -> anyhow::Result<()> {
                let (db, store) = super::TestDb::sqlite().await?;
                super::$case(store.clone()).await?;
                db.drop_db(store).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $case() -> anyhow::Result<()> {
                let (db, store) = super::TestDb::postgres().await?;
                super::$case(store.clone()).await?;
                db.drop_db(store).await
            })*
        }
    };
}

both_backends!(
    place_order_is_idempotent,
    deduction_happens_once_and_matches_the_ledger,
    deduction_is_all_or_nothing_and_its_outcome_sticks,
    release_puts_stock_back_once_and_only_after_a_deduction,
    payment_outcomes_and_refunds_are_recorded_once,
    confirm_and_fail_are_final,
    concurrent_orders_never_oversell,
    list_orders_filters_and_pages,
    simulated_gateway_captures_and_refunds_at_most_once,
);

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("EUR is a currency"))
}

async fn product(store: &Store, sku: &str, stock: i64) -> anyhow::Result<Sku> {
    let sku = Sku::parse(sku)?;
    store
        .create_product_if_absent(&NewProduct {
            sku: sku.clone(),
            name: format!("{sku} product"),
            price: eur(1_000),
            opening_stock: stock,
        })
        .await?;
    Ok(sku)
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
    }
}

async fn events(store: &Store, id: &OrderId) -> anyhow::Result<Vec<OrderEvent>> {
    let o = store.get_order(id).await?.context("order")?;
    Ok(o.events.iter().map(|e| e.event).collect())
}

async fn on_hand(store: &Store, sku: &Sku) -> anyhow::Result<i64> {
    let p = store.product(sku).await?.context("product")?;
    assert_eq!(
        p.on_hand,
        store.ledger_balance(sku).await?,
        "on-hand = ledger"
    );
    Ok(p.on_hand)
}

async fn place_order_is_idempotent(store: Store) -> anyhow::Result<()> {
    let mug = product(&store, "MUG", 10).await?;
    let o = order("alice", &[(&mug, 2)]);
    assert!(store.place_order(&o).await?);
    assert!(!store.place_order(&o).await?, "second call creates nothing");
    let rec = store.get_order(&o.order_id).await?.context("stored")?;
    assert_eq!(rec.summary.status, OrderStatus::Pending);
    assert_eq!(rec.summary.transaction_id, o.transaction_id);
    assert_eq!(rec.lines.len(), 1);
    assert_eq!(
        events(&store, &o.order_id).await?,
        [OrderEvent::OrderPlaced]
    );
    // Creating a product twice keeps the first, and one opening movement.
    assert!(
        !store
            .create_product_if_absent(&NewProduct {
                sku: mug.clone(),
                name: "other".into(),
                price: eur(1),
                opening_stock: 99,
            })
            .await?
    );
    assert_eq!(on_hand(&store, &mug).await?, 10);
    Ok(())
}

async fn deduction_happens_once_and_matches_the_ledger(store: Store) -> anyhow::Result<()> {
    let mug = product(&store, "MUG", 10).await?;
    let tee = product(&store, "TEE", 5).await?;
    // The same sku on two lines counts once, summed.
    let o = order("alice", &[(&mug, 2), (&tee, 1), (&mug, 1)]);
    store.place_order(&o).await?;
    assert_eq!(store.deduct_stock(&o.order_id).await?, Ok(()));
    assert_eq!(store.deduct_stock(&o.order_id).await?, Ok(()), "retry");
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
    store.place_order(&o).await?;
    let short = store
        .deduct_stock(&o.order_id)
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
    store.place_order(&more).await?;
    assert!(store.deduct_stock(&o.order_id).await?.is_err());
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
    store.place_order(&o).await?;
    assert!(
        !store.release_stock(&o.order_id).await?,
        "nothing to undo yet"
    );
    store
        .deduct_stock(&o.order_id)
        .await?
        .ok()
        .context("deducted")?;
    assert_eq!(on_hand(&store, &mug).await?, 6);
    assert!(store.release_stock(&o.order_id).await?);
    assert!(
        !store.release_stock(&o.order_id).await?,
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

async fn payment_outcomes_and_refunds_are_recorded_once(store: Store) -> anyhow::Result<()> {
    let mug = product(&store, "MUG", 10).await?;
    let o = order("alice", &[(&mug, 1)]);
    store.place_order(&o).await?;
    let p = store
        .ensure_payment(&o.order_id, &o.transaction_id, o.total)
        .await?;
    assert_eq!(p.status, PaymentStatus::Pending);
    let again = store
        .ensure_payment(&o.order_id, &o.transaction_id, o.total)
        .await?;
    assert_eq!(again, p);
    let captured = store.record_payment_outcome(&o.order_id, Ok(())).await?;
    assert_eq!(captured.status, PaymentStatus::Captured);
    // A late "declined" for a settled payment changes nothing.
    let late = store
        .record_payment_outcome(&o.order_id, Err("late"))
        .await?;
    assert_eq!(late.status, PaymentStatus::Captured);
    assert!(store.record_refund(&o.order_id).await?);
    assert!(!store.record_refund(&o.order_id).await?);
    let rec = store.get_order(&o.order_id).await?.context("order")?;
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
    store.place_order(&a).await?;
    store.place_order(&b).await?;
    assert_eq!(
        store.confirm_order(&a.order_id).await?,
        OrderStatus::Confirmed
    );
    assert_eq!(
        store.confirm_order(&a.order_id).await?,
        OrderStatus::Confirmed
    );
    let reason = FailureReason::PaymentDeclined {
        message: "nope".into(),
    };
    assert_eq!(
        store.fail_order(&a.order_id, &reason).await?,
        OrderStatus::Confirmed
    );
    assert_eq!(
        store.fail_order(&b.order_id, &reason).await?,
        OrderStatus::Failed
    );
    let rec = store.get_order(&b.order_id).await?.context("order")?;
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
            .confirm_order(&OrderId::from_uuid(uuid::Uuid::new_v4()))
            .await
            .is_err()
    );
    Ok(())
}

async fn concurrent_orders_never_oversell(store: Store) -> anyhow::Result<()> {
    let last = product(&store, "LAST", 5).await?;
    let orders: Vec<OrderInput> = (0..12).map(|_| order("crowd", &[(&last, 1)])).collect();
    for o in &orders {
        store.place_order(o).await?;
    }
    let tasks: Vec<_> = orders
        .iter()
        .map(|o| {
            let store = store.clone();
            let id = o.order_id;
            tokio::spawn(async move { store.deduct_stock(&id).await })
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
        store.place_order(&o).await?;
        alice.push(o.order_id);
    }
    let bob = order("bob", &[(&mug, 1)]);
    store.place_order(&bob).await?;
    store.confirm_order(&alice[0]).await?;

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let (page, next) = store
            .list_orders(&OrderQuery {
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
        .list_orders(&OrderQuery {
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
    assert_eq!(gw.refund(&txn).await?, RefundOutcome::Refunded);
    assert_eq!(gw.refund(&txn).await?, RefundOutcome::Refunded);
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
    assert_eq!(gw.refund(&declined).await?, RefundOutcome::NothingCaptured);
    let never = TransactionId::from_uuid(uuid::Uuid::new_v4());
    assert_eq!(gw.refund(&never).await?, RefundOutcome::NothingCaptured);
    Ok(())
}
