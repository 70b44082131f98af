//! The HTTP/JSON mirror of the gRPC API (axum), described by an OpenAPI 3.1
//! document served at `GET /openapi.json` ([`openapi`]).
//!
//! Orders: `POST /v1/orders`, `GET /v1/orders/{id}`, `GET /v1/orders`,
//! `POST /v1/orders/{id}/cancel`, `POST /v1/orders/{id}/amendment/accept`,
//! `GET /v1/shipments`. Couriers:
//! `POST /v1/shipments/{order_id}/dispatch`, `.../deliver`. Operators:
//! `POST /v1/orders/{id}/retry-compensation`,
//! `POST /v1/orders/{id}/close-attention`. Spending limits (merchants and
//! operators): `GET`, `PUT`, `DELETE /v1/customers/{id}/spending-limit`. Payments:
//! `POST /v1/payments/webhook` (the gateway's signed events). Catalog: `POST /v1/products`, `GET /v1/products`,
//! `GET /v1/products/{sku}`, `POST /v1/products/{sku}/ratings`,
//! `POST /v1/stock-receipts`, `GET /v1/low-stock-alerts`. Plus `GET /healthz`
//! and `GET /openapi.json`.
//!
//! Every route is registered through `utoipa-axum` from its
//! `#[utoipa::path]` handler, so the router and the document's paths are
//! one list. Every error answer is JSON,
//! `{"error": {"code": "INVALID_ARGUMENT", "message": "..."}}`: the
//! handlers' [`ApiError`]s, the extractors' rejections ([`ApiJson`],
//! [`ApiPath`], [`ApiQuery`]), an unknown route (the fallback), a request
//! target over [`MAX_URI_BYTES`], and whatever else the framework answers
//! on its own (a `405` keeps its `Allow` header) through [`json_errors`].
//!
//! Every route but `/healthz`, `/openapi.json` and the webhook (signed by
//! the gateway) takes a bearer token: a handler that needs one extracts
//! [`Caller`] first, so an unauthenticated request is refused (`401`)
//! before its body is read; what the caller may do is [`crate::access`]'s.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{
    DefaultBodyLimit, FromRef, FromRequest, FromRequestParts, Json, Path, Query, Request, State,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use ordersaga_activities::gateway::webhook;
use ordersaga_domain::{OrderStatus, ShipmentStatus, ShippingAddress};
use ordersaga_runtime::auth::{AuthError, Authenticator, Principal};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::openapi::OpenApi as Document;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::catalog::{CatalogService, CreateProductCommand, StockReceiptCommand};
use crate::convert::{
    AlertJson, OrderJson, PlacedJson, ProductJson, ReceiptJson, ReceiptLineJson, ShipmentJson,
    SpendingLimitJson, SummaryJson,
};
use crate::error::{ApiError, ErrorBody, ErrorCode, ErrorDetail};
use crate::openapi::ApiDoc;
use crate::openapi::responses::{
    BadRequest, Conflict, Forbidden, Internal, NotFound, TooLarge, TooManyRequests,
    Unauthenticated, Unavailable, UnsupportedMediaType, UriTooLong,
};
use crate::service::WebhookAck;
use crate::service::{OrderService, PlaceOrderCommand};
use crate::spending::LimitCommand;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest request target (path and query) accepted, in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;

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

/// An extractor's rejection as an [`ApiError`] of the same status.
fn rejected(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::TooLarge(format!("request body exceeds {MAX_BODY_BYTES} bytes"));
    }
    match ApiError::from_status(status, text.clone()) {
        Some(e) => e,
        None => ApiError::InvalidArgument(text),
    }
}

/// axum's `Json`, rejecting in the JSON error shape: `413` over the body
/// limit, `415` without `Content-Type: application/json`, `400` otherwise.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Json::<T>::from_request(request, state)
            .await
            .map(|Json(value)| Self(value))
            .map_err(|e| rejected(e.status(), e.body_text()))
    }
}

