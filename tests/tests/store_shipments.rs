//! A shipment's life in the store on both backends: dispatched once,
//! delivered once and only after the dispatch, the order completed with
//! its last delivery, the emails committed with each move, and the overdue
//! flag raised once.

// Fixture builders take literals that are valid by construction.
#![allow(clippy::expect_used)]

use ordersaga_domain::{
    Currency, CustomerId, DEFAULT_WAREHOUSE, EmailAddress, EmailStage, Money, Notification,
    OrderEmail, OrderEvent, OrderId, OrderInput, OrderLine, Outgoing, ShipmentLine,
    ShipmentRequest, ShipmentStatus, ShippingAddress, Sku, Topic, TransactionId,
};
use ordersaga_store::{Moved, Store};

ordersaga_tests::both_backends!(a_shipment_moves_forward_once_and_completes_its_order);

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
