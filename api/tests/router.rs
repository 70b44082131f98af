//! The HTTP router without sockets or a Temporal server: requests go
//! through `tower::ServiceExt::oneshot` to [`router`] over a store on a
//! temporary SQLite file and a Temporal client that never touches the
//! network. The routes tested answer from validation, the store or the
//! webhook signature; the Temporal calls among them (`describe` of an order
//! the store does not know, an operator's update of a saga that is gone)
//! are answered NOT_FOUND by the fake.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures::FutureExt;
use ordersaga_activities::gateway::webhook::{
    SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, unix_seconds,
};
use ordersaga_api::catalog::CatalogService;
use ordersaga_api::http::{AppState, MAX_BODY_BYTES, router};
use ordersaga_api::rate::{PlaceOrderLimit, RateSettings};
use ordersaga_api::service::{OrderService, PaymentSettings};
use ordersaga_domain::{
    AttentionStatus, Compensation, Currency, CustomerId, Money, OrderId, OrderInput, OrderLine,
    Sku, TransactionId,
};
use ordersaga_runtime::Secret;
use ordersaga_runtime::auth::{AuthSettings, Authenticator, Claims, Role};
use ordersaga_store::Store;
use serde_json::{Value, json};
use temporalio_client::callback_based::{CallbackBasedGrpcService, GrpcRequest};
use temporalio_client::tonic::Status;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};
use tower::ServiceExt;

const WEBHOOK_SECRET: &str = "router-test-secret";
const AUTH_SECRET: &str = "router-test-hs256-secret-32-bytes-long";

/// The router over a fresh store; keep the directory while it runs.
struct App {
    router: Router,
    store: Store,
    _dir: tempfile::TempDir,
}

/// A Temporal client whose every call is answered in this process:
/// `DescribeWorkflowExecution` and `UpdateWorkflowExecution` with NOT_FOUND
/// (no such workflow), anything else with UNIMPLEMENTED, so a route that starts reaching Temporal fails
/// here instead of waiting for a server.
async fn offline_temporal() -> anyhow::Result<Client> {
    let service = CallbackBasedGrpcService {
        callback: Arc::new(|request: GrpcRequest| {
            async move {
                Err(match request.rpc.as_str() {
                    // What a server without the call answers: the client
                    // connects without capabilities.
                    "GetSystemInfo" => Status::unimplemented("unknown method GetSystemInfo"),
                    "DescribeWorkflowExecution" | "UpdateWorkflowExecution" => {
                        Status::not_found("workflow not found")
                    }
                    rpc => Status::unimplemented(format!("{rpc}: no Temporal in router tests")),
                })
            }
            .boxed()
        }),
    };
    let options = ConnectionOptions::new(Url::parse("http://127.0.0.1:7233")?)
        .service_override(service)
        .dns_load_balancing(None)
        .build();
    let connection = Connection::connect(options).await?;
    Ok(Client::new(
        connection,
        ClientOptions::new("default").build(),
    )?)
}

async fn app() -> anyhow::Result<App> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("shop.db").display());
    let store = Store::connect(&url).await?;
    let payment = PaymentSettings {
        webhook_secret: Some(Secret::new(WEBHOOK_SECRET)),
        ..PaymentSettings::default()
    };
    let orders = OrderService::new(
        store.clone(),
        offline_temporal().await?,
        "orders".to_string(),
        payment,
        PlaceOrderLimit::new(RateSettings {
            per_minute: 0,
            burst: 0,
        }),
    );
    let state = AppState {
        orders,
        catalog: CatalogService::new(store.clone()),
        auth: Authenticator::new(&AuthSettings::hs256(Secret::new(AUTH_SECRET))).await?,
    };
    Ok(App {
        router: router(state),
        store,
        _dir: dir,
    })
}

