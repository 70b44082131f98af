//! The catalog's use cases, independent of transport: `CreateProduct`,
//! `CreateStockReceipt`, reads with stock and ratings, low-stock alerts and
//! `SubmitReviewRating`. Bad input is rejected before anything is stored.

use ordersaga_domain::{Currency, Money, Sku, WarehouseId};
use ordersaga_runtime::auth::{Principal, Role};
use ordersaga_store::Store;
use ordersaga_store::{
    LowStockAlertRecord, NewProduct, NewStockReceipt, Product, StockReceipt, StoreError,
};

use crate::access::{ANYONE, STAFF, acting_customer, require};
use crate::error::{ApiError, invalid};
use crate::page::page_request;

/// Longest product name.
pub const MAX_NAME: usize = 200;
/// Most units one receipt line may bring in.
pub const MAX_RECEIPT_QUANTITY: i64 = 1_000_000;
/// Most lines of one receipt.
pub const MAX_RECEIPT_LINES: usize = 100;

/// A `CreateProduct` as it arrives, before validation.
#[derive(Debug, Clone, Default)]
pub struct CreateProductCommand {
    /// Stock keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Price in minor units.
    pub price_minor: i64,
    /// ISO 4217 currency of the price.
    pub currency: String,
    /// At or below this many units, the merchant is alerted.
    pub low_stock_threshold: i64,
}

/// A `CreateStockReceipt` as it arrives, before validation.
#[derive(Debug, Clone, Default)]
pub struct StockReceiptCommand {
    /// Required merchant key of the document.
    pub idempotency_key: Option<String>,
    /// The warehouse the goods came into; none or empty: `main`.
    pub warehouse: Option<String>,
    /// `(sku, units)`.
    pub lines: Vec<(String, i64)>,
}

/// A page of alerts and the token of the next one.
pub type AlertPage = (Vec<LowStockAlertRecord>, Option<String>);

fn sku(value: &str) -> Result<Sku, ApiError> {
    Sku::parse(value).map_err(|e| invalid(e.to_string()))
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::ProductExists(_) => ApiError::AlreadyExists(e.to_string()),
        StoreError::UnknownProduct(_) => ApiError::NotFound(e.to_string()),
        StoreError::NotABuyer { .. } | StoreError::KeyReused(_) => {
            ApiError::FailedPrecondition(e.to_string())
        }
        other => ApiError::internal(other),
    }
}

/// The catalog's use cases over the store. A receipt's low-stock alerts
/// commit their merchant emails to the outbox in the receipt's own
/// transaction; the notifications service delivers them.
#[derive(Clone)]
pub struct CatalogService {
    store: Store,
}

