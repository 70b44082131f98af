//! The PayPal REST subset: OAuth2 client credentials, Orders v2 (create,
//! get, capture, and our `void` extension) and Payments v2 refunds, with
//! PayPal's JSON field names, statuses and error bodies.
//!
//! Mutating calls honour `PayPal-Request-Id`: the first answer under an id
//! is stored and replayed to every retry, so a retried capture or refund
//! moves no more money. The injected faults of [`crate::controls`] act in
//! [`faults`] (before a handler: nothing changes) and in the capture and
//! refund handlers (after the commit: the answer is lost).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use ordersaga_webhook_signature::event_type;
use serde::Deserialize;
use serde_json::{Value, json};

mod error;
mod json;

pub(crate) use error::PayPalError;
use json::{capture_json, refund_json};
pub(crate) use json::{order_json, payer_id};

use crate::controls::{Behavior, Fault};
use crate::db::{self, CaptureRow, Counter, OrderRow, RefundRow};
use crate::{App, SandboxError, now_rfc3339, paypal_id};

/// Header choosing the simulated buyer's behaviour for a new order.
pub const BEHAVIOR_HEADER: &str = "Ordersaga-Sandbox-Behavior";
const REQUEST_ID_HEADER: &str = "PayPal-Request-Id";

/// PayPal's routes; the `/v2` ones need a bearer token.
pub(crate) fn router(app: App) -> Router<App> {
    let v2 = Router::new()
        .route("/v2/checkout/orders", post(create_order))
        .route("/v2/checkout/orders/{id}", get(get_order))
        .route("/v2/checkout/orders/{id}/capture", post(capture_order))
        .route("/v2/checkout/orders/{id}/void", post(void_order))
        .route("/v2/payments/captures/{id}/refund", post(refund_capture))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_token));
    Router::new()
        .route("/v1/oauth2/token", post(token))
        .merge(v2)
        .route_layer(middleware::from_fn_with_state(app, faults))
}

/// Latency and injected failures, before any handler runs.
async fn faults(State(app): State<App>, request: Request, next: Next) -> Response {
    let planned = app.with_controls(|c| c.next_call());
    if !planned.latency.is_zero() {
        tokio::time::sleep(planned.latency).await;
    }
    match planned.fault {
        None => next.run(request).await,
        Some(Fault::Fail(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            PayPalError::internal(status).into_response()
        }
        Some(Fault::Hang(d)) => lost_answer(d).await,
    }
}

/// What a client sees when the answer is lost: nothing for a while (its
/// timeout fires first if shorter), then a proxy's 504 without a body.
async fn lost_answer(hang: Duration) -> Response {
    tokio::time::sleep(hang).await;
    StatusCode::GATEWAY_TIMEOUT.into_response()
}

async fn require_token(
    State(app): State<App>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        Some(token) if app.token_valid(token.trim()) => next.run(request).await,
        _ => PayPalError::unauthenticated().into_response(),
    }
}

