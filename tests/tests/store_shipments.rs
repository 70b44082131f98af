//! A shipment's life in the store on both backends: dispatched once,
//! delivered once and only after the dispatch, the order completed with
//! its last delivery, the emails committed with each move, and the overdue
//! flag raised once. `ConfirmOrder` splits the order's shipping request
//! into one per warehouse its stock came from, each with its lines, and
//! the order completes with the last of them; the migration to shipments
//! keyed by (order, warehouse) keeps every existing shipment and line.
//! The relay's overdue scan flags each late shipment still waiting once,
//! and the customer's email address is kept for the dispatch's workflow
//! but read by nothing else.

// Fixture builders take literals that are valid by construction.
#![allow(clippy::expect_used)]

use ordersaga_domain::{
    Currency, CustomerId, DEFAULT_WAREHOUSE, EmailAddress, EmailStage, Money, Notification,
    OrderEmail, OrderEvent, OrderId, OrderInput, OrderLine, Outgoing, ShipmentLine,
    ShipmentRequest, ShipmentStatus, ShippingAddress, Sku, Topic, TransactionId,
};
use std::time::Duration;

use anyhow::Context;
use ordersaga_domain::WarehouseId;
use ordersaga_store::{Moved, NewStockReceipt, Store};
use ordersaga_tests::{TestDatabase, create_product};

ordersaga_tests::both_backends!(
    a_shipment_moves_forward_once_and_completes_its_order,
    confirm_requests_one_shipment_per_warehouse_and_the_last_delivery_completes,
    two_last_deliveries_at_once_complete_the_order_once,
    the_overdue_scan_flags_each_waiting_shipment_once,
);

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("EUR is a currency"))
}

fn address() -> ShippingAddress {
    ShippingAddress {
        name: "Ann".into(),
        line1: "1 Main St".into(),
        line2: String::new(),
        city: "Berlin".into(),
        postal_code: "10115".into(),
        country: "DE".into(),
    }
}

fn email(order: &OrderInput, stage: EmailStage) -> Outgoing {
    Outgoing::Email(Notification::Order(OrderEmail {
        stage,
        order_id: order.order_id,
        customer_id: order.customer_id.clone(),
        to: EmailAddress::parse("ann@example.com").expect("valid email"),
        lines: order.lines.clone(),
        total: order.total,
        reason: None,
        refunded: false,
        ship_to: Some(address()),
        payment_url: None,
        warehouse: None,
        amendment: None,
    }))
}

async fn events(store: &Store, id: &OrderId) -> anyhow::Result<Vec<OrderEvent>> {
    let order = store.orders().get(id).await?;
    Ok(order
        .map(|o| o.events.iter().map(|e| e.event).collect())
        .unwrap_or_default())
}

async fn a_shipment_moves_forward_once_and_completes_its_order(store: Store) -> anyhow::Result<()> {
    let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
    let order = OrderInput {
        order_id,
        transaction_id: TransactionId::for_order(&order_id),
        customer_id: CustomerId::parse("ann")?,
        lines: vec![OrderLine {
            sku: Sku::parse("BOX")?,
            quantity: 1,
            unit_price: eur(500),
        }],
        total: eur(500),
        customer_email: None,
        shipping_address: Some(address()),
        payment: Default::default(),
    };
    store.orders().place(&order, &[]).await?;
    let request = ShipmentRequest {
        order_id,
        customer_id: order.customer_id.clone(),
        lines: vec![ShipmentLine {
            sku: Sku::parse("BOX")?,
            quantity: 1,
        }],
        address: address(),
        warehouse: DEFAULT_WAREHOUSE.to_string(),
        customer_email: None,
        dispatch_alert_secs: None,
    };
    assert!(store.shipments().request(&request).await?);
    let main = DEFAULT_WAREHOUSE;
    let dispatched_mail = [email(&order, EmailStage::ShipmentDispatched)];
    let delivered_mail = [email(&order, EmailStage::ShipmentDelivered)];
    let still = Moved {
        changed: false,
        order_completed: false,
    };

    // Not dispatched: no delivery, nothing written.
    assert_eq!(
        store
            .shipments()
            .deliver(&order_id, main, &delivered_mail)
            .await?,
        still
    );
    // Waiting too long: flagged once.
    assert!(store.shipments().flag_overdue(&order_id, main).await?);
    assert!(!store.shipments().flag_overdue(&order_id, main).await?);
    assert_eq!(store.shipments().overdue().await?, 1);

    let first = store
        .shipments()
        .dispatch(&order_id, main, &dispatched_mail)
        .await?;
    assert!(first.changed && !first.order_completed);
    assert_eq!(
        store
            .shipments()
            .dispatch(&order_id, main, &dispatched_mail)
            .await?,
        still,
        "a repeated dispatch changes nothing"
    );
    assert!(!store.shipments().flag_overdue(&order_id, main).await?);
    assert_eq!(store.shipments().overdue().await?, 0);

    let delivered = store
        .shipments()
        .deliver(&order_id, main, &delivered_mail)
        .await?;
    assert!(delivered.changed && delivered.order_completed);
    assert_eq!(
        store
            .shipments()
            .deliver(&order_id, main, &delivered_mail)
            .await?,
        still
    );
    // Delivered: no dispatch any more.
    assert_eq!(
        store
            .shipments()
            .dispatch(&order_id, main, &dispatched_mail)
            .await?,
        still
    );
    let shipment = store
        .shipments()
        .of(&order_id, main)
        .await?
        .expect("the shipment");
    assert_eq!(shipment.status, ShipmentStatus::Delivered);
    assert!(shipment.dispatched_at_ms.is_some() && shipment.delivered_at_ms.is_some());
    assert_eq!(store.shipments().of(&order_id, "east").await?, None);
    assert_eq!(
        events(&store, &order_id).await?,
        [
            OrderEvent::OrderPlaced,
            OrderEvent::ShipmentDispatched,
            OrderEvent::ShipmentDelivered,
            OrderEvent::OrderCompleted
        ]
    );
    // One email per move, committed with it.
    assert_eq!(store.outbox().backlog(Topic::Email).await?, 2);
    Ok(())
}