/// axum's `Path`, rejecting in the JSON error shape (e.g. a segment that is
/// not UTF-8 once percent-decoded: `400`).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|e| rejected(e.status(), e.body_text()))
    }
}

/// axum's `Query`, rejecting in the JSON error shape (`400`).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|e| rejected(e.status(), e.body_text()))
    }
}

/// A raw body (verified or parsed by the handler), `413` over the limit.
fn raw_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| rejected(e.status(), e.body_text()))
}

/// Every operation, each registered with its `#[utoipa::path]` document.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_orders, place_order))
        .routes(routes!(get_order))
        .routes(routes!(cancel_order))
        .routes(routes!(accept_amendment))
        .routes(routes!(retry_compensation))
        .routes(routes!(close_attention))
        .routes(routes!(payment_webhook))
        .routes(routes!(list_products, create_product))
        .routes(routes!(get_product))
        .routes(routes!(submit_rating))
        .routes(routes!(create_stock_receipt))
        .routes(routes!(list_low_stock_alerts))
        .routes(routes!(list_shipments))
        .routes(routes!(dispatch_shipment))
        .routes(routes!(deliver_shipment))
        .routes(routes!(
            get_spending_limit,
            set_spending_limit,
            remove_spending_limit
        ))
        .routes(routes!(healthz))
        .routes(routes!(openapi_json))
}

/// The OpenAPI 3.1 document of [`router`]'s operations.
pub fn openapi() -> Document {
    routes().into_openapi()
}

/// The router, ready to serve or to test with `oneshot`.
pub fn router(state: AppState) -> Router {
    let (router, _) = routes().split_for_parts();
    router
        .fallback(|| async { ApiError::NotFound("no such route".to_string()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(limit_target))
        .layer(middleware::map_response(json_errors))
        .with_state(state)
}

/// Refuses a request target over [`MAX_URI_BYTES`] with `414`.
async fn limit_target(request: Request, next: Next) -> Response {
    let length = request
        .uri()
        .path_and_query()
        .map_or(0, |t| t.as_str().len());
    if length > MAX_URI_BYTES {
        return ApiError::UriTooLong(format!("request target exceeds {MAX_URI_BYTES} bytes"))
            .into_response();
    }
    next.run(request).await
}

/// Puts an error the framework answered on its own (a `405` of a route
/// without that method, a rejection no extractor here maps) into the JSON
/// error shape, keeping its status and its `Allow` header.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let message = match allow.as_ref().and_then(|a| a.to_str().ok()) {
        Some(methods) => format!("method not allowed here; allowed: {methods}"),
        None => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let mut mapped = match ApiError::from_status(status, message.clone()) {
        Some(error) => error.into_response(),
        None => {
            let code = if status.is_server_error() {
                ErrorCode::Internal
            } else {
                ErrorCode::InvalidArgument
            };
            let body = ErrorBody {
                error: ErrorDetail { code, message },
            };
            (status, Json(body)).into_response()
        }
    };
    if let Some(allow) = allow {
        mapped.headers_mut().insert(header::ALLOW, allow);
    }
    mapped
}

// ----- orders ------------------------------------------------------------

/// Body of `POST /v1/orders`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PlaceOrderBody {
    /// The customer; a customer's token names it (leave it out or repeat
    /// it), an operator names the customer here.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9._-]{0,64}$")]
    customer_id: String,
    /// 1 to 100 lines.
    #[schema(min_items = 1, max_items = 100)]
    lines: Vec<LineBody>,
    /// The request's key (the `Idempotency-Key` header wins): the same key
    /// and body answer the same order.
    #[serde(default)]
    #[schema(max_length = 128)]
    idempotency_key: Option<String>,
    /// Required; optional here so that a missing one gets the service's
    /// clear message.
    #[serde(default)]
    customer_email: String,
    /// Required.
    #[serde(default)]
    shipping_address: Option<ShippingAddress>,
}

/// One line of an order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LineBody {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    sku: String,
    #[schema(minimum = 1, maximum = 10_000)]
    quantity: i64,
}

