//! Catalog and inventory end to end: the merchant's and customers' calls over
//! gRPC and HTTP, low-stock alerts raised by real sagas (also across a worker
//! crash), and the race for the last units on SQLite and PostgreSQL.

use std::time::Duration;

use anyhow::Context;
use ordersaga_proto::v1 as pb;
use ordersaga_tests::auth::CatalogClient;
use ordersaga_tests::{Stack, TestDatabase, create_product, place_request};
use ordersaga_worker::WorkerSettings;
use serde_json::{Value, json};
use tonic::Code;

const SAGA_TIMEOUT: Duration = Duration::from_secs(60);

async fn catalog(stack: &Stack) -> anyhow::Result<CatalogClient> {
    Ok(stack.catalog())
}

fn new_product(sku: &str, cents: i64, threshold: i64) -> pb::CreateProductRequest {
    pb::CreateProductRequest {
        sku: sku.into(),
        name: format!("Product {sku}"),
        price: Some(pb::Money {
            minor_units: cents,
            currency: "EUR".into(),
        }),
        low_stock_threshold: threshold,
    }
}

fn receipt(key: &str, lines: &[(&str, i64)]) -> pb::CreateStockReceiptRequest {
    pb::CreateStockReceiptRequest {
        idempotency_key: key.into(),
        warehouse: String::new(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| pb::StockReceiptLine {
                sku: (*sku).into(),
                quantity: *quantity,
            })
            .collect(),
    }
}

/// Places an order over gRPC and waits until it is terminal.
async fn order_to_the_end(
    stack: &Stack,
    customer: &str,
    lines: &[(&str, i64)],
) -> anyhow::Result<pb::Order> {
    let placed = stack
        .grpc
        .clone()
        .place_order(place_request(customer, lines, ""))
        .await?
        .into_inner();
    stack.terminal_order(&placed.order_id).await
}