impl CatalogService {
    /// A catalog over this store.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// `CreateProduct`.
    pub async fn create_product(
        &self,
        caller: &Principal,
        cmd: CreateProductCommand,
    ) -> Result<Product, ApiError> {
        require(caller, STAFF, "create products")?;
        let sku = sku(&cmd.sku)?;
        let name = cmd.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control)
        {
            return Err(invalid(format!(
                "name must be 1 to {MAX_NAME} printable characters"
            )));
        }
        if cmd.price_minor <= 0 {
            return Err(invalid("price must be greater than 0"));
        }
        let currency = Currency::parse(&cmd.currency).map_err(|e| invalid(e.to_string()))?;
        let price = Money::new(cmd.price_minor, currency);
        price
            .check_gateway_limit()
            .map_err(|e| invalid(e.to_string()))?;
        if !(0..=MAX_RECEIPT_QUANTITY).contains(&cmd.low_stock_threshold) {
            return Err(invalid(format!(
                "low_stock_threshold must be 0 to {MAX_RECEIPT_QUANTITY}"
            )));
        }
        self.store
            .catalog()
            .create(&NewProduct {
                sku,
                name: name.to_string(),
                price,
                low_stock_threshold: cmd.low_stock_threshold,
            })
            .await
            .map_err(store_error)
    }

    /// One product.
    pub async fn get_product(
        &self,
        caller: &Principal,
        sku_text: &str,
    ) -> Result<Product, ApiError> {
        require(caller, ANYONE, "read the catalog")?;
        let sku = sku(sku_text)?;
        self.store
            .catalog()
            .get(&sku)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ApiError::NotFound(format!("product {sku} not found")))
    }

    /// One product with its stock per warehouse (every warehouse that
    /// holds or held it, in the fixed warehouse order; the units sum to
    /// its on-hand).
    pub async fn get_product_stock(
        &self,
        caller: &Principal,
        sku_text: &str,
    ) -> Result<(Product, Vec<(WarehouseId, i64)>), ApiError> {
        let product = self.get_product(caller, sku_text).await?;
        let levels = self
            .store
            .stock()
            .warehouse_levels(&product.sku)
            .await
            .map_err(store_error)?;
        Ok((product, levels))
    }

    /// Whether the store answers (readiness).
    pub async fn ready(&self) -> Result<(), ApiError> {
        self.store
            .catalog()
            .list()
            .await
            .map(drop)
            .map_err(store_error)
    }

    /// The whole catalog.
    pub async fn list_products(&self, caller: &Principal) -> Result<Vec<Product>, ApiError> {
        require(caller, ANYONE, "read the catalog")?;
        self.store.catalog().list().await.map_err(store_error)
    }

    /// `CreateStockReceipt`. Unknown skus, quantities <= 0 and malformed
    /// warehouse ids are INVALID_ARGUMENT and store nothing. A warehouse
    /// not seen before is opened by its first receipt.
    pub async fn create_stock_receipt(
        &self,
        caller: &Principal,
        cmd: StockReceiptCommand,
    ) -> Result<StockReceipt, ApiError> {
        require(caller, STAFF, "receive stock")?;
        let key = match cmd.idempotency_key.as_deref().map(str::trim) {
            Some(k) if !k.is_empty() && k.len() <= 128 && !k.chars().any(char::is_control) => k,
            _ => {
                return Err(invalid(
                    "idempotency_key must be 1 to 128 printable characters",
                ));
            }
        };
        let warehouse_id = match cmd.warehouse.as_deref() {
            None | Some("") => WarehouseId::main(),
            Some(w) => WarehouseId::parse(w).map_err(|e| invalid(e.to_string()))?,
        };
        if cmd.lines.is_empty() || cmd.lines.len() > MAX_RECEIPT_LINES {
            return Err(invalid(format!(
                "a receipt has 1 to {MAX_RECEIPT_LINES} lines"
            )));
        }
        let mut lines = Vec::with_capacity(cmd.lines.len());
        for (n, (sku_text, quantity)) in cmd.lines.iter().enumerate() {
            let sku = sku(sku_text).map_err(|e| invalid(format!("line {}: {e}", n + 1)))?;
            if !(1..=MAX_RECEIPT_QUANTITY).contains(quantity) {
                return Err(invalid(format!(
                    "line {}: quantity must be 1 to {MAX_RECEIPT_QUANTITY}, got {quantity}",
                    n + 1
                )));
            }
            if self
                .store
                .catalog()
                .get(&sku)
                .await
                .map_err(store_error)?
                .is_none()
            {
                return Err(invalid(format!("line {}: unknown product {sku}", n + 1)));
            }
            lines.push((sku, *quantity));
        }
        let receipt = self
            .store
            .stock()
            .receive(&NewStockReceipt {
                idempotency_key: key.to_string(),
                warehouse_id,
                lines,
            })
            .await
            .map_err(|e| match e {
                // Deleted between the check and the write.
                StoreError::UnknownProduct(_) => invalid(e.to_string()),
                other => store_error(other),
            })?;
        Ok(receipt)
    }

    /// Low-stock alerts, newest first.
    pub async fn list_low_stock_alerts(
        &self,
        caller: &Principal,
        sku_text: Option<&str>,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<AlertPage, ApiError> {
        require(caller, STAFF, "list low-stock alerts")?;
        let sku = sku_text.filter(|s| !s.is_empty()).map(sku).transpose()?;
        let (limit, after) = page_request(page_size, page_token)?;
        let (alerts, next) = self
            .store
            .stock()
            .low_stock_alerts(sku.as_ref(), limit, after)
            .await
            .map_err(store_error)?;
        Ok((alerts, next.map(|c| c.to_token())))
    }

    /// `SubmitReviewRating`.
    pub async fn submit_rating(
        &self,
        caller: &Principal,
        customer_id: &str,
        sku_text: &str,
        stars: i64,
    ) -> Result<Product, ApiError> {
        let customer = acting_customer(caller, customer_id, &[Role::Operator], "rate products")?;
        let sku = sku(sku_text)?;
        if !(1..=5).contains(&stars) {
            return Err(invalid(format!("stars must be 1 to 5, got {stars}")));
        }
        self.store
            .catalog()
            .rate(&customer, &sku, stars)
            .await
            .map_err(store_error)
    }
}