/// Query of `GET /v1/orders`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only this customer's orders (a customer's own, if given, must be
    /// its own).
    customer_id: Option<String>,
    /// Only orders in this status.
    #[param(schema_with = crate::openapi::order_status)]
    status: Option<String>,
    /// Only orders with a compensation parked for an operator (operators).
    needs_attention: Option<bool>,
    /// 0 (the default, 20) to 100.
    #[param(maximum = 100)]
    page_size: Option<u32>,
    /// The `next_page_token` of the page before.
    page_token: Option<String>,
}

/// A page of orders.
#[derive(Debug, Serialize, ToSchema)]
struct OrderPage {
    orders: Vec<SummaryJson>,
    /// `null` on the last page.
    next_page_token: Option<String>,
}

/// The `Idempotency-Key` header, if any.
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

/// Places an order: validated and priced at once, then paid, stocked and
/// confirmed (or failed and unwound) by its saga; `GET` its `Location`.
#[utoipa::path(
    post,
    path = "/v1/orders",
    tag = "orders",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "The request's key")),
    request_body = PlaceOrderBody,
    responses(
        (status = 202, description = "Accepted: the saga runs", body = PlacedJson,
         headers(("Location" = String, description = "The order"))),
        BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, TooLarge, UriTooLong,
        UnsupportedMediaType, TooManyRequests, Internal
    )
)]
async fn place_order(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PlaceOrderBody>,
) -> Result<impl IntoResponse, ApiError> {
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

/// One order with its lines, payment, history, shipment and parked
/// compensations.
#[utoipa::path(
    get,
    path = "/v1/orders/{order_id}",
    tag = "orders",
    security(("bearer" = [])),
    params(("order_id" = String, Path, format = "uuid", description = "The order's id")),
    responses(
        (status = 200, description = "The order", body = OrderJson),
        BadRequest, Unauthenticated, NotFound, UriTooLong, Internal
    )
)]
async fn get_order(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Json<OrderJson>, ApiError> {
    Ok(Json(service.get_order(&caller, &order_id).await?.into()))
}

/// Body of `POST /v1/orders/{id}/cancel` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    /// Why (at most 500 printable characters).
    #[serde(default)]
    #[schema(max_length = 500)]
    reason: String,
}

/// The answer to a cancel.
#[derive(Debug, Serialize, ToSchema)]
struct CancelledJson {
    order_id: String,
    /// `PENDING`: the saga unwinds on its own; `GET` the order.
    #[schema(schema_with = crate::openapi::order_status)]
    status: OrderStatus,
}

/// Cancels an order before it is confirmed: the saga voids or refunds the
/// payment and releases the stock.
#[utoipa::path(
    post,
    path = "/v1/orders/{order_id}/cancel",
    tag = "orders",
    security(("bearer" = [])),
    params(("order_id" = String, Path, format = "uuid", description = "The order's id")),
    request_body(content = Option<CancelBody>, description = "Optional; any content type"),
    responses(
        (status = 200, description = "Accepted by the saga", body = CancelledJson),
        BadRequest, Unauthenticated, NotFound, Conflict, TooLarge, UriTooLong, Internal
    )
)]
async fn cancel_order(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    ApiPath(order_id): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CancelledJson>, ApiError> {
    let body = raw_body(body)?;
    let body: CancelBody = if body.is_empty() {
        CancelBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::InvalidArgument(e.to_string()))?
    };
    let status = service
        .cancel_order(&caller, &order_id, &body.reason)
        .await?;
    Ok(Json(CancelledJson { order_id, status }))
}

/// The answer to accepting an amended order.
#[derive(Debug, Serialize, ToSchema)]
struct AcceptedAmendmentJson {
    order_id: String,
    /// `ACTION_REQUIRED`: the saga refunds the missing lines and confirms
    /// the rest on its own; `GET` the order.
    #[schema(schema_with = crate::openapi::order_status)]
    status: OrderStatus,
}

