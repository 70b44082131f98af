//! The demo catalog the dev command seeds, so a newcomer can order at once.
//! It goes through the same use cases as `CreateProduct` and
//! `CreateStockReceipt`.

use ordersaga_runtime::auth::{Principal, Role};
use ordersaga_store::Store;

use crate::catalog::{CatalogService, CreateProductCommand, StockReceiptCommand};
use crate::error::ApiError;

/// `(sku, name, price in cents, opening stock, low-stock threshold)`, in
/// EUR. `LAST-ONE` has one unit, to show the out-of-stock refund; `GOLD-BAR`
/// costs 2500.00, inside the simulated gateway's declined range.
pub const DEMO_PRODUCTS: [(&str, &str, i64, i64, i64); 5] = [
    ("MUG-001", "Ordersaga mug", 1_299, 500, 20),
    ("TEE-001", "Durable execution T-shirt", 2_499, 200, 10),
    ("STICKER-01", "Sticker pack", 399, 10_000, 100),
    ("LAST-ONE", "Signed first edition", 4_999, 1, 0),
    ("GOLD-BAR", "Gold bar (always declined)", 250_000, 50, 5),
];

/// Creates the demo products that do not exist yet, each with an opening
/// stock receipt (idempotent: `demo-opening-<sku>`).
pub async fn seed(store: &Store) -> anyhow::Result<()> {
    let catalog = CatalogService::new(store.clone());
    // The API itself, acting as the merchant that stocks the shop.
    let seeder = Principal {
        subject: "demo-seed".to_string(),
        role: Role::Merchant,
    };
    for (sku, name, price, stock, threshold) in DEMO_PRODUCTS {
        let created = catalog
            .create_product(
                &seeder,
                CreateProductCommand {
                    sku: sku.to_string(),
                    name: name.to_string(),
                    price_minor: price,
                    currency: "EUR".to_string(),
                    low_stock_threshold: threshold,
                },
            )
            .await;
        match created {
            Ok(_) | Err(ApiError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
        catalog
            .create_stock_receipt(
                &seeder,
                StockReceiptCommand {
                    idempotency_key: Some(format!("demo-opening-{sku}")),
                    warehouse: None,
                    lines: vec![(sku.to_string(), stock)],
                },
            )
            .await?;
    }
    Ok(())
}
