//! The spending limit's store contract on both backends: reservations
//! against a customer's limit under, at and over it, decided once per
//! order, released once, and racing orders at the edge never both passing.

// Fixture builders take literals that are valid by construction.
#![allow(clippy::expect_used)]

use ordersaga_domain::{
    Currency, CustomerId, FailureReason, Money, OrderId, OrderInput, OrderLine, Sku, TransactionId,
};
use ordersaga_store::{Store, StoreError};

ordersaga_tests::both_backends!(
    reservations_count_under_and_at_the_limit_and_refuse_over_it,
    a_reservation_is_decided_once_and_released_once,
    a_failed_order_reserves_nothing,
    orders_racing_the_limit_never_both_pass,
    limits_are_set_changed_and_removed,
);

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("EUR is a currency"))
}

fn customer(id: &str) -> CustomerId {
    CustomerId::parse(id).expect("valid customer")
}

/// Places (stores) an order of `total` EUR cents for `who`.
async fn placed(store: &Store, who: &str, total: i64) -> anyhow::Result<OrderId> {
    let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
    let order = OrderInput {
        order_id,
        transaction_id: TransactionId::for_order(&order_id),
        customer_id: customer(who),
        lines: vec![OrderLine {
            sku: Sku::parse("ANY").expect("valid sku"),
            quantity: 1,
            unit_price: eur(total),
        }],
        total: eur(total),
        customer_email: None,
        shipping_address: None,
        payment: Default::default(),
    };
    store.orders().place(&order, &[]).await?;
    Ok(order_id)
}

async fn reservations_count_under_and_at_the_limit_and_refuse_over_it(
    store: Store,
) -> anyhow::Result<()> {
    let alice = customer("alice");
    store
        .spending()
        .set_limit(&alice, Some(eur(10_000)), "ops")
        .await?;
    let under = placed(&store, "alice", 4_000).await?;
    assert_eq!(store.spending().reserve(&under).await?, Ok(()));
    let at = placed(&store, "alice", 6_000).await?;
    assert_eq!(store.spending().reserve(&at).await?, Ok(()));
    let over = placed(&store, "alice", 1).await?;
    let refused = store.spending().reserve(&over).await?;
    assert_eq!(
        refused,
        Err(FailureReason::SpendingLimitExceeded {
            limit: eur(10_000),
            spent: eur(10_000),
            requested: eur(1),
        })
    );
    let record = store.spending().limit(&alice).await?;
    assert_eq!(
        record.spent,
        Some(eur(10_000)),
        "the refusal counts nothing"
    );
    // Another customer's orders count against their own limit only.
    let bob = placed(&store, "bob", 50_000).await?;
    assert_eq!(store.spending().reserve(&bob).await?, Ok(()));
    assert_eq!(
        store.spending().limit(&alice).await?.spent,
        Some(eur(10_000))
    );
    // An order in another currency cannot be weighed against a EUR limit.
    let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
    let usd = Money::new(100, Currency::parse("USD")?);
    let order = OrderInput {
        order_id,
        transaction_id: TransactionId::for_order(&order_id),
        customer_id: alice.clone(),
        lines: vec![OrderLine {
            sku: Sku::parse("ANY")?,
            quantity: 1,
            unit_price: usd,
        }],
        total: usd,
        customer_email: None,
        shipping_address: None,
        payment: Default::default(),
    };
    store.orders().place(&order, &[]).await?;
    assert!(store.spending().reserve(&order_id).await?.is_err());
    Ok(())
}

