//! Stock per warehouse, run against both backends: receipts into named
//! warehouses, `ProcessInventory`'s allocation (fewest shipments, then the
//! fixed warehouse order), the release back into the warehouses the units
//! came from, no oversell under concurrency, and the migration that moves
//! the stock of a database from before warehouses into `main`.

// Fixture builders take literals that are valid by construction.
#![allow(clippy::expect_used)]

use std::collections::BTreeMap;

use anyhow::Context;
use ordersaga_domain::{
    Currency, CustomerId, Money, OrderId, OrderInput, OrderLine, ShipmentLine, Sku, TransactionId,
    WarehouseAllocation, WarehouseId,
};
use ordersaga_store::{NewStockReceipt, Shortage, Store, StoreError};
use ordersaga_tests::{TestDatabase, create_product};

ordersaga_tests::both_backends!(
    receipts_fill_warehouses_and_on_hand_is_their_sum,
    an_order_takes_from_one_warehouse_when_one_holds_it_all,
    an_order_is_split_only_when_it_must_and_released_back_where_it_came_from,
    short_over_all_warehouses_takes_nothing,
    concurrent_orders_over_warehouses_never_oversell,
);

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("EUR is a currency"))
}

fn wh(id: &str) -> WarehouseId {
    WarehouseId::parse(id).expect("valid warehouse")
}

fn order(lines: &[(&Sku, i64)]) -> OrderInput {
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
        customer_id: CustomerId::parse("alice").expect("valid customer"),
        lines,
        total,
        customer_email: None,
        shipping_address: None,
        payment: Default::default(),
    }
}

async fn receive(
    store: &Store,
    key: &str,
    warehouse: &str,
    lines: &[(&Sku, i64)],
) -> anyhow::Result<()> {
    store
        .stock()
        .receive(&NewStockReceipt {
            idempotency_key: key.to_string(),
            warehouse_id: wh(warehouse),
            lines: lines.iter().map(|(s, q)| ((*s).clone(), *q)).collect(),
        })
        .await?;
    Ok(())
}

/// The product's stock per warehouse, after checking that each equals its
/// warehouse's ledger and that on-hand equals their sum and the ledger's.
async fn levels(store: &Store, sku: &Sku) -> anyhow::Result<Vec<(String, i64)>> {
    let stock = store.stock();
    let levels = stock.warehouse_levels(sku).await?;
    for (warehouse, level) in &levels {
        assert_eq!(
            *level,
            stock.warehouse_ledger_balance(warehouse, sku).await?,
            "{sku} in {warehouse}: stock = its ledger"
        );
    }
    let on_hand = store.catalog().get(sku).await?.context("product")?.on_hand;
    assert_eq!(
        on_hand,
        levels.iter().map(|(_, l)| l).sum::<i64>(),
        "on-hand = sum"
    );
    assert_eq!(
        on_hand,
        stock.ledger_balance(sku).await?,
        "on-hand = ledger"
    );
    Ok(levels
        .into_iter()
        .map(|(w, l)| (w.to_string(), l))
        .collect())
}

fn at(levels: &[(&str, i64)]) -> Vec<(String, i64)> {
    levels.iter().map(|(w, l)| (w.to_string(), *l)).collect()
}

fn allocation(plan: &[(&str, &[(&Sku, i64)])]) -> Vec<WarehouseAllocation> {
    plan.iter()
        .map(|(w, lines)| WarehouseAllocation {
            warehouse_id: wh(w),
            lines: lines
                .iter()
                .map(|(sku, quantity)| ShipmentLine {
                    sku: (*sku).clone(),
                    quantity: *quantity,
                })
                .collect(),
        })
        .collect()
}