async fn the_overdue_scan_flags_each_waiting_shipment_once(store: Store) -> anyhow::Result<()> {
    let main = DEFAULT_WAREHOUSE;
    let request = |customer_email: Option<EmailAddress>| -> anyhow::Result<ShipmentRequest> {
        Ok(ShipmentRequest {
            order_id: OrderId::from_uuid(uuid::Uuid::new_v4()),
            customer_id: CustomerId::parse("ann")?,
            lines: vec![ShipmentLine {
                sku: Sku::parse("BOX")?,
                quantity: 1,
            }],
            address: address(),
            warehouse: main.to_string(),
            customer_email,
            dispatch_alert_secs: None,
        })
    };
    let waiting = request(Some(EmailAddress::parse("ann@example.com")?))?;
    let taken = request(None)?;
    for shipment in [&waiting, &taken] {
        let order = OrderInput {
            order_id: shipment.order_id,
            transaction_id: TransactionId::for_order(&shipment.order_id),
            customer_id: shipment.customer_id.clone(),
            lines: vec![OrderLine {
                sku: Sku::parse("BOX")?,
                quantity: 1,
                unit_price: eur(500),
            }],
            total: eur(500),
            customer_email: shipment.customer_email.clone(),
            shipping_address: Some(address()),
            payment: Default::default(),
        };
        store.orders().place(&order, &[]).await?;
    }
    assert!(store.shipments().request(&waiting).await?);
    assert!(store.shipments().request(&taken).await?);
    store
        .shipments()
        .dispatch(&taken.order_id, main, &[])
        .await?;

    let now = ordersaga_store::now_ms();
    // Nothing requested a minute ago or earlier.
    assert!(
        store
            .shipments()
            .flag_waiting_since(now - 60_000)
            .await?
            .is_empty()
    );
    // Everything requested before now that still waits: the dispatched one
    // is not late.
    let flagged = store.shipments().flag_waiting_since(now + 1).await?;
    assert_eq!(flagged, [(waiting.order_id, main.to_string())]);
    assert!(
        store
            .shipments()
            .flag_waiting_since(now + 1)
            .await?
            .is_empty(),
        "once"
    );
    assert_eq!(store.shipments().overdue().await?, 1);
    let of = |id| store.shipments().of(id, main);
    assert!(
        of(&waiting.order_id)
            .await?
            .and_then(|s| s.dispatch_overdue_at_ms)
            .is_some()
    );
    assert!(
        of(&taken.order_id)
            .await?
            .and_then(|s| s.dispatch_overdue_at_ms)
            .is_none()
    );

    // The address for the dispatch's emails, and only there.
    let for_dispatch = store
        .shipments()
        .for_dispatch(&waiting.order_id, main)
        .await?;
    assert_eq!(
        for_dispatch.and_then(|s| s.request.customer_email),
        waiting.customer_email
    );
    assert_eq!(
        of(&waiting.order_id)
            .await?
            .and_then(|s| s.request.customer_email),
        None
    );
    let listed = store.shipments().of_order(&waiting.order_id).await?;
    assert!(listed.iter().all(|s| s.request.customer_email.is_none()));
    assert!(
        store
            .shipments()
            .for_dispatch(&OrderId::from_uuid(uuid::Uuid::new_v4()), main)
            .await?
            .is_none()
    );
    Ok(())
}