/// Accepts the amended order an `ACTION_REQUIRED` order proposes (some
/// lines could not be served): the missing lines' amount is refunded and
/// the rest is confirmed and shipped. To decline, cancel the order. An
/// order not awaiting that decision: 409, nothing changes; a repeat after
/// accepting: 200.
#[utoipa::path(
    post,
    path = "/v1/orders/{order_id}/amendment/accept",
    tag = "orders",
    security(("bearer" = [])),
    params(("order_id" = String, Path, format = "uuid", description = "The order's id")),
    responses(
        (status = 200, description = "Accepted by the saga", body = AcceptedAmendmentJson),
        BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, UriTooLong, Internal
    )
)]
async fn accept_amendment(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Json<AcceptedAmendmentJson>, ApiError> {
    let status = service.accept_amendment(&caller, &order_id).await?;
    Ok(Json(AcceptedAmendmentJson { order_id, status }))
}

/// Body of the operator actions: who, and why (required to close).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct OperatorBody {
    /// Who acts (default: the token's subject).
    #[serde(default)]
    operator: String,
    /// Why; required to close.
    #[serde(default)]
    reason: String,
}

/// The answer to an operator action.
#[derive(Debug, Serialize, ToSchema)]
struct OperatorActionJson {
    order_id: String,
}

/// `RetryCompensation`: `202` once the saga accepted; the retry runs after.
#[utoipa::path(
    post,
    path = "/v1/orders/{order_id}/retry-compensation",
    tag = "operators",
    security(("bearer" = [])),
    params(("order_id" = String, Path, format = "uuid", description = "The order's id")),
    request_body = OperatorBody,
    responses(
        (status = 202, description = "Accepted by the saga", body = OperatorActionJson),
        BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, TooLarge, UriTooLong,
        UnsupportedMediaType, Internal
    )
)]
async fn retry_compensation(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    ApiPath(order_id): ApiPath<String>,
    ApiJson(b): ApiJson<OperatorBody>,
) -> Result<impl IntoResponse, ApiError> {
    let id = service
        .retry_compensation(&caller, &order_id, &b.operator, &b.reason)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(OperatorActionJson {
            order_id: id.to_string(),
        }),
    ))
}

/// `CloseAttention`: `202` once the saga accepted (or, without a saga, the
/// close is recorded).
#[utoipa::path(
    post,
    path = "/v1/orders/{order_id}/close-attention",
    tag = "operators",
    security(("bearer" = [])),
    params(("order_id" = String, Path, format = "uuid", description = "The order's id")),
    request_body = OperatorBody,
    responses(
        (status = 202, description = "Accepted by the saga, or recorded", body = OperatorActionJson),
        BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, TooLarge, UriTooLong,
        UnsupportedMediaType, Internal
    )
)]
async fn close_attention(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    ApiPath(order_id): ApiPath<String>,
    ApiJson(b): ApiJson<OperatorBody>,
) -> Result<impl IntoResponse, ApiError> {
    let id = service
        .close_attention(&caller, &order_id, &b.operator, &b.reason)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(OperatorActionJson {
            order_id: id.to_string(),
        }),
    ))
}

/// The answer to a verified webhook.
#[derive(Debug, Serialize, ToSchema)]
struct WebhookAckJson {
    status: WebhookAck,
}