/// A token signed with the router's secret.
fn token(role: Role, subject: &str) -> anyhow::Result<String> {
    let settings = AuthSettings::hs256(Secret::new(AUTH_SECRET));
    Ok(
        Claims::new(&settings, subject, role, Duration::from_secs(600))
            .sign_hs256(&Secret::new(AUTH_SECRET))?,
    )
}

impl App {
    /// Sends one request (as an operator unless it carries a token);
    /// returns the status and the JSON body.
    async fn call(&self, mut request: Request<Body>) -> anyhow::Result<(StatusCode, Value)> {
        if !request.headers().contains_key(header::AUTHORIZATION) {
            request.headers_mut().insert(
                header::AUTHORIZATION,
                format!("Bearer {}", token(Role::Operator, "router-operator")?).parse()?,
            );
        }
        let response = self.router.clone().oneshot(request).await?;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        Ok((status, serde_json::from_slice(&body)?))
    }
}

fn post_json(uri: &str, body: impl Into<Body>) -> anyhow::Result<Request<Body>> {
    Ok(Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())?)
}

fn get(uri: &str) -> anyhow::Result<Request<Body>> {
    Ok(Request::get(uri).body(Body::empty())?)
}

/// Asserts the documented error shape, `{"error": {"code", "message"}}`
/// and nothing else, with `code` and a message.
fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    assert_eq!(
        body["error"].as_object().map(|o| o.len()),
        Some(2),
        "{body}"
    );
}

fn address() -> Value {
    json!({"name": "Erin", "line1": "1 Test Street", "city": "Berlin",
           "postal_code": "10115", "country": "DE"})
}

/// A valid `POST /v1/orders` body with `changes` applied (`null` removes a
/// field).
fn order_with(changes: &[(&str, Value)]) -> String {
    let mut order = json!({"customer_id": "erin", "customer_email": "erin@example.com",
                           "shipping_address": address(),
                           "lines": [{"sku": "MUG-1", "quantity": 1}]});
    if let Some(fields) = order.as_object_mut() {
        for (field, value) in changes {
            match value {
                Value::Null => fields.remove(*field),
                v => fields.insert((*field).to_string(), v.clone()),
            };
        }
    }
    order.to_string()
}

#[tokio::test]
async fn invalid_requests_are_400_with_the_json_error_shape() -> anyhow::Result<()> {
    let app = app().await?;
    let mut bad_postal_code = address();
    bad_postal_code["postal_code"] = json!("1;2");
    let orders = [
        ("no lines", order_with(&[("lines", json!([]))])),
        (
            "quantity 0",
            order_with(&[("lines", json!([{"sku": "MUG-1", "quantity": 0}]))]),
        ),
        ("not JSON", "{not json".to_string()),
        ("unknown field", order_with(&[("coupon", json!("FREE"))])),
        ("no email", order_with(&[("customer_email", Value::Null)])),
        (
            "bad postal code",
            order_with(&[("shipping_address", bad_postal_code)]),
        ),
    ];
    let mut cases = Vec::new();
    for (what, body) in orders {
        cases.push((what, post_json("/v1/orders", body)?));
    }
    cases.push(("order id not a UUID", get("/v1/orders/not-a-uuid")?));
    cases.push(("unknown status filter", get("/v1/orders?status=SHIPPED")?));
    cases.push(("empty status filter", get("/v1/orders?status=")?));
    cases.push((
        "needs_attention not a boolean",
        get("/v1/orders?needs_attention=maybe")?,
    ));
    let order = uuid::Uuid::new_v4();
    let retry = format!("/v1/orders/{order}/retry-compensation");
    let close = format!("/v1/orders/{order}/close-attention");
    let operator_cases = [
        (
            "retry of an id not a UUID",
            "/v1/orders/not-a-uuid/retry-compensation".to_string(),
            json!({"operator": "ops"}),
        ),
        // Without one, the operator is the token's subject.
        (
            "retry by an unprintable operator",
            retry,
            json!({"operator": "ops\u{7}"}),
        ),
        (
            "close without a reason",
            close.clone(),
            json!({"operator": "ops"}),
        ),
        (
            "close with an unknown field",
            close,
            json!({"operator": "ops", "reason": "x", "amount": 1}),
        ),
    ];
    for (what, path, body) in operator_cases {
        cases.push((what, post_json(&path, body.to_string())?));
    }
    cases.push((
        "product without a name",
        post_json(
            "/v1/products",
            json!({"sku": "MUG-1", "price": {"minor_units": 100, "currency": "EUR"}}).to_string(),
        )?,
    ));
    for (what, request) in cases {
        let (status, body) = app.call(request).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_error(&body, "INVALID_ARGUMENT");
    }
    Ok(())
}