async fn receipts_fill_warehouses_and_on_hand_is_their_sum(store: Store) -> anyhow::Result<()> {
    let mug = create_product(&store, "MUG", 1_000, 4, 0).await?;
    receive(&store, "grn-east", "east", &[(&mug, 3)]).await?;
    receive(&store, "grn-west", "west", &[(&mug, 2)]).await?;
    receive(&store, "grn-east-2", "east", &[(&mug, 1)]).await?;
    // The fixed order: main, then the order warehouses were opened in.
    assert_eq!(
        levels(&store, &mug).await?,
        at(&[("main", 4), ("east", 4), ("west", 2)])
    );
    // A replay names its warehouse too: the same key into another
    // warehouse is another document.
    let moved = store
        .stock()
        .receive(&NewStockReceipt {
            idempotency_key: "grn-east".into(),
            warehouse_id: wh("west"),
            lines: vec![(mug.clone(), 3)],
        })
        .await;
    assert!(matches!(moved, Err(StoreError::KeyReused(_))), "{moved:?}");
    let replay = store
        .stock()
        .receive(&NewStockReceipt {
            idempotency_key: "grn-east".into(),
            warehouse_id: wh("east"),
            lines: vec![(mug.clone(), 3)],
        })
        .await?;
    assert!(!replay.created);
    assert_eq!(replay.warehouse_id, wh("east"));
    assert_eq!(
        levels(&store, &mug).await?,
        at(&[("main", 4), ("east", 4), ("west", 2)]),
        "neither changed anything"
    );
    // An unknown product opens no warehouse and stores nothing.
    let ghost = Sku::parse("GHOST")?;
    let err = store
        .stock()
        .receive(&NewStockReceipt {
            idempotency_key: "grn-north".into(),
            warehouse_id: wh("north"),
            lines: vec![(mug.clone(), 1), (ghost, 1)],
        })
        .await;
    assert!(matches!(err, Err(StoreError::UnknownProduct(_))), "{err:?}");
    assert_eq!(
        levels(&store, &mug).await?,
        at(&[("main", 4), ("east", 4), ("west", 2)])
    );
    Ok(())
}

async fn an_order_takes_from_one_warehouse_when_one_holds_it_all(
    store: Store,
) -> anyhow::Result<()> {
    let mug = create_product(&store, "MUG", 1_000, 5, 0).await?;
    let tee = create_product(&store, "TEE", 1_000, 0, 0).await?;
    receive(&store, "grn-east", "east", &[(&mug, 1), (&tee, 9)]).await?;
    receive(&store, "grn-west", "west", &[(&mug, 5), (&tee, 2)]).await?;
    let o = order(&[(&mug, 2), (&tee, 2)]);
    store.orders().place(&o, &[]).await?;
    assert_eq!(store.stock().deduct(&o.order_id).await?.map(drop), Ok(()));
    // main has the mugs, east the tees: west alone holds both, one shipment.
    assert_eq!(
        store.stock().allocation(&o.order_id).await?,
        allocation(&[("west", &[(&mug, 2), (&tee, 2)])])
    );
    assert_eq!(
        levels(&store, &mug).await?,
        at(&[("main", 5), ("east", 1), ("west", 3)])
    );
    assert_eq!(levels(&store, &tee).await?, at(&[("east", 9), ("west", 0)]));
    // A second order of the same fits main and east alike: main comes first.
    let mugs = order(&[(&mug, 1)]);
    store.orders().place(&mugs, &[]).await?;
    assert_eq!(
        store.stock().deduct(&mugs.order_id).await?.map(drop),
        Ok(())
    );
    assert_eq!(
        store.stock().allocation(&mugs.order_id).await?,
        allocation(&[("main", &[(&mug, 1)])])
    );
    Ok(())
}

async fn an_order_is_split_only_when_it_must_and_released_back_where_it_came_from(
    store: Store,
) -> anyhow::Result<()> {
    let mug = create_product(&store, "MUG", 1_000, 2, 0).await?;
    receive(&store, "grn-east", "east", &[(&mug, 1)]).await?;
    receive(&store, "grn-west", "west", &[(&mug, 3)]).await?;
    let o = order(&[(&mug, 1), (&mug, 3)]);
    store.orders().place(&o, &[]).await?;
    // No warehouse holds 4: two shipments, main and west (main and east
    // hold only 3), as the deduction answers, a retry too, and as stored.
    let split = allocation(&[("main", &[(&mug, 2)]), ("west", &[(&mug, 2)])]);
    let allocated = |d: ordersaga_store::DeductedStock| d.allocations;
    assert_eq!(
        store.stock().deduct(&o.order_id).await?.map(allocated),
        Ok(split.clone())
    );
    assert_eq!(
        store.stock().deduct(&o.order_id).await?.map(allocated),
        Ok(split.clone()),
        "retry"
    );
    assert_eq!(store.stock().allocation(&o.order_id).await?, split);
    assert_eq!(
        levels(&store, &mug).await?,
        at(&[("main", 0), ("east", 1), ("west", 1)]),
        "deducted once"
    );
    assert!(store.stock().release(&o.order_id).await?);
    assert!(!store.stock().release(&o.order_id).await?, "released once");
    assert_eq!(
        levels(&store, &mug).await?,
        at(&[("main", 2), ("east", 1), ("west", 3)]),
        "each unit went back where it came from"
    );
    assert_eq!(
        store.stock().allocation(&o.order_id).await?,
        split,
        "the allocation stays on record"
    );
    Ok(())
}

