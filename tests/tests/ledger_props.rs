//! Property: whatever sequence of stock receipts into three warehouses,
//! order deductions and compensations (releases) runs, retried or not,
//! on-hand equals receipts minus the deductions still in force, never goes
//! below zero, and equals the sum of the stock ledger; each warehouse's
//! stock equals what came into it minus what the orders in force took from
//! it, and its own ledger; an order is refused only when the warehouses
//! together hold too little. Runs against the real store (SQLite).

use std::collections::BTreeMap;

use ordersaga_domain::{
    Currency, CustomerId, Money, OrderId, OrderInput, OrderLine, Sku, TransactionId, WarehouseId,
};
use ordersaga_store::NewStockReceipt;
use ordersaga_store::Store;
use ordersaga_tests::{TestDatabase, create_product};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Goods in, into the n-th warehouse.
    Receive(usize, i64),
    /// An order deducting this many units (may be short).
    Deduct(i64),
    /// Compensate the n-th order so far (modulo), if it deducted.
    Release(usize),
    /// Run the n-th order's deduction again (a retried activity).
    RetryDeduct(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..WAREHOUSES.len(), 1..6_i64).prop_map(|(w, q)| Op::Receive(w, q)),
        (1..5_i64).prop_map(Op::Deduct),
        (0..8_usize).prop_map(Op::Release),
        (0..8_usize).prop_map(Op::RetryDeduct),
    ]
}

const WAREHOUSES: [&str; 3] = ["main", "east", "west"];

async fn check(ops: Vec<Op>) -> anyhow::Result<()> {
    let db = TestDatabase::sqlite()?;
    let store: Store = db.store().await?;
    let sku: Sku = create_product(&store, "PROP-1", 100, 0, 1).await?;
    let eur = Currency::parse("EUR")?;
    // Model: per order, units, whether its deduction succeeded, and whether
    // that deduction is still in force.
    let mut orders: Vec<(OrderId, i64, bool, bool)> = Vec::new();
    let mut received = 0;
    let mut received_in: BTreeMap<WarehouseId, i64> = BTreeMap::new();
    for (n, op) in ops.into_iter().enumerate() {
        match op {
            Op::Receive(w, q) => {
                let warehouse_id = WarehouseId::parse(WAREHOUSES[w])?;
                store
                    .stock()
                    .receive(&NewStockReceipt {
                        idempotency_key: format!("r{n}"),
                        warehouse_id: warehouse_id.clone(),
                        lines: vec![(sku.clone(), q)],
                    })
                    .await?;
                received += q;
                *received_in.entry(warehouse_id).or_insert(0) += q;
            }
            Op::Deduct(q) => {
                let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
                store
                    .orders()
                    .place(
                        &OrderInput {
                            order_id,
                            transaction_id: TransactionId::for_order(&order_id),
                            customer_id: CustomerId::parse("prop")?,
                            lines: vec![OrderLine {
                                sku: sku.clone(),
                                quantity: q,
                                unit_price: Money::new(100, eur),
                            }],
                            total: Money::new(100 * q, eur),
                            customer_email: None,
                            shipping_address: None,
                            payment: Default::default(),
                        },
                        &[],
                    )
                    .await?;
                let available = received - orders.iter().filter(|o| o.3).map(|o| o.1).sum::<i64>();
                let ok = store.stock().deduct(&order_id).await?.is_ok();
                anyhow::ensure!(
                    ok == (available >= q),
                    "{q} wanted, {available} on hand, deducted: {ok}"
                );
                orders.push((order_id, q, ok, ok));
            }
            Op::Release(i) if !orders.is_empty() => {
                let k = i % orders.len();
                store.stock().release(&orders[k].0).await?;
                orders[k].3 = false;
            }
            Op::RetryDeduct(i) if !orders.is_empty() => {
                let k = i % orders.len();
                // A retry answers as the first attempt did and moves no
                // stock, even after a release.
                let again = store.stock().deduct(&orders[k].0).await?.is_ok();
                anyhow::ensure!(
                    again == orders[k].2,
                    "a retried deduction changed its answer"
                );
            }
            Op::Release(_) | Op::RetryDeduct(_) => {}
        }
        let in_force: i64 = orders.iter().filter(|o| o.3).map(|o| o.1).sum();
        let product = store
            .catalog()
            .get(&sku)
            .await?
            .ok_or_else(|| anyhow::anyhow!("gone"))?;
        anyhow::ensure!(product.on_hand >= 0, "negative stock");
        anyhow::ensure!(
            product.on_hand == received - in_force,
            "on hand {} != received {received} - deducted {in_force}",
            product.on_hand
        );
        anyhow::ensure!(product.on_hand == store.stock().ledger_balance(&sku).await?);
        let mut taken_from: BTreeMap<WarehouseId, i64> = BTreeMap::new();
        for o in orders.iter().filter(|o| o.3) {
            let allocation = store.stock().allocation(&o.0).await?;
            let units: i64 = allocation
                .iter()
                .flat_map(|a| &a.lines)
                .map(|l| l.quantity)
                .sum();
            anyhow::ensure!(units == o.1, "allocated {units} of {}", o.1);
            for a in allocation {
                *taken_from.entry(a.warehouse_id).or_insert(0) +=
                    a.lines.iter().map(|l| l.quantity).sum::<i64>();
            }
        }
        for (warehouse, level) in store.stock().warehouse_levels(&sku).await? {
            let came_in = received_in.get(&warehouse).copied().unwrap_or(0);
            let went_out = taken_from.get(&warehouse).copied().unwrap_or(0);
            anyhow::ensure!(level >= 0, "negative stock in {warehouse}");
            anyhow::ensure!(
                level == came_in - went_out,
                "{warehouse}: {level} != received {came_in} - taken {went_out}"
            );
            anyhow::ensure!(
                level
                    == store
                        .stock()
                        .warehouse_ledger_balance(&warehouse, &sku)
                        .await?
            );
        }
    }
    store.close().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn on_hand_is_receipts_minus_deductions_in_force(ops in prop::collection::vec(op(), 1..14)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let outcome = rt.block_on(check(ops));
        prop_assert!(outcome.is_ok(), "{:?}", outcome.err());
    }
}
