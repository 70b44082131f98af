//! The HTTP/JSON mirror of the gRPC API (axum).
//!
//! Orders: `POST /v1/orders`, `GET /v1/orders/{id}`, `GET /v1/orders`,
//! `POST /v1/orders/{id}/cancel`, `GET /v1/shipments`. Couriers:
//! `POST /v1/shipments/{order_id}/dispatch`, `.../deliver`. Operators:
//! `POST /v1/orders/{id}/retry-compensation`,
//! `POST /v1/orders/{id}/close-attention`. Spending limits (merchants and
//! operators): `GET`, `PUT`, `DELETE /v1/customers/{id}/spending-limit`. Payments:
//! `POST /v1/payments/webhook` (the gateway's signed events). Catalog: `POST /v1/products`, `GET /v1/products`,
//! `GET /v1/products/{sku}`, `POST /v1/products/{sku}/ratings`,
//! `POST /v1/stock-receipts`, `GET /v1/low-stock-alerts`. Plus `GET /healthz`.
//! Errors are JSON:
//! `{"error": {"code": "INVALID_ARGUMENT", "message": "..."}}`.
//!
//! Every route but `/healthz` and the webhook (signed by the gateway)
//! takes a bearer token: a handler that needs one extracts [`Caller`]
//! first, so an unauthenticated request is refused (`401`) before its body
//! is read; what the caller may do is [`crate::access`]'s.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRef, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use ordersaga_activities::gateway::webhook;
use ordersaga_domain::{OrderStatus, ShipmentStatus, ShippingAddress};
use ordersaga_runtime::auth::{AuthError, Authenticator, Principal};
use serde::Deserialize;

use crate::catalog::{CatalogService, CreateProductCommand, StockReceiptCommand};
use crate::convert::{
    AlertJson, OrderJson, PlacedJson, ProductJson, ReceiptJson, ReceiptLineJson, ShipmentJson,
    SpendingLimitJson, SummaryJson,
};
use crate::error::ApiError;
use crate::service::{OrderService, PlaceOrderCommand};
use crate::spending::LimitCommand;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Body of `POST /v1/orders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceOrderBody {
    // A customer's token names it; an operator names the customer.
    #[serde(default)]
    customer_id: String,
    lines: Vec<LineBody>,
    #[serde(default)]
    idempotency_key: Option<String>,
    // Optional here so that a missing one gets the service's clear message.
    #[serde(default)]
    customer_email: String,
    #[serde(default)]
    shipping_address: Option<ShippingAddress>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineBody {
    sku: String,
    quantity: i64,
}

/// Query of `GET /v1/orders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    customer_id: Option<String>,
    status: Option<String>,
    needs_attention: Option<bool>,
    page_size: Option<u32>,
    page_token: Option<String>,
}

fn body_error(e: &JsonRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(format!("request body exceeds {MAX_BODY_BYTES} bytes"))
    } else {
        ApiError::InvalidArgument(e.body_text())
    }
}

/// Both services and the token verifier, shared by the handlers.
#[derive(Clone)]
pub struct AppState {
    /// Orders.
    pub orders: OrderService,
    /// Catalog.
    pub catalog: CatalogService,
    /// Verifies the callers' bearer tokens.
    pub auth: Authenticator,
}

/// The authenticated caller of a request (its `Authorization: Bearer`
/// token); a request without a valid one is answered `401`.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map_err(|_| AuthError::Malformed))
            .transpose()?;
        Ok(Self(state.auth.authenticate(header)?))
    }
}

impl FromRef<AppState> for OrderService {
    fn from_ref(state: &AppState) -> Self {
        state.orders.clone()
    }
}

impl FromRef<AppState> for CatalogService {
    fn from_ref(state: &AppState) -> Self {
        state.catalog.clone()
    }
}

