//! What tests set up the shop with: products with opening stock, valid
//! `PlaceOrder` requests, and an order's email with a mailer that keeps
//! what it sends in a directory.

use anyhow::Context;
use ordersaga_activities::mail::{Delivery, MailSettings, Mailer};
use ordersaga_domain::{
    Currency, CustomerId, EmailAddress, EmailStage, FailureReason, Money, Notification, OrderEmail,
    OrderId, OrderLine, ShippingAddress, Sku, WarehouseId,
};
use ordersaga_proto::v1 as pb;
use ordersaga_store::{NewProduct, NewStockReceipt, NotificationRecord, Store};

/// Creates a product (price in EUR cents, with a low-stock threshold) and
/// receives its opening stock, as a merchant would.
pub async fn create_product(
    store: &Store,
    sku: &str,
    price_cents: i64,
    stock: i64,
    low_stock_threshold: i64,
) -> anyhow::Result<Sku> {
    let sku = Sku::parse(sku)?;
    store
        .catalog()
        .create(&NewProduct {
            sku: sku.clone(),
            name: format!("Test product {sku}"),
            price: Money::new(price_cents, Currency::parse("EUR")?),
            low_stock_threshold,
        })
        .await?;
    if stock > 0 {
        store
            .stock()
            .receive(&NewStockReceipt {
                idempotency_key: format!("opening-{sku}"),
                warehouse_id: WarehouseId::main(),
                lines: vec![(sku.clone(), stock)],
            })
            .await?;
    }
    Ok(sku)
}

/// A valid `PlaceOrder` request: the lines, a contact email and a shipping
/// address, and the idempotency key (empty: none).
pub fn place_request(customer: &str, lines: &[(&str, i64)], key: &str) -> pb::PlaceOrderRequest {
    pb::PlaceOrderRequest {
        customer_email: format!("{customer}@example.com"),
        shipping_address: Some(pb::ShippingAddress {
            name: "Test Customer".into(),
            line1: "1 Test Street".into(),
            line2: String::new(),
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: "DE".into(),
        }),
        customer_id: customer.to_string(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| pb::OrderLineRequest {
                sku: (*sku).to_string(),
                quantity: *quantity,
            })
            .collect(),
        idempotency_key: key.to_string(),
    }
}

/// The address the order emails of [`order_email`] ship to.
pub fn shipping_address() -> ShippingAddress {
    ShippingAddress {
        name: "Alice Liddell".into(),
        line1: "1 Rabbit Hole".into(),
        line2: String::new(),
        city: "Oxford".into(),
        postal_code: "OX1 1AA".into(),
        country: "GB".into(),
    }
}

/// The `stage` email of one order (two mugs at EUR 12.50, for alice).
pub fn order_email(
    stage: EmailStage,
    reason: Option<FailureReason>,
    refunded: bool,
) -> anyhow::Result<Notification> {
    let eur = |minor| Currency::parse("EUR").map(|c| Money::new(minor, c));
    Ok(Notification::Order(OrderEmail {
        stage,
        order_id: OrderId::from_uuid(uuid::Uuid::from_u128(42)),
        customer_id: CustomerId::parse("alice")?,
        to: EmailAddress::parse("alice@example.com")?,
        lines: vec![OrderLine {
            sku: Sku::parse("MUG-1")?,
            quantity: 2,
            unit_price: eur(1_250)?,
        }],
        total: eur(2_500)?,
        reason,
        refunded,
        ship_to: Some(shipping_address()),
        payment_url: None,
        warehouse: None,
        amendment: None,
    }))
}

/// A mailer that writes each email to `dir` as an `.eml` file.
pub fn mailbox_mailer(dir: &std::path::Path, merchant: Option<&str>) -> anyhow::Result<Mailer> {
    Ok(Mailer::new(MailSettings {
        delivery: Delivery::Mailbox(dir.to_path_buf()),
        merchant: merchant.map(str::to_string),
        public_url: "https://shop.example/".into(),
        ..MailSettings::default()
    })?)
}

/// The stored record of `n`, which must exist.
pub async fn stored_email(store: &Store, n: &Notification) -> anyhow::Result<NotificationRecord> {
    store
        .notifications()
        .get(&n.subject_id(), n.stage())
        .await?
        .with_context(|| format!("no record of the {} email", n.stage()))
}