#[tokio::test]
async fn unknown_orders_products_and_routes_are_404() -> anyhow::Result<()> {
    let app = app().await?;
    let order = format!("/v1/orders/{}", uuid::Uuid::new_v4());
    let unknown_sku = post_json(
        "/v1/orders",
        order_with(&[("lines", json!([{"sku": "NOPE-1", "quantity": 1}]))]),
    )?;
    let cases = [
        ("order", get(&order)?),
        ("product", get("/v1/products/NOPE-1")?),
        ("ordered product", unknown_sku),
        ("route", get("/v2/orders")?),
    ];
    for (what, request) in cases {
        let (status, body) = app.call(request).await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "{what}: {body}");
        assert_error(&body, "NOT_FOUND");
    }
    Ok(())
}

/// A PayPal-shaped approval event for `transaction_id`.
fn approval_event(transaction_id: &str) -> Vec<u8> {
    json!({"id": "WH-1", "event_type": "CHECKOUT.ORDER.APPROVED", "resource_type": "checkout-order",
           "resource": {"id": "ORDER-X", "status": "APPROVED",
                        "purchase_units": [{"custom_id": transaction_id}]}})
    .to_string()
    .into_bytes()
}

fn webhook(
    timestamp: Option<i64>,
    signature: Option<String>,
    body: &[u8],
) -> anyhow::Result<Request<Body>> {
    let mut request = Request::post("/v1/payments/webhook");
    if let Some(ts) = timestamp {
        request = request.header(TIMESTAMP_HEADER, ts.to_string());
    }
    if let Some(signature) = signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    Ok(request.body(Body::from(body.to_vec()))?)
}

#[tokio::test]
async fn a_webhook_that_does_not_verify_is_401() -> anyhow::Result<()> {
    let app = app().await?;
    let body = approval_event("00000000-0000-4000-8000-000000000000");
    let now = unix_seconds(SystemTime::now());
    let secret = WEBHOOK_SECRET.as_bytes();
    let cases = [
        (
            "forged",
            webhook(Some(now), Some(sign(b"not-the-secret", now, &body)), &body)?,
        ),
        (
            "stale",
            webhook(
                Some(now - 3600),
                Some(sign(secret, now - 3600, &body)),
                &body,
            )?,
        ),
        (
            "malformed",
            webhook(Some(now), Some("v1=zz".to_string()), &body)?,
        ),
        ("unsigned", webhook(None, None, &body)?),
    ];
    for (what, request) in cases {
        let (status, body) = app.call(request).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_error(&body, "UNAUTHENTICATED");
    }
    // The same event signed with the secret: verified, and ignored (no
    // payment of ours has that transaction).
    let (status, ack) = app
        .call(webhook(Some(now), Some(sign(secret, now, &body)), &body)?)
        .await?;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack, json!({"status": "ignored"}));
    Ok(())
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() -> anyhow::Result<()> {
    let app = app().await?;
    let padding = "x".repeat(MAX_BODY_BYTES + 1);
    let cases = [
        (
            "order",
            post_json(
                "/v1/orders",
                format!("{{\"customer_id\":\"{padding}\",\"lines\":[]}}"),
            )?,
        ),
        (
            "product",
            post_json("/v1/products", format!("{{\"sku\":\"{padding}\"}}"))?,
        ),
        (
            "cancel",
            post_json(
                &format!("/v1/orders/{}/cancel", uuid::Uuid::new_v4()),
                format!("{{\"reason\":\"{padding}\"}}"),
            )?,
        ),
        (
            "webhook",
            webhook(None, None, format!("{{\"id\":\"{padding}\"}}").as_bytes())?,
        ),
    ];
    for (what, request) in cases {
        let (status, body) = app.call(request).await?;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{what}: {body}");
        assert_error(&body, "PAYLOAD_TOO_LARGE");
    }
    Ok(())
}