/// The router, ready to serve or to test with `oneshot`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/orders", get(list_orders).post(place_order))
        .route("/v1/orders/{order_id}", get(get_order))
        .route("/v1/orders/{order_id}/cancel", post(cancel_order))
        .route(
            "/v1/orders/{order_id}/retry-compensation",
            post(retry_compensation),
        )
        .route(
            "/v1/orders/{order_id}/close-attention",
            post(close_attention),
        )
        .route("/v1/payments/webhook", post(payment_webhook))
        .route("/v1/products", get(list_products).post(create_product))
        .route("/v1/products/{sku}", get(get_product))
        .route("/v1/products/{sku}/ratings", post(submit_rating))
        .route("/v1/stock-receipts", post(create_stock_receipt))
        .route("/v1/low-stock-alerts", get(list_low_stock_alerts))
        .route("/v1/shipments", get(list_shipments))
        .route("/v1/shipments/{order_id}/dispatch", post(dispatch_shipment))
        .route("/v1/shipments/{order_id}/deliver", post(deliver_shipment))
        .route(
            "/v1/customers/{customer_id}/spending-limit",
            get(get_spending_limit)
                .put(set_spending_limit)
                .delete(remove_spending_limit),
        )
        .route("/healthz", get(healthz))
        .fallback(|| async { ApiError::NotFound("no such route".to_string()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn place_order(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    headers: HeaderMap,
    body: Result<Json<PlaceOrderBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body.map_err(|e| body_error(&e))?;
    // The `Idempotency-Key` header is the HTTP convention; the body field
    // mirrors the gRPC request. The header wins when both are present.
    let header_key = idempotency_header(&headers)?;
    let cmd = PlaceOrderCommand {
        customer_id: body.customer_id,
        lines: body
            .lines
            .into_iter()
            .map(|l| (l.sku, l.quantity))
            .collect(),
        idempotency_key: header_key.or(body.idempotency_key),
        customer_email: body.customer_email,
        shipping_address: body.shipping_address,
    };
    let placed = service.place_order(&caller, cmd).await?;
    let location = format!("/v1/orders/{}", placed.order_id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(PlacedJson::from(placed)),
    ))
}

async fn get_order(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    Path(order_id): Path<String>,
) -> Result<Json<OrderJson>, ApiError> {
    Ok(Json(service.get_order(&caller, &order_id).await?.into()))
}

/// Body of `POST /v1/orders/{id}/cancel` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    #[serde(default)]
    reason: String,
}

async fn cancel_order(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    Path(order_id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body: CancelBody = if body.is_empty() {
        CancelBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidArgument(e.to_string()))?
    };
    let status = service
        .cancel_order(&caller, &order_id, &body.reason)
        .await?;
    Ok(Json(
        serde_json::json!({ "order_id": order_id, "status": status }),
    ))
}

/// Body of the operator actions: who, and why (required to close).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorBody {
    #[serde(default)]
    operator: String,
    #[serde(default)]
    reason: String,
}

/// `RetryCompensation`: `202` once the saga accepted; the retry runs after.
async fn retry_compensation(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    Path(order_id): Path<String>,
    body: Result<Json<OperatorBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(b) = body.map_err(|e| body_error(&e))?;
    let id = service
        .retry_compensation(&caller, &order_id, &b.operator, &b.reason)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "order_id": id.to_string() })),
    ))
}

/// `CloseAttention`: `202` once the saga accepted (or, without a saga, the
/// close is recorded).
async fn close_attention(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    Path(order_id): Path<String>,
    body: Result<Json<OperatorBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(b) = body.map_err(|e| body_error(&e))?;
    let id = service
        .close_attention(&caller, &order_id, &b.operator, &b.reason)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "order_id": id.to_string() })),
    ))
}

/// The gateway's webhook: the raw body is verified before it is parsed.
/// Any verified event is answered 200 (`delivered` or `ignored`), so the
/// gateway stops redelivering; bad or stale ones 401.
async fn payment_webhook(
    State(service): State<OrderService>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let ack = service
        .payment_webhook(
            header(webhook::TIMESTAMP_HEADER),
            header(webhook::SIGNATURE_HEADER),
            &body,
        )
        .await?;
    Ok(Json(serde_json::json!({ "status": ack })))
}