/// `POST /v1/oauth2/token`: client credentials in Basic auth,
/// `grant_type=client_credentials` in the form body.
async fn token(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let settings = app.settings();
    let expected = format!("{}:{}", settings.client_id, settings.client_secret);
    if credentials.as_deref() != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": "Client Authentication failed"})),
        )
            .into_response();
    }
    let grant_ok = String::from_utf8_lossy(&body)
        .split('&')
        .any(|pair| pair == "grant_type=client_credentials");
    if !grant_ok {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type", "error_description": "Grant Type is NULL or not client_credentials"})),
        )
            .into_response();
    }
    Json(json!({
        "scope": "https://uri.paypal.com/services/payments/payment",
        "access_token": app.issue_token(),
        "token_type": "Bearer",
        "app_id": "APP-ORDERSAGA-SANDBOX",
        "expires_in": settings.token_ttl.as_secs(),
        "nonce": paypal_id(),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct CreateOrderBody {
    intent: String,
    purchase_units: Vec<UnitBody>,
    application_context: Option<ContextBody>,
    payment_source: Option<PaymentSourceBody>,
    payer: Option<PayerBody>,
}

#[derive(Deserialize)]
struct UnitBody {
    custom_id: Option<String>,
    invoice_id: Option<String>,
    description: Option<String>,
    amount: AmountBody,
}

#[derive(Deserialize)]
struct AmountBody {
    currency_code: String,
    value: String,
}

#[derive(Deserialize, Default)]
struct ContextBody {
    return_url: Option<String>,
    cancel_url: Option<String>,
}

#[derive(Deserialize)]
struct PaymentSourceBody {
    paypal: Option<PayPalSourceBody>,
}

#[derive(Deserialize)]
struct PayPalSourceBody {
    email_address: Option<String>,
    experience_context: Option<ContextBody>,
}

#[derive(Deserialize)]
struct PayerBody {
    email_address: Option<String>,
}

/// Checks a PayPal amount: an ISO 4217 currency and a non-negative decimal
/// with at most 10 integer digits and at most the currency's decimal places
/// (JPY none, EUR two, BHD three), as PayPal does.
fn valid_amount(a: &AmountBody) -> Result<(), PayPalError> {
    let Some(places) = iso_currency::Currency::from_code(&a.currency_code)
        .and_then(iso_currency::Currency::exponent)
        .map(usize::from)
    else {
        return Err(PayPalError::invalid(
            "INVALID_CURRENCY_CODE",
            "currency_code must be an ISO 4217 code",
        ));
    };
    let (whole, fraction) = a.value.split_once('.').unwrap_or((&a.value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 10
        || !digits(whole)
        || fraction.len() > places
        || !digits(fraction)
    {
        return Err(PayPalError::invalid(
            "DECIMAL_PRECISION",
            "value must be a decimal with at most the currency's decimal places",
        ));
    }
    Ok(())
}

/// The minor units of a partial refund's `amount`, checked against the
/// capture's currency and what is left of it.
fn partial_amount(
    amount: &AmountBody,
    currency: &str,
    places: u32,
    remaining: i64,
) -> Result<i64, PayPalError> {
    valid_amount(amount)?;
    if amount.currency_code != currency {
        return Err(PayPalError::unprocessable(
            "REFUND_CURRENCY_MISMATCH",
            "The refund must be in the currency of the capture.",
        ));
    }
    let value = to_minor(&amount.value, places)
        .ok_or_else(|| PayPalError::invalid("DECIMAL_PRECISION", "value is not a decimal"))?;
    if value == 0 {
        return Err(PayPalError::invalid(
            "INVALID_PARAMETER_VALUE",
            "The refund amount must be greater than zero.",
        ));
    }
    if value > remaining {
        return Err(PayPalError::unprocessable(
            "REFUND_AMOUNT_EXCEEDED",
            "The refund amount must be less than or equal to the capture amount \
             that has not yet been refunded.",
        ));
    }
    Ok(value)
}

/// The decimal places of an ISO 4217 currency.
fn currency_places(code: &str) -> Option<u32> {
    iso_currency::Currency::from_code(code)
        .and_then(iso_currency::Currency::exponent)
        .map(u32::from)
}

/// A decimal string (checked by [`valid_amount`]) in minor units.
fn to_minor(value: &str, places: u32) -> Option<i64> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let places = usize::try_from(places).ok()?;
    if fraction.len() > places {
        return None;
    }
    let digits = format!("{whole}{fraction:0<places$}");
    digits.parse().ok()
}

/// Minor units as PayPal's decimal string (`"12.50"`).
fn to_decimal(minor: i64, places: u32) -> String {
    if places == 0 {
        return minor.to_string();
    }
    let scale = 10_i64.pow(places);
    let width = usize::try_from(places).unwrap_or(0);
    format!("{}.{:0width$}", minor / scale, minor % scale)
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn replay(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `POST /v2/checkout/orders`.
async fn create_order(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PayPalError> {
    let body: CreateOrderBody = serde_json::from_slice(&body)
        .map_err(|e| PayPalError::invalid("MALFORMED_REQUEST_JSON", e.to_string()))?;
    if body.intent != "CAPTURE" {
        return Err(PayPalError::unprocessable(
            "INTENT_NOT_SUPPORTED",
            "this sandbox supports intent CAPTURE only",
        ));
    }
    let [unit] = <[UnitBody; 1]>::try_from(body.purchase_units).map_err(|_| {
        PayPalError::unprocessable(
            "MULTIPLE_PURCHASE_UNITS_NOT_SUPPORTED",
            "exactly one purchase unit is supported",
        )
    })?;
    valid_amount(&unit.amount)?;
    let source = body.payment_source.and_then(|s| s.paypal);
    let email = source
        .as_ref()
        .and_then(|s| s.email_address.clone())
        .or_else(|| body.payer.and_then(|p| p.email_address));
    let context = source
        .and_then(|s| s.experience_context)
        .or(body.application_context)
        .unwrap_or_default();
    let behavior = headers
        .get(BEHAVIOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(Behavior::parse)
        .or_else(|| email.as_deref().and_then(Behavior::for_email))
        .unwrap_or_else(|| app.controls().default_behavior);
    let key = request_id(&headers);

    let write = app.write_lock().await;
    let mut tx = app.pool().begin().await?;
    if let Some(key) = &key
        && let Some((status, body)) = db::cached_answer(&mut tx, "create", key).await?
    {
        return Ok(replay(status, body));
    }
    let now = now_rfc3339();
    let order = OrderRow {
        id: paypal_id(),
        status: "CREATED".to_string(),
        custom_id: unit.custom_id,
        invoice_id: unit.invoice_id,
        description: unit.description,
        currency: unit.amount.currency_code,
        value: unit.amount.value,
        return_url: context.return_url,
        cancel_url: context.cancel_url,
        behavior: behavior.as_str().to_string(),
        payer_email: None,
        create_time: now.clone(),
        update_time: now,
        capture: None,
        refunds: Vec::new(),
    };
    db::insert_order(&mut tx, &order).await?;
    if let Some(txn) = &order.custom_id {
        db::bump(&mut tx, txn, Counter::Orders).await?;
    }
    let answer = order_json(&app, &order).to_string();
    if let Some(key) = &key {
        db::remember_answer(&mut tx, "create", key, 201, &answer).await?;
    }
    tx.commit().await?;
    drop(write);

    // The simulated buyer acts after the shop has its answer, as a person
    // on the approval page would.
    let id = order.id.clone();
    match behavior {
        Behavior::Approve | Behavior::Decline => {
            let app = app.clone();
            tokio::spawn(async move {
                let email = email.unwrap_or_else(|| format!("{}@buyer.test", behavior.as_str()));
                if let Err(e) = approve(&app, &id, &email).await {
                    tracing::warn!(order = %id, error = %e, "auto-approve failed");
                }
            });
        }
        Behavior::Cancel => {
            let app = app.clone();
            tokio::spawn(async move {
                if let Err(e) = void(&app, &id).await {
                    tracing::warn!(order = %id, error = %e, "auto-cancel failed");
                }
            });
        }
        Behavior::Manual => {}
    }
    Ok(replay(201, answer))
}

/// `GET /v2/checkout/orders/{id}`.
async fn get_order(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, PayPalError> {
    let mut conn = app.pool().acquire().await?;
    let order = db::order(&mut conn, &id)
        .await?
        .ok_or_else(|| PayPalError::not_found(format!("order {id}")))?;
    Ok(Json(order_json(&app, &order)))
}

/// The buyer approves (approval page or simulated buyer). Only a `CREATED`
/// order changes; returns the order as it is afterwards.
pub(crate) async fn approve(
    app: &App,
    id: &str,
    email: &str,
) -> Result<Option<OrderRow>, SandboxError> {
    let _write = app.write_lock().await;
    let mut tx = app.pool().begin().await?;
    let Some(order) = db::order(&mut tx, id).await? else {
        return Ok(None);
    };
    if order.status != "CREATED" {
        return Ok(Some(order));
    }
    db::set_order_status(&mut tx, id, "APPROVED", Some(email), &now_rfc3339()).await?;
    let order = db::order(&mut tx, id).await?;
    tx.commit().await?;
    if let Some(o) = &order {
        app.emit(
            event_type::ORDER_APPROVED,
            "checkout-order",
            order_json(app, o),
        );
    }
    Ok(order)
}

/// Voids an order not yet captured (buyer's cancel, shop's void).
/// Idempotent; returns the order as it is afterwards.
pub(crate) async fn void(app: &App, id: &str) -> Result<Option<OrderRow>, SandboxError> {
    let _write = app.write_lock().await;
    let mut tx = app.pool().begin().await?;
    let Some(order) = db::order(&mut tx, id).await? else {
        return Ok(None);
    };
    if !matches!(order.status.as_str(), "CREATED" | "APPROVED") {
        return Ok(Some(order));
    }
    db::set_order_status(&mut tx, id, "VOIDED", None, &now_rfc3339()).await?;
    let order = db::order(&mut tx, id).await?;
    tx.commit().await?;
    if let Some(o) = &order {
        app.emit(
            event_type::ORDER_VOIDED,
            "checkout-order",
            order_json(app, o),
        );
    }
    Ok(order)
}

/// `POST /v2/checkout/orders/{id}/capture`.
async fn capture_order(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, PayPalError> {
    let key = request_id(&headers);
    let scope = format!("capture:{id}");
    let write = app.write_lock().await;
    let mut tx = app.pool().begin().await?;
    let order = db::order(&mut tx, &id)
        .await?
        .ok_or_else(|| PayPalError::not_found(format!("order {id}")))?;
    if let Some(txn) = &order.custom_id {
        db::bump(&mut tx, txn, Counter::CaptureRequests).await?;
    }
    if let Some(key) = &key
        && let Some((status, body)) = db::cached_answer(&mut tx, &scope, key).await?
    {
        tx.commit().await?;
        return Ok(replay(status, body));
    }
    let refusal = match order.status.as_str() {
        "APPROVED" => app
            .with_controls(|c| c.take_refused_capture())
            .map(|issue| (issue, "The capture was refused (test control).")),
        "CREATED" => Some((
            "ORDER_NOT_APPROVED".to_string(),
            "Payer has not yet approved the Order for payment.",
        )),
        "COMPLETED" => Some((
            "ORDER_ALREADY_CAPTURED".to_string(),
            "Order already captured.",
        )),
        _ => Some((
            "ORDER_EXPIRED".to_string(),
            "The order was voided and can no longer be captured.",
        )),
    };
    if let Some((issue, description)) = refusal {
        // Refusals count as requests but are not cached: the same key may
        // succeed once the buyer approves.
        tx.commit().await?;
        return Err(PayPalError::unprocessable(issue, description));
    }
    let declined = order.behavior == Behavior::Decline.as_str();
    let now = now_rfc3339();
    let capture = CaptureRow {
        id: paypal_id(),
        status: if declined { "DECLINED" } else { "COMPLETED" }.to_string(),
        create_time: now.clone(),
    };
    db::insert_capture(&mut tx, &id, &capture).await?;
    db::set_order_status(&mut tx, &id, "COMPLETED", None, &now).await?;
    if let Some(txn) = &order.custom_id
        && !declined
    {
        db::bump(&mut tx, txn, Counter::Captures).await?;
    }
    let order = db::order(&mut tx, &id)
        .await?
        .ok_or_else(|| PayPalError::not_found(format!("order {id}")))?;
    let answer = order_json(&app, &order).to_string();
    if let Some(key) = &key {
        db::remember_answer(&mut tx, &scope, key, 201, &answer).await?;
    }
    tx.commit().await?;
    drop(write);

    let event = if declined {
        event_type::CAPTURE_DENIED
    } else {
        event_type::CAPTURE_COMPLETED
    };
    app.emit(event, "capture", capture_json(&app, &order));
    if let Some(hang) = app.with_controls(|c| c.take_lost_capture()) {
        tracing::info!(order = %id, "capture committed, answer lost (test control)");
        return Ok(lost_answer(hang).await);
    }
    Ok(replay(201, answer))
}

#[derive(Deserialize, Default)]
struct RefundBody {
    amount: Option<AmountBody>,
}

/// `POST /v2/payments/captures/{id}/refund`: refunds `amount`, or without
/// one what is left of the capture, as PayPal does. Partial refunds may
/// follow each other while they add up to at most the capture (more is
/// `REFUND_AMOUNT_EXCEEDED`); the capture is `PARTIALLY_REFUNDED` until
/// nothing is left, then `REFUNDED`. Each is idempotent by its
/// `PayPal-Request-Id`.
async fn refund_capture(
    State(app): State<App>,
    Path(capture_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PayPalError> {
    let body: RefundBody = if body.iter().all(u8::is_ascii_whitespace) {
        RefundBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| PayPalError::invalid("MALFORMED_REQUEST_JSON", e.to_string()))?
    };
    let key = request_id(&headers);
    let scope = format!("refund:{capture_id}");
    let write = app.write_lock().await;
    let mut tx = app.pool().begin().await?;
    let order = db::order_of_capture(&mut tx, &capture_id)
        .await?
        .ok_or_else(|| PayPalError::not_found(format!("capture {capture_id}")))?;
    if let Some(txn) = &order.custom_id {
        db::bump(&mut tx, txn, Counter::RefundRequests).await?;
    }
    if let Some(key) = &key
        && let Some((status, body)) = db::cached_answer(&mut tx, &scope, key).await?
    {
        tx.commit().await?;
        return Ok(replay(status, body));
    }
    let status = order.capture.as_ref().map(|c| c.status.as_str());
    let refusal = match status {
        Some("COMPLETED" | "PARTIALLY_REFUNDED") => None,
        Some("REFUNDED") => Some((
            "CAPTURE_FULLY_REFUNDED",
            "The capture has already been fully refunded.",
        )),
        _ => Some((
            "REFUND_NOT_ALLOWED",
            "A declined capture cannot be refunded.",
        )),
    };
    if let Some((issue, description)) = refusal {
        tx.commit().await?;
        return Err(PayPalError::unprocessable(issue, description));
    }
    let places = currency_places(&order.currency)
        .ok_or_else(|| PayPalError::internal(StatusCode::INTERNAL_SERVER_ERROR))?;
    let minor = |value: &str| {
        to_minor(value, places)
            .ok_or_else(|| PayPalError::internal(StatusCode::INTERNAL_SERVER_ERROR))
    };
    let mut remaining = minor(&order.value)?;
    for r in &order.refunds {
        remaining -= minor(&r.value)?;
    }
    // No amount: what is left of the capture (all of it, the first time).
    let amount = match &body.amount {
        None => Ok(remaining),
        Some(amount) => partial_amount(amount, &order.currency, places, remaining),
    };
    let amount = match amount {
        Ok(amount) => amount,
        Err(refusal) => {
            // The request is counted all the same.
            tx.commit().await?;
            return Err(refusal);
        }
    };
    // Not remembered under the request id: once the control is lifted, the
    // same request is served.
    if app.controls().refuse_refunds {
        tx.commit().await?;
        return Err(PayPalError::unprocessable(
            "TRANSACTION_REFUSED",
            "The refund was refused (sandbox control refuse_refunds).",
        ));
    }
    let refund = RefundRow {
        id: paypal_id(),
        value: to_decimal(amount, places),
        create_time: now_rfc3339(),
    };
    db::insert_refund(&mut tx, &capture_id, &refund, amount == remaining).await?;
    if let Some(txn) = &order.custom_id {
        db::bump(&mut tx, txn, Counter::Refunds).await?;
    }
    let order = db::order(&mut tx, &order.id)
        .await?
        .ok_or_else(|| PayPalError::not_found(format!("capture {capture_id}")))?;
    let answer = refund_json(&app, &order, &refund).to_string();
    if let Some(key) = &key {
        db::remember_answer(&mut tx, &scope, key, 201, &answer).await?;
    }
    tx.commit().await?;
    drop(write);

    app.emit(
        event_type::CAPTURE_REFUNDED,
        "refund",
        refund_json(&app, &order, &refund),
    );
    if let Some(hang) = app.with_controls(|c| c.take_lost_refund()) {
        tracing::info!(capture = %capture_id, "refund committed, answer lost (test control)");
        return Ok(lost_answer(hang).await);
    }
    Ok(replay(201, answer))
}

/// `POST /v2/checkout/orders/{id}/void`: our extension (PayPal cannot void
/// an intent-CAPTURE order; there it simply expires). Voiding a voided
/// order answers it again; a captured one is refused.
async fn void_order(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Value>, PayPalError> {
    let order = void(&app, &id)
        .await?
        .ok_or_else(|| PayPalError::not_found(format!("order {id}")))?;
    if order.status == "COMPLETED" {
        return Err(PayPalError::unprocessable(
            "ORDER_ALREADY_CAPTURED",
            "Order already captured: refund the capture instead.",
        ));
    }
    Ok(Json(order_json(&app, &order)))
}