/// A paid order in the store whose refund the saga parked.
async fn parked_order(store: &Store, customer: &str) -> anyhow::Result<OrderId> {
    let eur = Currency::parse("EUR")?;
    let sku = Sku::parse("MUG-1")?;
    mug_in_catalog(store, &sku).await?;
    let order_id = OrderId::from_uuid(uuid::Uuid::new_v4());
    let order = OrderInput {
        order_id,
        transaction_id: TransactionId::for_order(&order_id),
        customer_id: CustomerId::parse(customer)?,
        lines: vec![OrderLine {
            sku,
            quantity: 1,
            unit_price: Money::new(1_000, eur),
        }],
        total: Money::new(1_000, eur),
        customer_email: None,
        shipping_address: None,
        payment: Default::default(),
    };
    store.orders().place(&order, &[]).await?;
    let payments = store.payments();
    payments
        .ensure(&order_id, &order.transaction_id, order.total)
        .await?;
    payments.record_outcome(&order_id, Ok(())).await?;
    store
        .attention()
        .park(&order_id, Compensation::RefundPayment, "gateway refused")
        .await?;
    Ok(order_id)
}

/// The catalog product the parked orders name (created once).
async fn mug_in_catalog(store: &Store, sku: &Sku) -> anyhow::Result<()> {
    if store.catalog().get(sku).await?.is_none() {
        store
            .catalog()
            .create(&ordersaga_store::NewProduct {
                sku: sku.clone(),
                name: "Mug".into(),
                price: Money::new(1_000, Currency::parse("EUR")?),
                low_stock_threshold: 0,
            })
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn needs_attention_lists_parked_orders_and_a_close_without_saga_is_recorded()
-> anyhow::Result<()> {
    let app = app().await?;
    let parked = parked_order(&app.store, "erin").await?;
    let (status, body) = app.call(get("/v1/orders?needs_attention=true")?).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed = body["orders"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 1, "{body}");
    assert_eq!(listed[0]["order_id"], parked.to_string());
    assert_eq!(listed[0]["attention"], "RefundPayment: gateway refused");
    let (_, all) = app.call(get("/v1/orders?needs_attention=false")?).await?;
    assert_eq!(all["orders"].as_array().map(Vec::len), Some(1));

    let (status, body) = app.call(get(&format!("/v1/orders/{parked}"))?).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["payment_status"], "REFUND_FAILED");
    assert_eq!(body["attention"][0]["status"], "OPEN");
    assert_eq!(body["attention"][0]["reason"], "gateway refused");

    // The saga is gone: a retry cannot run, a close is recorded directly.
    let retry = post_json(
        &format!("/v1/orders/{parked}/retry-compensation"),
        json!({"operator": "ops-ana"}).to_string(),
    )?;
    let (status, body) = app.call(retry).await?;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "FAILED_PRECONDITION");
    let close = || {
        post_json(
            &format!("/v1/orders/{parked}/close-attention"),
            json!({"operator": "ops-ana", "reason": "refunded by bank transfer"}).to_string(),
        )
    };
    let (status, body) = app.call(close()?).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["order_id"], parked.to_string());
    let records = app.store.attention().of_order(&parked).await?;
    assert_eq!(records[0].status, AttentionStatus::Closed);
    assert_eq!(
        records[0].closed.as_ref().map(|n| n.reason.as_str()),
        Some("refunded by bank transfer")
    );
    let (_, body) = app.call(get("/v1/orders?needs_attention=true")?).await?;
    assert_eq!(body["orders"].as_array().map(Vec::len), Some(0), "{body}");
    let (status, body) = app.call(close()?).await?;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "nothing left to close: {body}"
    );

    let unknown = post_json(
        &format!("/v1/orders/{}/close-attention", uuid::Uuid::new_v4()),
        json!({"operator": "ops", "reason": "x"}).to_string(),
    )?;
    let (status, body) = app.call(unknown).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    Ok(())
}