async fn list_orders(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::InvalidArgument(e.body_text()))?;
    let status = p
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(str::parse::<OrderStatus>)
        .transpose()
        .map_err(ApiError::InvalidArgument)?;
    let (page, next) = service
        .list_orders(
            &caller,
            p.customer_id.as_deref(),
            status,
            p.needs_attention.unwrap_or(false),
            p.page_size.unwrap_or(0),
            p.page_token.as_deref(),
        )
        .await?;
    let orders: Vec<SummaryJson> = page.iter().map(Into::into).collect();
    Ok(Json(
        serde_json::json!({ "orders": orders, "next_page_token": next }),
    ))
}

async fn healthz(State(catalog): State<CatalogService>) -> Result<&'static str, ApiError> {
    catalog.ready().await?;
    Ok("ok")
}

// ----- catalog -----------------------------------------------------------

/// Body of `POST /v1/products`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProductBody {
    sku: String,
    name: String,
    price: PriceBody,
    #[serde(default)]
    low_stock_threshold: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceBody {
    minor_units: i64,
    currency: String,
}

/// Body of `POST /v1/stock-receipts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptBody {
    #[serde(default)]
    idempotency_key: Option<String>,
    lines: Vec<ReceiptLineJson>,
}

/// Body of `POST /v1/products/{sku}/ratings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RatingBody {
    #[serde(default)]
    customer_id: String,
    stars: i64,
}

/// Query of `GET /v1/low-stock-alerts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertParams {
    sku: Option<String>,
    page_size: Option<u32>,
    page_token: Option<String>,
}

fn idempotency_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::InvalidArgument("Idempotency-Key must be ASCII".into()))
        })
        .transpose()
}

async fn create_product(
    Caller(caller): Caller,
    State(catalog): State<CatalogService>,
    body: Result<Json<CreateProductBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(b) = body.map_err(|e| body_error(&e))?;
    let product = catalog
        .create_product(
            &caller,
            CreateProductCommand {
                sku: b.sku,
                name: b.name,
                price_minor: b.price.minor_units,
                currency: b.price.currency,
                low_stock_threshold: b.low_stock_threshold,
            },
        )
        .await?;
    let location = format!("/v1/products/{}", product.sku);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(ProductJson::from(&product)),
    ))
}

async fn get_product(
    Caller(caller): Caller,
    State(catalog): State<CatalogService>,
    Path(sku): Path<String>,
) -> Result<Json<ProductJson>, ApiError> {
    Ok(Json(ProductJson::from(
        &catalog.get_product(&caller, &sku).await?,
    )))
}

async fn list_products(
    Caller(caller): Caller,
    State(catalog): State<CatalogService>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let products: Vec<ProductJson> = catalog
        .list_products(&caller)
        .await?
        .iter()
        .map(Into::into)
        .collect();
    Ok(Json(serde_json::json!({ "products": products })))
}

async fn create_stock_receipt(
    Caller(caller): Caller,
    State(catalog): State<CatalogService>,
    headers: HeaderMap,
    body: Result<Json<ReceiptBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(b) = body.map_err(|e| body_error(&e))?;
    let receipt = catalog
        .create_stock_receipt(
            &caller,
            StockReceiptCommand {
                idempotency_key: idempotency_header(&headers)?.or(b.idempotency_key),
                lines: b.lines.into_iter().map(|l| (l.sku, l.quantity)).collect(),
            },
        )
        .await?;
    let status = if receipt.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ReceiptJson::from(&receipt))))
}

async fn list_low_stock_alerts(
    Caller(caller): Caller,
    State(catalog): State<CatalogService>,
    params: Result<Query<AlertParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::InvalidArgument(e.body_text()))?;
    let (alerts, next) = catalog
        .list_low_stock_alerts(
            &caller,
            p.sku.as_deref(),
            p.page_size.unwrap_or(0),
            p.page_token.as_deref(),
        )
        .await?;
    let alerts: Vec<AlertJson> = alerts.iter().map(Into::into).collect();
    Ok(Json(
        serde_json::json!({ "alerts": alerts, "next_page_token": next }),
    ))
}