fn request_for(order: &OrderInput) -> ShipmentRequest {
    ShipmentRequest {
        order_id: order.order_id,
        customer_id: order.customer_id.clone(),
        lines: order.lines.iter().map(ShipmentLine::from).collect(),
        address: address(),
        warehouse: DEFAULT_WAREHOUSE.to_string(),
        customer_email: None,
        dispatch_alert_secs: None,
    }
}

async fn confirm_requests_one_shipment_per_warehouse_and_the_last_delivery_completes(
    store: Store,
) -> anyhow::Result<()> {
    let lamp = create_product(&store, "LAMP", 4_000, 0, 0).await?;
    let rug = create_product(&store, "RUG", 9_000, 0, 0).await?;
    for (key, warehouse, sku) in [("n", "north", &lamp), ("s", "south", &rug)] {
        store
            .stock()
            .receive(&NewStockReceipt {
                idempotency_key: key.to_string(),
                warehouse_id: WarehouseId::parse(warehouse)?,
                lines: vec![(sku.clone(), 5)],
            })
            .await?;
    }
    let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
    let order = OrderInput {
        order_id,
        transaction_id: TransactionId::for_order(&order_id),
        customer_id: CustomerId::parse("ann")?,
        lines: vec![
            OrderLine {
                sku: rug.clone(),
                quantity: 1,
                unit_price: eur(9_000),
            },
            OrderLine {
                sku: lamp.clone(),
                quantity: 2,
                unit_price: eur(4_000),
            },
        ],
        total: eur(17_000),
        customer_email: None,
        shipping_address: Some(address()),
        payment: Default::default(),
    };
    store.orders().place(&order, &[]).await?;
    store
        .stock()
        .deduct(&order_id)
        .await?
        .ok()
        .context("deducted")?;
    // The saga asks for one shipment; the store knows the stock came from
    // two warehouses. A retried ConfirmOrder adds nothing.
    let asked = [Outgoing::Shipment(request_for(&order))];
    store.orders().confirm(&order_id, &asked).await?;
    store.orders().confirm(&order_id, &asked).await?;
    let claim = store
        .outbox()
        .claim(Topic::Shipment, "test", 10, Duration::from_secs(60))
        .await?;
    let mut requests: Vec<ShipmentRequest> = claim
        .entries
        .into_iter()
        .map(|e| match e.message {
            Outgoing::Shipment(r) => Ok(r),
            other => anyhow::bail!("not a shipment: {other:?}"),
        })
        .collect::<anyhow::Result<_>>()?;
    requests.sort_by(|a, b| a.warehouse.cmp(&b.warehouse));
    let line = |sku: &Sku, quantity| ShipmentLine {
        sku: sku.clone(),
        quantity,
    };
    assert_eq!(
        requests
            .iter()
            .map(|r| (r.warehouse.as_str(), r.lines.clone()))
            .collect::<Vec<_>>(),
        [
            ("north", vec![line(&lamp, 2)]),
            ("south", vec![line(&rug, 1)])
        ]
    );
    assert_ne!(requests[0].workflow_id(), requests[1].workflow_id());

    for r in &requests {
        assert!(store.shipments().request(r).await?);
        assert!(!store.shipments().request(r).await?, "retried: no second");
    }
    let stored = store.shipments().of_order(&order_id).await?;
    assert_eq!(stored.len(), 2);
    for r in &requests {
        let one = store
            .shipments()
            .of(&order_id, &r.warehouse)
            .await?
            .context("shipment")?;
        assert_eq!(one.request.lines, r.lines, "each with its own lines");
    }

    let shipments = store.shipments();
    for r in &requests {
        assert!(
            shipments
                .dispatch(&order_id, &r.warehouse, &[])
                .await?
                .changed
        );
    }
    let first = shipments.deliver(&order_id, "north", &[]).await?;
    assert!(
        first.changed && !first.order_completed,
        "south is on its way"
    );
    assert!(
        !events(&store, &order_id)
            .await?
            .contains(&OrderEvent::OrderCompleted)
    );
    let last = shipments.deliver(&order_id, "south", &[]).await?;
    assert!(last.changed && last.order_completed);
    let completed = events(&store, &order_id)
        .await?
        .into_iter()
        .filter(|e| *e == OrderEvent::OrderCompleted)
        .count();
    assert_eq!(completed, 1);

    // A page of one at a time still lists both shipments of the order.
    let (page, next) = shipments.list(1, None).await?;
    let (rest, _) = shipments.list(1, next).await?;
    let mut listed: Vec<String> = page
        .iter()
        .chain(&rest)
        .map(|s| s.request.warehouse.clone())
        .collect();
    listed.sort();
    assert_eq!(listed, ["north", "south"]);
    Ok(())
}