#[tokio::test]
async fn merchant_calls_over_grpc_and_http_with_clear_errors() -> anyhow::Result<()> {
    let stack = Stack::builder().without_worker().start().await?;
    let mut cat = catalog(&stack).await?;

    let mug = cat
        .create_product(new_product("MUG-1", 1_299, 5))
        .await?
        .into_inner();
    assert_eq!(
        (mug.on_hand, mug.low_stock_threshold, mug.rating_count),
        (0, 5, 0)
    );
    let dup = cat.create_product(new_product("MUG-1", 1, 0)).await.err();
    assert_eq!(dup.context("duplicate")?.code(), Code::AlreadyExists);

    let products_url = format!("{}/v1/products", stack.http_base);
    let body = json!({"sku": "TEE-1", "name": "T-shirt",
                      "price": {"minor_units": 2_000, "currency": "EUR"}});
    let res = stack.http.post(&products_url).json(&body).send().await?;
    assert_eq!(res.status(), 201);
    let res = stack.http.post(&products_url).json(&body).send().await?;
    assert_eq!(res.status(), 409);
    assert_eq!(
        res.json::<Value>().await?["error"]["code"],
        "ALREADY_EXISTS"
    );

    let bad = [
        new_product("bad sku", 100, 0),
        new_product("OK-1", 0, 0),
        new_product("OK-1", 100, -1),
        pb::CreateProductRequest {
            name: "  ".into(),
            ..new_product("OK-1", 100, 0)
        },
        pb::CreateProductRequest {
            price: Some(pb::Money {
                minor_units: 100,
                currency: "euro".into(),
            }),
            ..new_product("OK-1", 100, 0)
        },
        // Three capitals that ISO 4217 does not know; gold has no minor unit.
        pb::CreateProductRequest {
            price: Some(pb::Money {
                minor_units: 100,
                currency: "ABC".into(),
            }),
            ..new_product("OK-1", 100, 0)
        },
        pb::CreateProductRequest {
            price: Some(pb::Money {
                minor_units: 100,
                currency: "XAU".into(),
            }),
            ..new_product("OK-1", 100, 0)
        },
        // More than the payment gateway takes.
        new_product("OK-1", 1_000_000_000_000, 0),
    ];
    for req in bad {
        let err = cat.create_product(req.clone()).await.err();
        assert_eq!(
            err.context("bad product")?.code(),
            Code::InvalidArgument,
            "{req:?}"
        );
    }
    let res = stack
        .http
        .post(&products_url)
        .json(&json!({"sku": "OK-2", "name": "x", "price": {"minor_units": -5, "currency": "EUR"}}))
        .send()
        .await?;
    assert_eq!(res.status(), 400);
    let listed = cat
        .list_products(pb::ListProductsRequest {})
        .await?
        .into_inner();
    let skus: Vec<&str> = listed.products.iter().map(|p| p.sku.as_str()).collect();
    assert_eq!(skus, ["MUG-1", "TEE-1"], "bad input stored nothing");

    // Receipts: idempotent by key, all-or-nothing on bad lines.
    let first = cat
        .create_stock_receipt(receipt("grn-1", &[("MUG-1", 10), ("TEE-1", 4)]))
        .await?
        .into_inner();
    let again = cat
        .create_stock_receipt(receipt("grn-1", &[("MUG-1", 10), ("TEE-1", 4)]))
        .await?
        .into_inner();
    assert_eq!(first.receipt_id, again.receipt_id);
    for (req, what) in [
        (
            receipt("grn-2", &[("MUG-1", 3), ("NOPE-1", 1)]),
            "unknown sku",
        ),
        (receipt("grn-3", &[("MUG-1", 0)]), "zero quantity"),
        (receipt("grn-4", &[("MUG-1", -3)]), "negative quantity"),
        (receipt("grn-5", &[]), "no lines"),
        (receipt("", &[("MUG-1", 1)]), "no key"),
    ] {
        let err = cat.create_stock_receipt(req).await.err();
        assert_eq!(err.context(what)?.code(), Code::InvalidArgument, "{what}");
    }
    let receipts_url = format!("{}/v1/stock-receipts", stack.http_base);
    let body = json!({"lines": [{"sku": "TEE-1", "quantity": 6}]});
    let res = stack
        .http
        .post(&receipts_url)
        .header("Idempotency-Key", "grn-http")
        .json(&body)
        .send()
        .await?;
    assert_eq!(res.status(), 201);
    let res = stack
        .http
        .post(&receipts_url)
        .header("Idempotency-Key", "grn-http")
        .json(&body)
        .send()
        .await?;
    assert_eq!(res.status(), 200, "replayed receipt");
    let res = stack
        .http
        .post(&receipts_url)
        .header("Idempotency-Key", "grn-http")
        .json(&json!({"lines": [{"sku": "TEE-1", "quantity": 7}]}))
        .send()
        .await?;
    assert_eq!(res.status(), 409, "the key reused with other lines");
    assert_eq!(
        res.json::<Value>().await?["error"]["code"],
        "FAILED_PRECONDITION"
    );
    let res = stack
        .http
        .post(&receipts_url)
        .json(&json!({"idempotency_key": "grn-6", "lines": [{"sku": "NOPE-1", "quantity": 1}]}))
        .send()
        .await?;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await?["error"]["code"],
        "INVALID_ARGUMENT"
    );

    let mug = cat
        .get_product(pb::GetProductRequest {
            sku: "MUG-1".into(),
        })
        .await?
        .into_inner();
    assert_eq!(mug.on_hand, 10);
    let tee: Value = stack
        .http
        .get(format!("{products_url}/TEE-1"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(tee["on_hand"], 10);
    let err = cat
        .get_product(pb::GetProductRequest {
            sku: "NOPE-1".into(),
        })
        .await
        .err();
    assert_eq!(err.context("unknown product")?.code(), Code::NotFound);
    let res = stack
        .http
        .get(format!("{products_url}/NOPE-1"))
        .send()
        .await?;
    assert_eq!(res.status(), 404);
    Ok(())
}

#[tokio::test]
async fn low_stock_alerts_come_from_real_orders_once_per_crossing() -> anyhow::Result<()> {
    let stack = Stack::builder().start().await?;
    create_product(&stack.store, "MUG-1", 1_000, 5, 2).await?;
    let mut cat = catalog(&stack).await?;

    let first = order_to_the_end(&stack, "kim", &[("MUG-1", 3)]).await?; // 5 -> 2
    assert_eq!(first.status, pb::OrderStatus::Confirmed as i32);
    order_to_the_end(&stack, "kim", &[("MUG-1", 1)]).await?; // 2 -> 1: stays low
    cat.create_stock_receipt(receipt("refill", &[("MUG-1", 9)]))
        .await?; // 1 -> 10: re-arms
    order_to_the_end(&stack, "lee", &[("MUG-1", 8)]).await?; // 10 -> 2: again

    let alerts = cat
        .list_low_stock_alerts(pb::ListLowStockAlertsRequest {
            sku: "MUG-1".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .alerts;
    assert_eq!(alerts.len(), 2);
    let oldest = alerts.last().context("alert")?;
    assert_eq!(oldest.cause, format!("order:{}", first.order_id));
    assert_eq!((oldest.on_hand, oldest.threshold), (2, 2));
    let http: Value = stack
        .http
        .get(format!(
            "{}/v1/low-stock-alerts?sku=MUG-1&page_size=1",
            stack.http_base
        ))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(http["alerts"].as_array().map(Vec::len), Some(1));
    assert!(http["next_page_token"].is_string(), "a second page exists");
    Ok(())
}

#[tokio::test]
async fn low_stock_alert_survives_a_worker_killed_right_after_the_deduction() -> anyhow::Result<()>
{
    let mut stack = Stack::builder().without_worker().start().await?;
    let mug = create_product(&stack.store, "MUG-1", 1_000, 5, 2).await?;
    let mut doomed = stack.spawn_worker_process(&[
        ("ORDERSAGA_CRASH_AFTER", "ProcessInventory"),
        ("ORDERSAGA_STICKY_TIMEOUT_MS", "1000"),
    ])?;
    let placed = stack
        .grpc
        .place_order(place_request("max", &[("MUG-1", 4)], ""))
        .await?
        .into_inner();
    // The worker deducts, commits, and dies before Temporal hears of it.
    let status = tokio::time::timeout(SAGA_TIMEOUT, doomed.wait()).await??;
    assert!(!status.success(), "the worker crashed");
    assert_eq!(stack.on_hand(&mug).await?, 1);
    let (alerts, _) = stack.store.stock().low_stock_alerts(None, 10, None).await?;
    assert_eq!(alerts.len(), 1, "raised with the deduction");

    stack.start_worker(WorkerSettings::default())?;
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    assert_eq!(stack.on_hand(&mug).await?, 1, "deducted once");
    assert_eq!(stack.store.stock().ledger_balance(&mug).await?, 1);
    let (alerts, _) = stack.store.stock().low_stock_alerts(None, 10, None).await?;
    assert_eq!(alerts.len(), 1, "the retried step raised no second alert");
    stack.stop_workers()
}

#[tokio::test]
async fn only_buyers_rate_and_a_second_rating_replaces_the_first() -> anyhow::Result<()> {
    let stack = Stack::builder().start().await?;
    create_product(&stack.store, "MUG-1", 1_000, 10, 0).await?;
    create_product(&stack.store, "BAR-1", 250_000, 10, 0).await?;
    let mut cat = catalog(&stack).await?;
    order_to_the_end(&stack, "nia", &[("MUG-1", 1)]).await?;
    order_to_the_end(&stack, "oli", &[("MUG-1", 1)]).await?;
    // Declined payment: a FAILED order does not make a buyer.
    let failed = order_to_the_end(&stack, "pat", &[("BAR-1", 1)]).await?;
    assert_eq!(failed.status, pb::OrderStatus::Failed as i32);

    let rate = |customer: &str, sku: &str, stars: i32| pb::SubmitReviewRatingRequest {
        customer_id: customer.into(),
        sku: sku.into(),
        stars,
    };
    let p = cat
        .submit_review_rating(rate("nia", "MUG-1", 4))
        .await?
        .into_inner();
    assert_eq!((p.rating_average, p.rating_count), (4.0, 1));
    let p = cat
        .submit_review_rating(rate("nia", "MUG-1", 1))
        .await?
        .into_inner();
    assert_eq!(
        (p.rating_average, p.rating_count),
        (1.0, 1),
        "replaced, not added"
    );
    let p = cat
        .submit_review_rating(rate("oli", "MUG-1", 4))
        .await?
        .into_inner();
    assert_eq!((p.rating_average, p.rating_count), (2.5, 2));

    for (req, code) in [
        (rate("pat", "BAR-1", 5), Code::FailedPrecondition),
        (rate("zed", "MUG-1", 5), Code::FailedPrecondition),
        (rate("nia", "MUG-1", 0), Code::InvalidArgument),
        (rate("nia", "MUG-1", 6), Code::InvalidArgument),
        (rate("nia", "NOPE-1", 5), Code::NotFound),
    ] {
        let err = cat.submit_review_rating(req.clone()).await.err();
        assert_eq!(err.context("rejected rating")?.code(), code, "{req:?}");
    }
    let res = stack
        .http
        .post(format!("{}/v1/products/MUG-1/ratings", stack.http_base))
        .json(&json!({"customer_id": "zed", "stars": 5}))
        .send()
        .await?;
    assert_eq!(res.status(), 409);
    assert_eq!(
        res.json::<Value>().await?["error"]["code"],
        "FAILED_PRECONDITION"
    );
    let p = cat
        .get_product(pb::GetProductRequest {
            sku: "MUG-1".into(),
        })
        .await?
        .into_inner();
    assert_eq!(
        (p.rating_average, p.rating_count),
        (2.5, 2),
        "rejections changed nothing"
    );
    Ok(())
}

/// N orders race for k units: exactly k confirm, the rest fail and are
/// refunded, and stock ends at zero, never below.
async fn last_units_race(db: TestDatabase) -> anyhow::Result<()> {
    const UNITS: i64 = 3;
    const ORDERS: usize = 8;
    let stack = Stack::builder().database(db).start().await?;
    let sku = create_product(&stack.store, "LAST-1", 1_000, UNITS, 0).await?;
    let placed = futures::future::try_join_all((0..ORDERS).map(|n| {
        let mut grpc = stack.grpc.clone();
        async move {
            anyhow::Ok(
                grpc.place_order(place_request(&format!("racer-{n}"), &[("LAST-1", 1)], ""))
                    .await?
                    .into_inner(),
            )
        }
    }))
    .await?;
    let mut confirmed = 0;
    for p in &placed {
        let o = stack.terminal_order(&p.order_id).await?;
        if o.status == pb::OrderStatus::Confirmed as i32 {
            confirmed += 1;
        } else {
            assert_eq!(o.failure_code, "OUT_OF_STOCK");
            assert_eq!(o.payment_status, pb::PaymentStatus::Refunded as i32);
            let txn = ordersaga_domain::TransactionId::parse(&o.transaction_id)?;
            let books = stack.gateway.ledger(&txn).await?.context("books")?;
            assert_eq!((books.captures, books.refunds), (1, 1));
        }
    }
    assert_eq!(confirmed, UNITS);
    assert_eq!(stack.on_hand(&sku).await?, 0);
    assert_eq!(stack.store.stock().ledger_balance(&sku).await?, 0);
    Ok(())
}

#[tokio::test]
async fn last_units_race_on_sqlite() -> anyhow::Result<()> {
    last_units_race(TestDatabase::sqlite()?).await
}

#[tokio::test]
async fn last_units_race_on_postgres() -> anyhow::Result<()> {
    last_units_race(TestDatabase::postgres().await?).await
}