/// The gateway's webhook: the raw body is verified (HMAC-SHA256 over the
/// timestamp and the body, `Ordersaga-Webhook-Signature`) before it is
/// parsed. Any verified event is answered 200 (`delivered`, `ignored` or
/// `duplicate`), so the gateway stops redelivering; bad or stale ones 401.
#[utoipa::path(
    post,
    path = "/v1/payments/webhook",
    tag = "payments",
    params(
        ("Ordersaga-Webhook-Timestamp" = Option<String>, Header, description = "Unix seconds"),
        ("Ordersaga-Webhook-Signature" = Option<String>, Header,
         description = "`v1=<hex HMAC-SHA256>`, comma-separated"),
    ),
    request_body(content = serde_json::Value, description = "The gateway's event (PayPal's shape)"),
    responses(
        (status = 200, description = "Verified", body = WebhookAckJson),
        BadRequest, Unauthenticated, Conflict, TooLarge, UriTooLong, Internal
    )
)]
async fn payment_webhook(
    State(service): State<OrderService>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<WebhookAckJson>, ApiError> {
    let body = raw_body(body)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let ack = service
        .payment_webhook(
            header(webhook::TIMESTAMP_HEADER),
            header(webhook::SIGNATURE_HEADER),
            &body,
        )
        .await?;
    Ok(Json(WebhookAckJson { status: ack }))
}

/// Orders, newest first: a customer's own; staff's any, by customer,
/// status or `needs_attention`.
#[utoipa::path(
    get,
    path = "/v1/orders",
    tag = "orders",
    security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of orders", body = OrderPage),
        BadRequest, Unauthenticated, Forbidden, UriTooLong, Internal
    )
)]
async fn list_orders(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<OrderPage>, ApiError> {
    // `status=` (empty) is not a status: the document says which are.
    let status = p
        .status
        .as_deref()
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
    Ok(Json(OrderPage {
        orders: page.iter().map(Into::into).collect(),
        next_page_token: next,
    }))
}

/// Readiness: `ok` once the shop database answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "service",
    responses(
        (status = 200, description = "Ready", body = String, content_type = "text/plain"),
        UriTooLong, Unavailable
    )
)]
async fn healthz(State(catalog): State<CatalogService>) -> Result<&'static str, ApiError> {
    catalog.ready().await.map_err(|e| {
        tracing::warn!(error = %e, "not ready");
        ApiError::Unavailable("the shop database does not answer".to_string())
    })?;
    Ok("ok")
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = Object),
        UriTooLong
    )
)]
async fn openapi_json() -> Json<Document> {
    Json(openapi())
}

// ----- catalog -----------------------------------------------------------

/// Body of `POST /v1/products`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateProductBody {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    sku: String,
    /// 1 to 200 printable characters.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    price: PriceBody,
    /// At or below this many units on hand the merchant is alerted.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000)]
    low_stock_threshold: i64,
}

/// A price.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PriceBody {
    /// In the currency's minor units (cents), more than 0.
    #[schema(minimum = 1)]
    minor_units: i64,
    /// ISO 4217 code.
    #[schema(pattern = "^[A-Z]{3}$")]
    currency: String,
}

/// Body of `POST /v1/stock-receipts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReceiptBody {
    /// The document's key (the `Idempotency-Key` header wins); required one
    /// way or the other.
    #[serde(default)]
    #[schema(max_length = 128)]
    idempotency_key: Option<String>,
    /// The warehouse that receives the goods (default `main`).
    #[serde(default)]
    #[schema(max_length = 64)]
    warehouse: Option<String>,
    /// 1 to 100 lines.
    #[schema(min_items = 1, max_items = 100)]
    lines: Vec<ReceiptLineJson>,
}

/// Body of `POST /v1/products/{sku}/ratings`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RatingBody {
    /// The customer; a customer's token names it.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9._-]{0,64}$")]
    customer_id: String,
    /// 1 to 5.
    #[schema(minimum = 1, maximum = 5)]
    stars: i64,
}

/// Query of `GET /v1/low-stock-alerts`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AlertParams {
    /// Only this product's alerts.
    sku: Option<String>,
    /// 0 (the default, 20) to 100.
    #[param(maximum = 100)]
    page_size: Option<u32>,
    /// The `next_page_token` of the page before.
    page_token: Option<String>,
}

/// The catalog.
#[derive(Debug, Serialize, ToSchema)]
struct ProductList {
    products: Vec<ProductJson>,
}

/// A page of low-stock alerts.
#[derive(Debug, Serialize, ToSchema)]
struct AlertPage {
    alerts: Vec<AlertJson>,
    /// `null` on the last page.
    next_page_token: Option<String>,
}