/// Every route but `/healthz` and the webhook: no token or a bad one is
/// `401` (before the body is read: these bodies are not even JSON), a
/// customer on the staff's routes `403`, all in the JSON error shape.
#[tokio::test]
async fn routes_refuse_missing_tokens_and_wrong_roles() -> anyhow::Result<()> {
    let app = app().await?;
    let id = uuid::Uuid::new_v4();
    let routes = [
        ("POST", "/v1/orders".to_string()),
        ("GET", format!("/v1/orders/{id}")),
        ("GET", "/v1/orders".to_string()),
        ("POST", format!("/v1/orders/{id}/cancel")),
        ("POST", format!("/v1/orders/{id}/retry-compensation")),
        ("POST", format!("/v1/orders/{id}/close-attention")),
        ("GET", "/v1/shipments".to_string()),
        ("POST", "/v1/products".to_string()),
        ("GET", "/v1/products".to_string()),
        ("GET", "/v1/products/MUG-1".to_string()),
        ("POST", "/v1/products/MUG-1/ratings".to_string()),
        ("POST", "/v1/stock-receipts".to_string()),
        ("GET", "/v1/low-stock-alerts".to_string()),
    ];
    let forged = {
        let other = AuthSettings::hs256(Secret::new("not-the-router-secret-32-bytes-long!"));
        Claims::new(&other, "x", Role::Operator, Duration::from_secs(60))
            .sign_hs256(&Secret::new("not-the-router-secret-32-bytes-long!"))?
    };
    for (method, uri) in &routes {
        for header in ["Basic abc".to_string(), format!("Bearer {forged}")] {
            let request = Request::builder()
                .method(*method)
                .uri(uri)
                .header(header::AUTHORIZATION, header)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("not json"))?;
            let (status, body) = app.call(request).await?;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
            assert_error(&body, "UNAUTHENTICATED");
        }
    }
    let customer = format!("Bearer {}", token(Role::Customer, "erin")?);
    let operator = r#"{"operator":"x","reason":"y"}"#;
    let product = r#"{"sku":"NEW-1","name":"New","price":{"minor_units":1,"currency":"EUR"}}"#;
    let staff_only = [
        (&routes[4], operator),
        (&routes[5], operator),
        (&routes[6], ""),
        (&routes[7], product),
        (
            &routes[11],
            r#"{"idempotency_key":"r","lines":[{"sku":"MUG-1","quantity":1}]}"#,
        ),
        (&routes[12], ""),
    ];
    for ((method, uri), body) in staff_only {
        let request = Request::builder()
            .method(*method)
            .uri(uri)
            .header(header::AUTHORIZATION, &customer)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))?;
        let (status, body) = app.call(request).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {body}");
        assert_error(&body, "PERMISSION_DENIED");
    }
    Ok(())
}

/// Sends one request as it is (no token added): status, headers, body.
async fn raw(
    app: &App,
    request: Request<Body>,
) -> anyhow::Result<(StatusCode, axum::http::HeaderMap, Vec<u8>)> {
    let response = app.router.clone().oneshot(request).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    Ok((status, headers, body.to_vec()))
}

