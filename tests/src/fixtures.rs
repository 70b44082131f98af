//! What tests set up the shop with: products with opening stock and valid
//! `PlaceOrder` requests.

use ordersaga_domain::{Currency, Money, Sku, WarehouseId};
use ordersaga_proto::v1 as pb;
use ordersaga_store::{NewProduct, NewStockReceipt, Store};

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