/// Creates a product (no stock yet).
#[utoipa::path(
    post,
    path = "/v1/products",
    tag = "catalog",
    security(("bearer" = [])),
    request_body = CreateProductBody,
    responses(
        (status = 201, description = "Created", body = ProductJson,
         headers(("Location" = String, description = "The product"))),
        BadRequest, Unauthenticated, Forbidden, Conflict, TooLarge, UriTooLong,
        UnsupportedMediaType, Internal
    )
)]
async fn create_product(
    Caller(caller): Caller,
    State(catalog): State<CatalogService>,
    ApiJson(b): ApiJson<CreateProductBody>,
) -> Result<impl IntoResponse, ApiError> {
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

/// One product with its stock on hand and rating.
#[utoipa::path(
    get,
    path = "/v1/products/{sku}",
    tag = "catalog",
    security(("bearer" = [])),
    params(("sku" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$",
            description = "The product's stock keeping unit")),
    responses(
        (status = 200, description = "The product", body = ProductJson),
        BadRequest, Unauthenticated, NotFound, UriTooLong, Internal
    )
)]
async fn get_product(
    Caller(caller): Caller,
    State(catalog): State<CatalogService>,
    ApiPath(sku): ApiPath<String>,
) -> Result<Json<ProductJson>, ApiError> {
    let (product, levels) = catalog.get_product_stock(&caller, &sku).await?;
    Ok(Json(ProductJson::from(&product).with_warehouses(&levels)))
}

/// The whole catalog.
#[utoipa::path(
    get,
    path = "/v1/products",
    tag = "catalog",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every product", body = ProductList),
        Unauthenticated, UriTooLong, Internal
    )
)]
async fn list_products(
    Caller(caller): Caller,
    State(catalog): State<CatalogService>,
) -> Result<Json<ProductList>, ApiError> {
    let products = catalog
        .list_products(&caller)
        .await?
        .iter()
        .map(Into::into)
        .collect();
    Ok(Json(ProductList { products }))
}

/// Goods in: adds stock, once per document key (`201`; the same key and
/// lines again `200`, other lines `409`).
#[utoipa::path(
    post,
    path = "/v1/stock-receipts",
    tag = "catalog",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "The document's key")),
    request_body = ReceiptBody,
    responses(
        (status = 201, description = "Received", body = ReceiptJson),
        (status = 200, description = "Received before (same key and lines)", body = ReceiptJson),
        BadRequest, Unauthenticated, Forbidden, Conflict, TooLarge, UriTooLong,
        UnsupportedMediaType, Internal
    )
)]
async fn create_stock_receipt(
    Caller(caller): Caller,
    State(catalog): State<CatalogService>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<ReceiptBody>,
) -> Result<impl IntoResponse, ApiError> {
    let receipt = catalog
        .create_stock_receipt(
            &caller,
            StockReceiptCommand {
                idempotency_key: idempotency_header(&headers)?.or(b.idempotency_key),
                warehouse: b.warehouse,
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

/// Low-stock alerts, newest first.
#[utoipa::path(
    get,
    path = "/v1/low-stock-alerts",
    tag = "catalog",
    security(("bearer" = [])),
    params(AlertParams),
    responses(
        (status = 200, description = "A page of alerts", body = AlertPage),
        BadRequest, Unauthenticated, Forbidden, UriTooLong, Internal
    )
)]
async fn list_low_stock_alerts(
    Caller(caller): Caller,
    State(catalog): State<CatalogService>,
    ApiQuery(p): ApiQuery<AlertParams>,
) -> Result<Json<AlertPage>, ApiError> {
    let (alerts, next) = catalog
        .list_low_stock_alerts(
            &caller,
            p.sku.as_deref(),
            p.page_size.unwrap_or(0),
            p.page_token.as_deref(),
        )
        .await?;
    Ok(Json(AlertPage {
        alerts: alerts.iter().map(Into::into).collect(),
        next_page_token: next,
    }))
}

/// Rates a product the customer bought (1 to 5 stars; again replaces).
#[utoipa::path(
    post,
    path = "/v1/products/{sku}/ratings",
    tag = "catalog",
    security(("bearer" = [])),
    params(("sku" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$",
            description = "The product's stock keeping unit")),
    request_body = RatingBody,
    responses(
        (status = 200, description = "The product with its new rating", body = ProductJson),
        BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, TooLarge, UriTooLong,
        UnsupportedMediaType, Internal
    )
)]
async fn submit_rating(
    Caller(caller): Caller,
    State(catalog): State<CatalogService>,
    ApiPath(sku): ApiPath<String>,
    ApiJson(b): ApiJson<RatingBody>,
) -> Result<Json<ProductJson>, ApiError> {
    let product = catalog
        .submit_rating(&caller, &b.customer_id, &sku, b.stars)
        .await?;
    Ok(Json(ProductJson::from(&product)))
}