/// The document, as `GET /openapi.json` serves it without a token.
async fn served_document(app: &App) -> anyhow::Result<(Value, oas3::Spec)> {
    let (status, headers, body) = raw(app, get("/openapi.json")?).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let text = String::from_utf8(body)?;
    Ok((serde_json::from_str(&text)?, oas3::from_json(&text)?))
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The document's path with a value in each `{parameter}`.
fn concrete(path: &str) -> String {
    path.replace("{order_id}", &uuid::Uuid::new_v4().to_string())
        .replace("{sku}", "MUG-1")
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_the_bearer_scheme_where_a_token_is_needed()
-> anyhow::Result<()> {
    let app = app().await?;
    let (json, spec) = served_document(&app).await?;
    let version = spec.validate_version()?;
    assert_eq!((version.major, version.minor), (3, 1), "{version}");
    assert_eq!(
        json["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": "A JWT naming the caller's role (customer, merchant, operator, courier)"})
    );
    let open = [
        ("GET", "/healthz"),
        ("GET", "/openapi.json"),
        ("POST", "/v1/payments/webhook"),
    ];
    let mut operations = 0;
    for (path, method, operation) in spec.operations() {
        operations += 1;
        let is_open = open.contains(&(method.as_str(), path.as_str()));
        let schemes: Vec<&String> = operation
            .security
            .iter()
            .flat_map(|requirement| requirement.0.keys())
            .collect();
        if is_open {
            assert!(schemes.is_empty(), "{method} {path} is open: {schemes:?}");
        } else {
            assert_eq!(schemes, ["bearer"], "{method} {path}");
        }
        // Every answer resolves; every error answer is the error schema.
        let responses = operation.responses(&spec);
        assert_eq!(
            responses.len(),
            operation.responses.as_ref().map_or(0, |r| r.len()),
            "{method} {path}: a response does not resolve"
        );
        let statuses: Vec<&str> = responses.keys().map(String::as_str).collect();
        assert!(statuses.contains(&"414"), "{method} {path}: {statuses:?}");
        if !is_open {
            assert!(statuses.contains(&"401"), "{method} {path}: {statuses:?}");
        }
        if path != "/openapi.json" {
            let dependency_failed = statuses.contains(&"500") || statuses.contains(&"503");
            assert!(dependency_failed, "{method} {path}: {statuses:?}");
        }
        for (status, response) in &responses {
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &json["paths"][&path][method.as_str().to_lowercase()]["responses"]
                    [status]["content"]["application/json"]["schema"];
                assert_eq!(
                    schema["$ref"], "#/components/schemas/ErrorBody",
                    "{method} {path} {status}: {response:?}"
                );
            }
        }
    }
    assert_eq!(operations, 22, "{json}");
    Ok(())
}

/// The router serves exactly the document's operations: each documented
/// one reaches its handler (not the unknown-route fallback, not `405`),
/// and each other method on a documented path is `405` with an `Allow` of
/// the documented methods.
#[tokio::test]
async fn the_document_lists_every_route_the_router_serves() -> anyhow::Result<()> {
    let app = app().await?;
    let (json, _) = served_document(&app).await?;
    let paths = json["paths"].as_object().cloned().unwrap_or_default();
    assert!(paths.len() >= 13, "{json}");
    for (path, item) in &paths {
        let documented: Vec<String> = METHODS
            .iter()
            .filter(|m| item.get(m.to_lowercase()).is_some())
            .map(|m| (*m).to_string())
            .collect();
        assert!(!documented.is_empty(), "{path}");
        for method in METHODS {
            let request = Request::builder()
                .method(method)
                .uri(concrete(path))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))?;
            let (status, headers, body) = raw(&app, request).await?;
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if documented.iter().any(|m| m == method) {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert_ne!(
                    body["error"]["message"], "no such route",
                    "{method} {path} is documented but not routed"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is routed but not documented"
                );
                assert_error(&body, "METHOD_NOT_ALLOWED");
                let mut allowed: Vec<String> = headers[header::ALLOW]
                    .to_str()?
                    .split(',')
                    .map(|m| m.trim().to_string())
                    .filter(|m| m != "HEAD")
                    .collect();
                allowed.sort();
                let mut expected = documented.clone();
                expected.sort();
                assert_eq!(allowed, expected, "{path}");
            }
        }
    }
    Ok(())
}

