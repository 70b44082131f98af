//! The demo catalog the dev command seeds, so a newcomer can order at once.

use ordersaga_activities::Store;
use ordersaga_activities::store::NewProduct;
use ordersaga_domain::{Currency, Money, Sku};

/// `(sku, name, price in cents, opening stock)`, all in EUR. The
/// `LAST-ONE` product exists to show the out-of-stock compensation; the
/// `GOLD-BAR` costs 2500.00, inside the simulated gateway's declined range.
pub const DEMO_PRODUCTS: [(&str, &str, i64, i64); 5] = [
    ("MUG-001", "Ordersaga mug", 1_299, 500),
    ("TEE-001", "Durable execution T-shirt", 2_499, 200),
    ("STICKER-01", "Sticker pack", 399, 10_000),
    ("LAST-ONE", "Signed first edition", 4_999, 1),
    ("GOLD-BAR", "Gold bar (always declined)", 250_000, 50),
];

/// Creates the demo products that do not exist yet.
pub async fn seed(store: &Store) -> anyhow::Result<()> {
    let eur = Currency::parse("EUR")?;
    for (sku, name, price, stock) in DEMO_PRODUCTS {
        store
            .create_product_if_absent(&NewProduct {
                sku: Sku::parse(sku)?,
                name: name.to_string(),
                price: Money::new(price, eur),
                opening_stock: stock,
            })
            .await?;
    }
    Ok(())
}