// ----- shipping ----------------------------------------------------------

/// Query of `GET /v1/shipments`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ShipmentParams {
    /// 0 (the default, 20) to 100.
    #[param(maximum = 100)]
    page_size: Option<u32>,
    /// The `next_page_token` of the page before.
    page_token: Option<String>,
}

/// A page of shipping requests.
#[derive(Debug, Serialize, ToSchema)]
struct ShipmentPage {
    shipments: Vec<ShipmentJson>,
    /// `null` on the last page.
    next_page_token: Option<String>,
}

/// The warehouse's shipping requests, newest first.
#[utoipa::path(
    get,
    path = "/v1/shipments",
    tag = "shipping",
    security(("bearer" = [])),
    params(ShipmentParams),
    responses(
        (status = 200, description = "A page of shipping requests", body = ShipmentPage),
        BadRequest, Unauthenticated, Forbidden, UriTooLong, Internal
    )
)]
async fn list_shipments(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    ApiQuery(p): ApiQuery<ShipmentParams>,
) -> Result<Json<ShipmentPage>, ApiError> {
    let (page, next) = service
        .list_shipments(&caller, p.page_size.unwrap_or(0), p.page_token.as_deref())
        .await?;
    Ok(Json(ShipmentPage {
        shipments: page.iter().map(Into::into).collect(),
        next_page_token: next,
    }))
}

/// Body of `PUT /v1/customers/{customer_id}/spending-limit`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SpendingLimitBody {
    limit: MoneyBody,
}

/// Money as a request carries it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MoneyBody {
    /// Minor units of the currency, 0 or more.
    #[schema(minimum = 0)]
    minor_units: i64,
    /// ISO 4217 code.
    #[schema(pattern = "^[A-Z]{3}$")]
    currency: String,
}

/// A customer's spending limit and what counts against it.
#[utoipa::path(
    get,
    path = "/v1/customers/{customer_id}/spending-limit",
    tag = "customers",
    security(("bearer" = [])),
    params(("customer_id" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$",
            description = "The customer's id")),
    responses(
        (status = 200, description = "The limit (`null`: none) and what was spent", body = SpendingLimitJson),
        BadRequest, Unauthenticated, Forbidden, UriTooLong, Internal
    )
)]
async fn get_spending_limit(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    ApiPath(customer_id): ApiPath<String>,
) -> Result<Json<SpendingLimitJson>, ApiError> {
    let record = service.get_spending_limit(&caller, &customer_id).await?;
    Ok(Json(record.into()))
}

/// `SetSpendingLimit`: sets or changes the customer's cumulative limit.
#[utoipa::path(
    put,
    path = "/v1/customers/{customer_id}/spending-limit",
    tag = "customers",
    security(("bearer" = [])),
    params(("customer_id" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$",
            description = "The customer's id")),
    request_body = SpendingLimitBody,
    responses(
        (status = 200, description = "The limit as it now stands", body = SpendingLimitJson),
        BadRequest, Unauthenticated, Forbidden, TooLarge, UriTooLong, UnsupportedMediaType,
        Internal
    )
)]
async fn set_spending_limit(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    ApiPath(customer_id): ApiPath<String>,
    ApiJson(b): ApiJson<SpendingLimitBody>,
) -> Result<Json<SpendingLimitJson>, ApiError> {
    let limit = LimitCommand {
        minor_units: b.limit.minor_units,
        currency: b.limit.currency,
    };
    let record = service
        .set_spending_limit(&caller, &customer_id, Some(limit))
        .await?;
    Ok(Json(record.into()))
}