/// What axum answers by itself today as text or an empty body: each in the
/// JSON error shape, with a JSON content type.
#[tokio::test]
async fn framework_answers_are_in_the_json_error_shape() -> anyhow::Result<()> {
    let app = app().await?;
    let id = uuid::Uuid::new_v4();
    let long = format!("/v1/orders?page_token={}", "t".repeat(9 * 1024));
    let cases = [
        (
            "a path segment that is not UTF-8",
            get("/v1/orders/%FF%FE")?,
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            "a sku that is not UTF-8",
            get("/v1/products/%C0")?,
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            "a method the route does not have",
            Request::delete("/v1/orders").body(Body::empty())?,
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
        ),
        (
            "a request target over the limit",
            get(&long)?,
            StatusCode::URI_TOO_LONG,
            "URI_TOO_LONG",
        ),
        (
            "an unknown route",
            get("/nope")?,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            "a body that is not JSON by its content type",
            Request::post("/v1/orders")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from(order_with(&[])))?,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "a body without a content type",
            Request::post(format!("/v1/orders/{id}/close-attention"))
                .body(Body::from(r#"{"reason":"x"}"#))?,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "a cancel body that is not JSON",
            post_json(&format!("/v1/orders/{id}/cancel"), "{not json")?,
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            "a query value of the wrong type",
            get("/v1/shipments?page_size=many")?,
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
    ];
    let operator = format!("Bearer {}", token(Role::Operator, "router-operator")?);
    for (what, mut request, expected, code) in cases {
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, operator.parse()?);
        let (status, headers, body) = raw(&app, request).await?;
        let body: Value = serde_json::from_slice(&body)
            .map_err(|e| anyhow::anyhow!("{what}: {e}: {}", String::from_utf8_lossy(&body)))?;
        assert_eq!(status, expected, "{what}: {body}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{what}");
        assert_error(&body, code);
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert_eq!(headers[header::ALLOW], "GET,HEAD,POST", "{what}");
        }
    }
    assert_eq!(
        app.store.catalog().list().await?.len(),
        0,
        "nothing written"
    );
    Ok(())
}

/// The limits the document states are the ones the services check.
#[tokio::test]
async fn the_documented_limits_are_the_services_limits() -> anyhow::Result<()> {
    use ordersaga_api::catalog::{MAX_NAME, MAX_RECEIPT_LINES, MAX_RECEIPT_QUANTITY};
    use ordersaga_api::service::{MAX_CANCEL_REASON, MAX_IDEMPOTENCY_KEY, MAX_LINES, MAX_QUANTITY};
    let app = app().await?;
    let (json, _) = served_document(&app).await?;
    let schemas = &json["components"]["schemas"];
    let cases = [
        ("PlaceOrderBody", "lines", "maxItems", json!(MAX_LINES)),
        (
            "PlaceOrderBody",
            "idempotency_key",
            "maxLength",
            json!(MAX_IDEMPOTENCY_KEY),
        ),
        ("LineBody", "quantity", "maximum", json!(MAX_QUANTITY)),
        (
            "CancelBody",
            "reason",
            "maxLength",
            json!(MAX_CANCEL_REASON),
        ),
        ("CreateProductBody", "name", "maxLength", json!(MAX_NAME)),
        (
            "CreateProductBody",
            "low_stock_threshold",
            "maximum",
            json!(MAX_RECEIPT_QUANTITY),
        ),
        ("ReceiptBody", "lines", "maxItems", json!(MAX_RECEIPT_LINES)),
        (
            "ReceiptLineJson",
            "quantity",
            "maximum",
            json!(MAX_RECEIPT_QUANTITY),
        ),
    ];
    for (schema, field, keyword, limit) in cases {
        let property = &schemas[schema]["properties"][field];
        assert_eq!(property[keyword], limit, "{schema}.{field}: {property}");
    }
    Ok(())
}