async fn short_over_all_warehouses_takes_nothing(store: Store) -> anyhow::Result<()> {
    let mug = create_product(&store, "MUG", 1_000, 2, 0).await?;
    let tee = create_product(&store, "TEE", 1_000, 5, 0).await?;
    receive(&store, "grn-east", "east", &[(&mug, 1)]).await?;
    let o = order(&[(&tee, 1), (&mug, 4)]);
    store.orders().place(&o, &[]).await?;
    assert_eq!(
        store.stock().deduct(&o.order_id).await?,
        Err(Shortage {
            sku: mug.clone(),
            requested: 4,
            available: 3,
        })
    );
    assert_eq!(store.stock().allocation(&o.order_id).await?, Vec::new());
    assert_eq!(levels(&store, &mug).await?, at(&[("main", 2), ("east", 1)]));
    assert_eq!(
        levels(&store, &tee).await?,
        at(&[("main", 5)]),
        "all or nothing"
    );
    assert!(
        !store.stock().release(&o.order_id).await?,
        "nothing to release"
    );
    Ok(())
}

async fn concurrent_orders_over_warehouses_never_oversell(store: Store) -> anyhow::Result<()> {
    let last = create_product(&store, "LAST", 1_000, 3, 0).await?;
    receive(&store, "grn-east", "east", &[(&last, 4)]).await?;
    receive(&store, "grn-west", "west", &[(&last, 2)]).await?;
    // 9 units in three warehouses; 14 orders of 1 or 2 units race for them.
    let orders: Vec<OrderInput> = (0..14).map(|n| order(&[(&last, 1 + n % 2)])).collect();
    for o in &orders {
        store.orders().place(o, &[]).await?;
    }
    let deductions: Vec<_> = orders
        .iter()
        .map(|o| {
            let store = store.clone();
            let id = o.order_id;
            tokio::spawn(async move { store.stock().deduct(&id).await })
        })
        .collect();
    let mut sold = Vec::new();
    for (o, t) in orders.iter().zip(deductions) {
        if t.await??.is_ok() {
            sold.push(o);
        }
    }
    let mut taken: BTreeMap<String, i64> = BTreeMap::new();
    for o in &sold {
        let plan = store.stock().allocation(&o.order_id).await?;
        let units: i64 = plan.iter().flat_map(|a| &a.lines).map(|l| l.quantity).sum();
        assert_eq!(units, o.lines[0].quantity, "an order gets all it asked for");
        for a in plan {
            *taken.entry(a.warehouse_id.to_string()).or_insert(0) +=
                a.lines.iter().map(|l| l.quantity).sum::<i64>();
        }
    }
    let after = levels(&store, &last).await?;
    for (warehouse, level) in &after {
        let start = match warehouse.as_str() {
            "main" => 3,
            "east" => 4,
            _ => 2,
        };
        assert_eq!(
            level + taken.get(warehouse).copied().unwrap_or(0),
            start,
            "{warehouse}: what is left and what was taken add up"
        );
    }
    let left: i64 = after.iter().map(|(_, l)| l).sum();
    assert!(
        (0..2).contains(&left),
        "no order that fits was refused: {after:?}"
    );
    // Releasing them all at once puts every unit back.
    let releases: Vec<_> = sold
        .iter()
        .map(|o| {
            let store = store.clone();
            let id = o.order_id;
            tokio::spawn(async move { store.stock().release(&id).await })
        })
        .collect();
    for t in releases {
        assert!(t.await??);
    }
    assert_eq!(
        levels(&store, &last).await?,
        at(&[("main", 3), ("east", 4), ("west", 2)])
    );
    Ok(())
}