/// `SetSpendingLimit` without a limit: the customer has none.
#[utoipa::path(
    delete,
    path = "/v1/customers/{customer_id}/spending-limit",
    tag = "customers",
    security(("bearer" = [])),
    params(("customer_id" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$",
            description = "The customer's id")),
    responses(
        (status = 200, description = "The customer, now without a limit", body = SpendingLimitJson),
        BadRequest, Unauthenticated, Forbidden, UriTooLong, Internal
    )
)]
async fn remove_spending_limit(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    ApiPath(customer_id): ApiPath<String>,
) -> Result<Json<SpendingLimitJson>, ApiError> {
    let record = service
        .set_spending_limit(&caller, &customer_id, None)
        .await?;
    Ok(Json(record.into()))
}

/// Body of a courier's move (optional): the warehouse, default `main`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ShipmentMoveBody {
    /// The shipment's warehouse (default `main`).
    #[serde(default)]
    #[schema(max_length = 64)]
    warehouse: String,
}

/// A shipment after a courier's move.
#[derive(Debug, Serialize, ToSchema)]
struct MovedJson {
    order_id: String,
    warehouse: String,
    #[schema(schema_with = crate::openapi::shipment_status)]
    status: ShipmentStatus,
}

/// An empty body is the default warehouse; anything else is JSON.
fn move_body(body: &Bytes) -> Result<ShipmentMoveBody, ApiError> {
    if body.is_empty() {
        return Ok(ShipmentMoveBody::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::InvalidArgument(e.to_string()))
}

/// `Dispatch`: the courier picked the shipment up; a repeat answers the same.
#[utoipa::path(
    post,
    path = "/v1/shipments/{order_id}/dispatch",
    tag = "shipping",
    security(("bearer" = [])),
    params(("order_id" = String, Path, format = "uuid", description = "The order's id")),
    request_body(content = Option<ShipmentMoveBody>, description = "Optional: the warehouse"),
    responses(
        (status = 200, description = "The shipment, DISPATCHED", body = MovedJson),
        BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, TooLarge, UriTooLong,
        Internal
    )
)]
async fn dispatch_shipment(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    ApiPath(order_id): ApiPath<String>,
    body: Bytes,
) -> Result<Json<MovedJson>, ApiError> {
    let b = move_body(&body)?;
    let status = service
        .dispatch_shipment(&caller, &order_id, &b.warehouse)
        .await?;
    Ok(Json(moved_json(&order_id, &b.warehouse, status)))
}

/// `Deliver`: the customer has the shipment; a repeat answers the same.
#[utoipa::path(
    post,
    path = "/v1/shipments/{order_id}/deliver",
    tag = "shipping",
    security(("bearer" = [])),
    params(("order_id" = String, Path, format = "uuid", description = "The order's id")),
    request_body(content = Option<ShipmentMoveBody>, description = "Optional: the warehouse"),
    responses(
        (status = 200, description = "The shipment, DELIVERED", body = MovedJson),
        BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, TooLarge, UriTooLong,
        Internal
    )
)]
async fn deliver_shipment(
    Caller(caller): Caller,
    State(service): State<OrderService>,
    ApiPath(order_id): ApiPath<String>,
    body: Bytes,
) -> Result<Json<MovedJson>, ApiError> {
    let b = move_body(&body)?;
    let status = service
        .deliver_shipment(&caller, &order_id, &b.warehouse)
        .await?;
    Ok(Json(moved_json(&order_id, &b.warehouse, status)))
}

fn moved_json(order_id: &str, warehouse: &str, status: ShipmentStatus) -> MovedJson {
    let warehouse = match warehouse.trim() {
        "" => ordersaga_domain::DEFAULT_WAREHOUSE,
        w => w,
    };
    MovedJson {
        order_id: order_id.to_string(),
        warehouse: warehouse.to_string(),
        status,
    }
}
