//! The HTTP/JSON mirror of the gRPC API (axum).
//!
//! `POST /v1/orders`, `GET /v1/orders/{id}`, `GET /v1/orders`,
//! `GET /v1/products`, `GET /v1/shipments`, `GET /healthz`. Errors are JSON:
//! `{"error": {"code": "INVALID_ARGUMENT", "message": "..."}}`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use ordersaga_domain::{OrderStatus, ShippingAddress};
use serde::Deserialize;

use crate::convert::{OrderJson, PlacedJson, ProductJson, ShipmentJson, SummaryJson};
use crate::error::ApiError;
use crate::service::{OrderService, PlaceOrderCommand};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Body of `POST /v1/orders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceOrderBody {
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

/// The router, ready to serve or to test with `oneshot`.
pub fn router(service: OrderService) -> Router {
    Router::new()
        .route("/v1/orders", get(list_orders).post(place_order))
        .route("/v1/orders/{order_id}", get(get_order))
        .route("/v1/products", get(list_products))
        .route("/v1/shipments", get(list_shipments))
        .route("/healthz", get(healthz))
        .fallback(|| async { ApiError::NotFound("no such route".to_string()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(service)
}

async fn place_order(
    State(service): State<OrderService>,
    headers: HeaderMap,
    body: Result<Json<PlaceOrderBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body.map_err(|e| body_error(&e))?;
    // The `Idempotency-Key` header is the HTTP convention; the body field
    // mirrors the gRPC request. The header wins when both are present.
    let header_key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::InvalidArgument("Idempotency-Key must be ASCII".into()))
        })
        .transpose()?;
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
    let placed = service.place_order(cmd).await?;
    let location = format!("/v1/orders/{}", placed.order_id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(PlacedJson::from(placed)),
    ))
}

async fn get_order(
    State(service): State<OrderService>,
    Path(order_id): Path<String>,
) -> Result<Json<OrderJson>, ApiError> {
    Ok(Json(service.get_order(&order_id).await?.into()))
}

async fn list_orders(
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
            p.customer_id.as_deref(),
            status,
            p.page_size.unwrap_or(0),
            p.page_token.as_deref(),
        )
        .await?;
    let orders: Vec<SummaryJson> = page.iter().map(Into::into).collect();
    Ok(Json(
        serde_json::json!({ "orders": orders, "next_page_token": next }),
    ))
}

async fn list_products(
    State(service): State<OrderService>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let products: Vec<ProductJson> = service
        .list_products()
        .await?
        .iter()
        .map(Into::into)
        .collect();
    Ok(Json(serde_json::json!({ "products": products })))
}

async fn healthz(State(service): State<OrderService>) -> Result<&'static str, ApiError> {
    service.list_products().await?;
    Ok("ok")
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
    State(service): State<OrderService>,
    params: Result<Query<ShipmentParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::InvalidArgument(e.body_text()))?;
    let (page, next) = service
        .list_shipments(p.page_size.unwrap_or(0), p.page_token.as_deref())
        .await?;
    let shipments: Vec<ShipmentJson> = page.iter().map(Into::into).collect();
    Ok(Json(
        serde_json::json!({ "shipments": shipments, "next_page_token": next }),
    ))
}