async fn submit_rating(
    Caller(caller): Caller,
    State(catalog): State<CatalogService>,
    Path(sku): Path<String>,
    body: Result<Json<RatingBody>, JsonRejection>,
) -> Result<Json<ProductJson>, ApiError> {
    let Json(b) = body.map_err(|e| body_error(&e))?;
    let product = catalog
        .submit_rating(&caller, &b.customer_id, &sku, b.stars)
        .await?;
    Ok(Json(ProductJson::from(&product)))
}

// ----- shipping ----------------------------------------------------------

/// Query of `GET /v1/shipments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShipmentParams {
    page_size: Option<u32>,
    page_token: Option<String>,
}

async fn list_shipments(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    params: Result<Query<ShipmentParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::InvalidArgument(e.body_text()))?;
    let (page, next) = service
        .list_shipments(&caller, p.page_size.unwrap_or(0), p.page_token.as_deref())
        .await?;
    let shipments: Vec<ShipmentJson> = page.iter().map(Into::into).collect();
    Ok(Json(
        serde_json::json!({ "shipments": shipments, "next_page_token": next }),
    ))
}

/// Body of `PUT /v1/customers/{id}/spending-limit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpendingLimitBody {
    limit: MoneyBody,
}

/// Money as a request carries it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyBody {
    minor_units: i64,
    currency: String,
}

async fn get_spending_limit(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    Path(customer_id): Path<String>,
) -> Result<Json<SpendingLimitJson>, ApiError> {
    let record = service.get_spending_limit(&caller, &customer_id).await?;
    Ok(Json(record.into()))
}

/// `SetSpendingLimit`: sets or changes the limit; `200` with it.
async fn set_spending_limit(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    Path(customer_id): Path<String>,
    body: Result<Json<SpendingLimitBody>, JsonRejection>,
) -> Result<Json<SpendingLimitJson>, ApiError> {
    let Json(b) = body.map_err(|e| body_error(&e))?;
    let limit = LimitCommand {
        minor_units: b.limit.minor_units,
        currency: b.limit.currency,
    };
    let record = service
        .set_spending_limit(&caller, &customer_id, Some(limit))
        .await?;
    Ok(Json(record.into()))
}

/// `SetSpendingLimit` without a limit: the customer has none; `200`.
async fn remove_spending_limit(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    Path(customer_id): Path<String>,
) -> Result<Json<SpendingLimitJson>, ApiError> {
    let record = service
        .set_spending_limit(&caller, &customer_id, None)
        .await?;
    Ok(Json(record.into()))
}

/// Body of a courier's move (optional): the warehouse, default `main`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShipmentMoveBody {
    #[serde(default)]
    warehouse: String,
}

fn move_body(body: &Bytes) -> Result<ShipmentMoveBody, ApiError> {
    if body.is_empty() {
        return Ok(ShipmentMoveBody::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::InvalidArgument(e.to_string()))
}

/// `Dispatch`: `200 {"order_id","warehouse","status":"DISPATCHED"}`.
async fn dispatch_shipment(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    Path(order_id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let b = move_body(&body)?;
    let status = service
        .dispatch_shipment(&caller, &order_id, &b.warehouse)
        .await?;
    Ok(Json(moved_json(&order_id, &b.warehouse, status)))
}

/// `Deliver`: `200 {"order_id","warehouse","status":"DELIVERED"}`.
async fn deliver_shipment(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    Path(order_id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let b = move_body(&body)?;
    let status = service
        .deliver_shipment(&caller, &order_id, &b.warehouse)
        .await?;
    Ok(Json(moved_json(&order_id, &b.warehouse, status)))
}

fn moved_json(order_id: &str, warehouse: &str, status: ShipmentStatus) -> serde_json::Value {
    let warehouse = match warehouse.trim() {
        "" => ordersaga_domain::DEFAULT_WAREHOUSE,
        w => w,
    };
    serde_json::json!({ "order_id": order_id, "warehouse": warehouse, "status": status })
}