/// A migrator of the migrations before warehouses (`0001` to `0012`),
/// copied out of the store's folder.
async fn migrator_before_warehouses(
    dir: &tempfile::TempDir,
) -> anyhow::Result<sqlx::migrate::Migrator> {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/migrations");
    for entry in std::fs::read_dir(source)? {
        let path = entry?.path();
        let name = path.file_name().context("file name")?.to_string_lossy();
        let version: u32 = name.get(..4).context("numbered")?.parse()?;
        if version < 13 {
            std::fs::copy(&path, dir.path().join(&*name))?;
        }
    }
    Ok(sqlx::migrate::Migrator::new(dir.path()).await?)
}

/// A shop database from before warehouses, with stock, a ledger, and an
/// order whose deduction is still to be released: after the migration the
/// stock is main's, no ledger row is lost, and the release puts the units
/// back into main.
async fn migration_moves_existing_stock_into_main(db: TestDatabase) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(db.url()).await?;
    let dir = tempfile::tempdir()?;
    migrator_before_warehouses(&dir).await?.run(&pool).await?;
    let o = order(&[]);
    for sql in [
        "INSERT INTO products (sku, name, price_minor, currency, on_hand, created_at) \
         VALUES ('MUG', 'Mug', 1000, 'EUR', 7, 0), ('TEE', 'Tee', 1000, 'EUR', 0, 0)",
        "INSERT INTO stock_movements (movement_id, sku, delta, reason, order_id, created_at) \
         VALUES ('receipt/r1/MUG', 'MUG', 10, 'receipt', NULL, 0), \
                ('receipt/r1/TEE', 'TEE', 1, 'receipt', NULL, 0), \
                ('o1/deduct/MUG', 'MUG', -3, 'order', 'o1', 0), \
                ('o1/deduct/TEE', 'TEE', -1, 'order', 'o1', 0)",
    ] {
        sqlx::query(sql).execute(&pool).await?;
    }
    let id = o.order_id.to_string();
    sqlx::query(
        "INSERT INTO orders (order_id, customer_id, transaction_id, status, total_minor, \
         currency, created_at, updated_at) VALUES ($1, 'alice', $2, 'PENDING', 4000, 'EUR', 0, 0)",
    )
    .bind(&id)
    .bind(o.transaction_id.to_string())
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_minor) \
         VALUES ($1, 0, 'MUG', 2, 1000), ($1, 1, 'MUG', 1, 1000), ($1, 2, 'TEE', 1, 1000)",
    )
    .bind(&id)
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO inventory_deductions (order_id, status, created_at) VALUES ($1, 'DEDUCTED', 0)",
    )
    .bind(&id)
    .execute(&pool)
    .await?;
    pool.close().await;

    let store = db.store().await?;
    let mug = Sku::parse("MUG")?;
    let tee = Sku::parse("TEE")?;
    assert_eq!(levels(&store, &mug).await?, at(&[("main", 7)]));
    assert_eq!(
        levels(&store, &tee).await?,
        Vec::new(),
        "none on hand: no row"
    );
    assert_eq!(
        store.stock().allocation(&o.order_id).await?,
        allocation(&[("main", &[(&mug, 3), (&tee, 1)])]),
        "the open deduction took its units from main"
    );
    assert!(store.stock().release(&o.order_id).await?);
    assert_eq!(levels(&store, &mug).await?, at(&[("main", 10)]));
    assert_eq!(levels(&store, &tee).await?, at(&[("main", 1)]));
    store.close().await;
    Ok(())
}

mod migration {
    #[tokio::test]
    async fn sqlite() -> anyhow::Result<()> {
        super::migration_moves_existing_stock_into_main(super::TestDatabase::sqlite()?).await
    }

    #[tokio::test]
    async fn postgres() -> anyhow::Result<()> {
        super::migration_moves_existing_stock_into_main(super::TestDatabase::postgres().await?)
            .await
    }
}