async fn a_reservation_is_decided_once_and_released_once(store: Store) -> anyhow::Result<()> {
    let carol = customer("carol");
    store
        .spending()
        .set_limit(&carol, Some(eur(5_000)), "ops")
        .await?;
    let first = placed(&store, "carol", 5_000).await?;
    assert_eq!(store.spending().reserve(&first).await?, Ok(()));
    // A retry answers the same and reserves nothing more.
    assert_eq!(store.spending().reserve(&first).await?, Ok(()));
    assert_eq!(
        store.spending().limit(&carol).await?.spent,
        Some(eur(5_000))
    );
    let second = placed(&store, "carol", 100).await?;
    let refused = store.spending().reserve(&second).await?;
    assert!(refused.is_err());
    // Room made by a raised limit does not change a decided refusal.
    store
        .spending()
        .set_limit(&carol, Some(eur(6_000)), "ops")
        .await?;
    assert_eq!(store.spending().reserve(&second).await?, refused);
    // Released once: the first order failed, its amount stops counting.
    assert!(store.spending().release(&first).await?);
    assert!(!store.spending().release(&first).await?);
    assert_eq!(store.spending().limit(&carol).await?.spent, Some(eur(0)));
    assert_eq!(
        store
            .spending()
            .reservation_status(&first)
            .await?
            .as_deref(),
        Some("RELEASED")
    );
    // Nothing reserved (refused): nothing to release.
    assert!(!store.spending().release(&second).await?);
    // A reservation decided before the order failed is still reported, so
    // its release runs.
    let third = placed(&store, "carol", 1_000).await?;
    assert_eq!(store.spending().reserve(&third).await?, Ok(()));
    let reason = FailureReason::Cancelled {
        message: "changed my mind".into(),
    };
    store.orders().fail(&third, &reason, &[]).await?;
    assert_eq!(store.spending().reserve(&third).await?, Ok(()));
    Ok(())
}

async fn a_failed_order_reserves_nothing(store: Store) -> anyhow::Result<()> {
    let order = placed(&store, "dave", 1_000).await?;
    let reason = FailureReason::Cancelled {
        message: String::new(),
    };
    store.orders().fail(&order, &reason, &[]).await?;
    let refused = store.spending().reserve(&order).await;
    assert!(
        matches!(refused, Err(StoreError::OrderEnded { .. })),
        "{refused:?}"
    );
    assert_eq!(store.spending().reservation_status(&order).await?, None);
    let unknown = OrderId::from_uuid(uuid::Uuid::new_v4());
    assert!(matches!(
        store.spending().reserve(&unknown).await,
        Err(StoreError::OrderNotFound(_))
    ));
    Ok(())
}

async fn orders_racing_the_limit_never_both_pass(store: Store) -> anyhow::Result<()> {
    let erin = customer("erin");
    store
        .spending()
        .set_limit(&erin, Some(eur(10_000)), "ops")
        .await?;
    // 8 orders of 30.00 against a limit of 100.00: exactly 3 fit.
    let mut orders = Vec::new();
    for _ in 0..8 {
        orders.push(placed(&store, "erin", 3_000).await?);
    }
    let tasks: Vec<_> = orders
        .iter()
        .map(|id| {
            let (store, id) = (store.clone(), *id);
            tokio::spawn(async move { store.spending().reserve(&id).await })
        })
        .collect();
    let mut passed = 0;
    for task in tasks {
        if task.await??.is_ok() {
            passed += 1;
        }
    }
    assert_eq!(passed, 3);
    assert_eq!(store.spending().limit(&erin).await?.spent, Some(eur(9_000)));
    Ok(())
}

async fn limits_are_set_changed_and_removed(store: Store) -> anyhow::Result<()> {
    let frank = customer("frank");
    let none = store.spending().limit(&frank).await?;
    assert_eq!(
        (none.limit, none.spent),
        (None, None),
        "no limit by default"
    );
    // Orders reserve without a limit, so a limit set later counts them.
    let early = placed(&store, "frank", 7_000).await?;
    assert_eq!(store.spending().reserve(&early).await?, Ok(()));
    let set = store
        .spending()
        .set_limit(&frank, Some(eur(8_000)), "ops")
        .await?;
    assert_eq!((set.limit, set.spent), (Some(eur(8_000)), Some(eur(7_000))));
    let next = placed(&store, "frank", 2_000).await?;
    assert!(store.spending().reserve(&next).await?.is_err());
    let changed = store
        .spending()
        .set_limit(&frank, Some(eur(9_000)), "ops")
        .await?;
    assert_eq!(changed.limit, Some(eur(9_000)));
    let later = placed(&store, "frank", 2_000).await?;
    assert_eq!(store.spending().reserve(&later).await?, Ok(()));
    let removed = store.spending().set_limit(&frank, None, "ops").await?;
    assert_eq!((removed.limit, removed.spent), (None, None));
    let big = placed(&store, "frank", 1_000_000).await?;
    assert_eq!(store.spending().reserve(&big).await?, Ok(()));
    Ok(())
}
