//! Fulfilment end to end: stock received into several warehouses over gRPC
//! and HTTP, and a real saga whose order no single warehouse can fill
//! taking its stock from two of them (on SQLite and PostgreSQL).

use anyhow::Context;
use ordersaga_domain::{OrderId, ShipmentLine, Sku, WarehouseAllocation, WarehouseId};
use ordersaga_proto::v1 as pb;
use ordersaga_tests::{Stack, TestDatabase, place_request};
use serde_json::{Value, json};
use tonic::Code;

fn receipt(key: &str, warehouse: &str, lines: &[(&str, i64)]) -> pb::CreateStockReceiptRequest {
    pb::CreateStockReceiptRequest {
        idempotency_key: key.into(),
        warehouse: warehouse.into(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| pb::StockReceiptLine {
                sku: (*sku).into(),
                quantity: *quantity,
            })
            .collect(),
    }
}

/// A product's stock per warehouse, as the store holds it.
async fn levels(stack: &Stack, sku: &Sku) -> anyhow::Result<Vec<(String, i64)>> {
    Ok(stack
        .store
        .stock()
        .warehouse_levels(sku)
        .await?
        .into_iter()
        .map(|(w, l)| (w.to_string(), l))
        .collect())
}

fn at(levels: &[(&str, i64)]) -> Vec<(String, i64)> {
    levels.iter().map(|(w, l)| (w.to_string(), *l)).collect()
}

async fn split_order(db: TestDatabase) -> anyhow::Result<()> {
    let stack = Stack::builder().database(db).start().await?;
    let mug = stack.product("MUG-1", 1_000, 2).await?;
    let mut catalog = stack.catalog();

    // Into east over gRPC: the answer names the warehouse.
    let east = catalog
        .create_stock_receipt(receipt("grn-east", "east", &[("MUG-1", 1)]))
        .await?
        .into_inner();
    assert_eq!(east.warehouse, "east");
    // Into west over HTTP.
    let receipts_url = format!("{}/v1/stock-receipts", stack.http_base);
    let res = stack
        .http
        .post(&receipts_url)
        .json(&json!({"idempotency_key": "grn-west", "warehouse": "west",
                      "lines": [{"sku": "MUG-1", "quantity": 3}]}))
        .send()
        .await?;
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await?["warehouse"], "west");
    // A malformed warehouse: refused on both transports, nothing written.
    let err = catalog
        .create_stock_receipt(receipt("grn-bad", "no such/place", &[("MUG-1", 5)]))
        .await
        .err()
        .context("a malformed warehouse is refused")?;
    assert_eq!(err.code(), Code::InvalidArgument);
    let res = stack
        .http
        .post(&receipts_url)
        .json(
            &json!({"idempotency_key": "grn-bad", "warehouse": "x".repeat(65),
                      "lines": [{"sku": "MUG-1", "quantity": 5}]}),
        )
        .send()
        .await?;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await?["error"]["code"],
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        levels(&stack, &mug).await?,
        at(&[("main", 2), ("east", 1), ("west", 3)]),
        "the refused receipts stored nothing"
    );
    assert_eq!(stack.on_hand(&mug).await?, 6, "on hand is the sum");

    // No warehouse holds 4 mugs: main and west (the first pair that does)
    // fill it, two shipments' worth.
    let placed = stack
        .grpc
        .clone()
        .place_order(place_request("alice", &[("MUG-1", 4)], ""))
        .await?
        .into_inner();
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32, "{order:?}");
    let order_id = OrderId::parse(&placed.order_id)?;
    let line = |sku: &Sku, quantity| ShipmentLine {
        sku: sku.clone(),
        quantity,
    };
    assert_eq!(
        stack.store.stock().allocation(&order_id).await?,
        vec![
            WarehouseAllocation {
                warehouse_id: WarehouseId::main(),
                lines: vec![line(&mug, 2)],
            },
            WarehouseAllocation {
                warehouse_id: WarehouseId::parse("west")?,
                lines: vec![line(&mug, 2)],
            },
        ]
    );
    assert_eq!(
        levels(&stack, &mug).await?,
        at(&[("main", 0), ("east", 1), ("west", 1)])
    );
    assert_eq!(stack.on_hand(&mug).await?, 2);
    Ok(())
}

#[tokio::test]
async fn an_order_split_over_two_warehouses_takes_from_both_on_sqlite() -> anyhow::Result<()> {
    split_order(TestDatabase::sqlite()?).await
}

#[tokio::test]
async fn an_order_split_over_two_warehouses_takes_from_both_on_postgres() -> anyhow::Result<()> {
    split_order(TestDatabase::postgres().await?).await
}