/// Two shipments delivered at the same moment: one of the two deliveries
/// sees the other and completes the order, exactly once.
async fn two_last_deliveries_at_once_complete_the_order_once(store: Store) -> anyhow::Result<()> {
    for round in 0..5 {
        let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
        let order = OrderInput {
            order_id,
            transaction_id: TransactionId::for_order(&order_id),
            customer_id: CustomerId::parse("ann")?,
            lines: vec![OrderLine {
                sku: Sku::parse("BOX")?,
                quantity: 2,
                unit_price: eur(500),
            }],
            total: eur(1_000),
            customer_email: None,
            shipping_address: Some(address()),
            payment: Default::default(),
        };
        store.orders().place(&order, &[]).await?;
        for warehouse in ["east", "west"] {
            let mut request = request_for(&order);
            request.warehouse = warehouse.into();
            request.lines[0].quantity = 1;
            assert!(store.shipments().request(&request).await?);
            assert!(
                store
                    .shipments()
                    .dispatch(&order_id, warehouse, &[])
                    .await?
                    .changed
            );
        }
        let (east, west) = tokio::join!(
            store.shipments().deliver(&order_id, "east", &[]),
            store.shipments().deliver(&order_id, "west", &[]),
        );
        let (east, west) = (east?, west?);
        assert!(east.changed && west.changed, "round {round}");
        assert!(
            east.order_completed != west.order_completed,
            "round {round}: exactly one completes ({east:?}, {west:?})"
        );
        let completed = events(&store, &order_id)
            .await?
            .into_iter()
            .filter(|e| *e == OrderEvent::OrderCompleted)
            .count();
        assert_eq!(completed, 1, "round {round}");
    }
    Ok(())
}

/// A database from before shipments were keyed by (order, warehouse),
/// with a delivered shipment and its lines: after the migration both are
/// there, unchanged, and the order can get a second shipment.
async fn migration_keeps_every_shipment(db: TestDatabase) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(db.url()).await?;
    let dir = tempfile::tempdir()?;
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/migrations");
    for entry in std::fs::read_dir(source)? {
        let path = entry?.path();
        let name = path.file_name().context("file name")?.to_string_lossy();
        let version: u32 = name.get(..4).context("numbered")?.parse()?;
        if version < 18 {
            std::fs::copy(&path, dir.path().join(&*name))?;
        }
    }
    sqlx::migrate::Migrator::new(dir.path())
        .await?
        .run(&pool)
        .await?;
    let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
    let id = order_id.to_string();
    sqlx::query(
        "INSERT INTO shipments (order_id, customer_id, status, recipient_name, line1, line2, \
         city, postal_code, country, created_at, dispatched_at, delivered_at) \
         VALUES ($1, 'ann', 'DELIVERED', 'Ann', '1 Main St', '', 'Berlin', '10115', 'DE', 5, 6, 7)",
    )
    .bind(&id)
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO shipment_lines (order_id, line_no, sku, quantity) \
         VALUES ($1, 0, 'BOX', 2), ($1, 1, 'MUG', 1)",
    )
    .bind(&id)
    .execute(&pool)
    .await?;
    pool.close().await;

    let store = db.store().await?;
    let old = store
        .shipments()
        .of(&order_id, DEFAULT_WAREHOUSE)
        .await?
        .context("the old shipment")?;
    assert_eq!(old.status, ShipmentStatus::Delivered);
    assert_eq!(
        (old.created_at_ms, old.dispatched_at_ms, old.delivered_at_ms),
        (5, Some(6), Some(7))
    );
    assert_eq!(
        old.request.lines,
        [
            ShipmentLine {
                sku: Sku::parse("BOX")?,
                quantity: 2
            },
            ShipmentLine {
                sku: Sku::parse("MUG")?,
                quantity: 1
            }
        ]
    );
    assert_eq!(old.request.address, address());
    let mut east = old.request.clone();
    east.warehouse = "east".into();
    assert!(store.shipments().request(&east).await?);
    assert_eq!(store.shipments().of_order(&order_id).await?.len(), 2);
    store.close().await;
    Ok(())
}

mod migration {
    #[tokio::test]
    async fn sqlite() -> anyhow::Result<()> {
        super::migration_keeps_every_shipment(super::TestDatabase::sqlite()?).await
    }

    #[tokio::test]
    async fn postgres() -> anyhow::Result<()> {
        super::migration_keeps_every_shipment(super::TestDatabase::postgres().await?).await
    }
}
