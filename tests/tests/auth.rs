//! Who may do what, on both real transports: every route refuses a call
//! without a valid token (`401` / `UNAUTHENTICATED`: none, malformed,
//! forged, expired, `alg: none`, wrong audience or issuer), a role that may
//! not (`403` / `PERMISSION_DENIED`), another customer's order (`404` /
//! `NOT_FOUND`) and a body naming another customer (`403`), and none of
//! them writes anything (the shop database and Temporal are checked).
//! `PlaceOrder` is rate-limited per customer (`429` /
//! `RESOURCE_EXHAUSTED`), and the API serves both transports over TLS.

use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ordersaga_api::rate::RateSettings;
use ordersaga_api::tls::TlsSettings;
use ordersaga_domain::{CheckoutTiming, Sku};
use ordersaga_proto::v1 as pb;
use ordersaga_proto::v1::catalog_service_client::CatalogServiceClient;
use ordersaga_proto::v1::order_service_client::OrderServiceClient;
use ordersaga_runtime::Secret;
use ordersaga_runtime::auth::{Claims, Role};
use ordersaga_tests::auth::{Bearer, TEST_AUTH_SECRET, operator_token, test_auth, token};
use ordersaga_tests::{ORDER_TIMEOUT, Stack, eventually, place_request};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use temporalio_client::WorkflowFetchHistoryOptions;
use tonic::Code;
use tonic::transport::Channel;

/// Tokens that must not get anyone in, by name.
fn bad_tokens() -> Vec<(&'static str, Option<String>)> {
    let settings = test_auth();
    let secret = Secret::new(TEST_AUTH_SECRET);
    let claims = || {
        Claims::new(
            &settings,
            "mallory",
            Role::Operator,
            Duration::from_secs(600),
        )
    };
    let mut expired = claims();
    expired.exp = expired.iat - 3600;
    let mut audience = claims();
    audience.aud = "another-api".into();
    let mut issuer = claims();
    issuer.iss = "someone-else".into();
    let sign = |c: &Claims| c.sign_hs256(&secret).unwrap_or_default();
    let forged = claims()
        .sign_hs256(&Secret::new("not-the-shop-secret-but-32-bytes-long"))
        .unwrap_or_default();
    let unsigned = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        B64.encode(serde_json::to_vec(&claims()).unwrap_or_default())
    );
    vec![
        ("no token", None),
        ("malformed", Some("not-a-jwt".to_string())),
        ("forged signature", Some(forged)),
        ("expired", Some(sign(&expired))),
        ("alg none", Some(unsigned)),
        ("wrong audience", Some(sign(&audience))),
        ("wrong issuer", Some(sign(&issuer))),
    ]
}

/// One HTTP call; the status and the JSON body (`Null` if none).
async fn http(
    stack: &Stack,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value, Option<String>)> {
    // Not the stack's client: it sends an operator's token with everything.
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", stack.http_base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok((status, body, challenge))
}

fn address() -> Value {
    json!({"name": "Ann", "line1": "1 Main St", "city": "Berlin", "postal_code": "10115",
           "country": "DE"})
}

/// Every HTTP route that takes a token, with a body it would accept.
fn http_routes(order_id: &str, customer: &str) -> Vec<(Method, String, Option<Value>)> {
    let order = json!({"customer_id": customer, "customer_email": "a@example.com",
                       "shipping_address": address(),
                       "lines": [{"sku": "MUG-1", "quantity": 1}]});
    vec![
        (Method::POST, "/v1/orders".into(), Some(order)),
        (Method::GET, format!("/v1/orders/{order_id}"), None),
        (Method::GET, "/v1/orders".into(), None),
        (
            Method::POST,
            format!("/v1/orders/{order_id}/cancel"),
            Some(json!({"reason": "x"})),
        ),
        (
            Method::POST,
            format!("/v1/orders/{order_id}/retry-compensation"),
            Some(json!({"operator": "x", "reason": "y"})),
        ),
        (
            Method::POST,
            format!("/v1/orders/{order_id}/close-attention"),
            Some(json!({"operator": "x", "reason": "y"})),
        ),
        (Method::GET, "/v1/shipments".into(), None),
        (
            Method::POST,
            format!("/v1/shipments/{order_id}/dispatch"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/shipments/{order_id}/deliver"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/customers/{customer}/spending-limit"),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/customers/{customer}/spending-limit"),
            Some(json!({"limit": {"minor_units": 100, "currency": "EUR"}})),
        ),
        (
            Method::DELETE,
            format!("/v1/customers/{customer}/spending-limit"),
            None,
        ),
        (
            Method::POST,
            "/v1/products".into(),
            Some(
                json!({"sku": "NEW-1", "name": "New", "price": {"minor_units": 100,
                        "currency": "EUR"}}),
            ),
        ),
        (Method::GET, "/v1/products".into(), None),
        (Method::GET, "/v1/products/MUG-1".into(), None),
        (
            Method::POST,
            "/v1/products/MUG-1/ratings".into(),
            Some(json!({"customer_id": customer, "stars": 5})),
        ),
        (
            Method::POST,
            "/v1/stock-receipts".into(),
            Some(json!({"idempotency_key": "r-1", "lines": [{"sku": "MUG-1", "quantity": 5}]})),
        ),
        (Method::GET, "/v1/low-stock-alerts".into(), None),
    ]
}

/// Every gRPC method of both services, called through `channel` with
/// `token` (none: no `authorization` metadata); the code of each answer.
async fn grpc_codes(
    channel: &Channel,
    token: Option<&str>,
    order_id: &str,
    customer: &str,
) -> Vec<(&'static str, Code)> {
    let bearer = Bearer::new(token.unwrap_or_default());
    let with = move |mut req: tonic::Request<()>| {
        if token.is_some() {
            let mut b = bearer.clone();
            req = tonic::service::Interceptor::call(&mut b, req)?;
        }
        Ok(req)
    };
    let mut orders = OrderServiceClient::with_interceptor(channel.clone(), with.clone());
    let mut catalog = CatalogServiceClient::with_interceptor(channel.clone(), with);
    let code = |r: Result<(), tonic::Status>| r.err().map_or(Code::Ok, |s| s.code());
    let id = order_id.to_string();
    vec![
        (
            "PlaceOrder",
            code(
                orders
                    .place_order(place_request(customer, &[("MUG-1", 1)], ""))
                    .await
                    .map(drop),
            ),
        ),
        (
            "GetOrder",
            code(
                orders
                    .get_order(pb::GetOrderRequest {
                        order_id: id.clone(),
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "ListOrders",
            code(
                orders
                    .list_orders(pb::ListOrdersRequest::default())
                    .await
                    .map(drop),
            ),
        ),
        (
            "CancelOrder",
            code(
                orders
                    .cancel_order(pb::CancelOrderRequest {
                        order_id: id.clone(),
                        reason: "x".into(),
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "AcceptAmendment",
            code(
                orders
                    .accept_amendment(pb::AcceptAmendmentRequest {
                        order_id: id.clone(),
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "RetryCompensation",
            code(
                orders
                    .retry_compensation(pb::RetryCompensationRequest {
                        order_id: id.clone(),
                        operator: "x".into(),
                        reason: "y".into(),
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "CloseAttention",
            code(
                orders
                    .close_attention(pb::CloseAttentionRequest {
                        order_id: id.clone(),
                        operator: "x".into(),
                        reason: "y".into(),
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "ListShipments",
            code(
                orders
                    .list_shipments(pb::ListShipmentsRequest::default())
                    .await
                    .map(drop),
            ),
        ),
        (
            "DispatchShipment",
            code(
                orders
                    .dispatch_shipment(pb::ShipmentActionRequest {
                        order_id: id.clone(),
                        warehouse: String::new(),
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "DeliverShipment",
            code(
                orders
                    .deliver_shipment(pb::ShipmentActionRequest {
                        order_id: id.clone(),
                        warehouse: String::new(),
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "SetSpendingLimit",
            code(
                orders
                    // Negative: refused even where the role may set
                    // limits, so nothing is written.
                    .set_spending_limit(pb::SetSpendingLimitRequest {
                        customer_id: customer.to_string(),
                        limit: Some(pb::Money {
                            minor_units: -1,
                            currency: "EUR".into(),
                        }),
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "GetSpendingLimit",
            code(
                orders
                    .get_spending_limit(pb::GetSpendingLimitRequest {
                        customer_id: customer.to_string(),
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "CreateProduct",
            code(
                catalog
                    .create_product(pb::CreateProductRequest {
                        sku: "NEW-2".into(),
                        name: "New".into(),
                        price: Some(pb::Money {
                            minor_units: 100,
                            currency: "EUR".into(),
                        }),
                        low_stock_threshold: 0,
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "GetProduct",
            code(
                catalog
                    .get_product(pb::GetProductRequest {
                        sku: "MUG-1".into(),
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "ListProducts",
            code(
                catalog
                    .list_products(pb::ListProductsRequest::default())
                    .await
                    .map(drop),
            ),
        ),
        (
            "CreateStockReceipt",
            code(
                catalog
                    .create_stock_receipt(pb::CreateStockReceiptRequest {
                        idempotency_key: "r-2".into(),
                        warehouse: String::new(),
                        lines: vec![pb::StockReceiptLine {
                            sku: "MUG-1".into(),
                            quantity: 5,
                        }],
                    })
                    .await
                    .map(drop),
            ),
        ),
        (
            "ListLowStockAlerts",
            code(
                catalog
                    .list_low_stock_alerts(pb::ListLowStockAlertsRequest::default())
                    .await
                    .map(drop),
            ),
        ),
        (
            "SubmitReviewRating",
            code(
                catalog
                    .submit_review_rating(pb::SubmitReviewRatingRequest {
                        customer_id: customer.into(),
                        sku: "MUG-1".into(),
                        stars: 5,
                    })
                    .await
                    .map(drop),
            ),
        ),
    ]
}

/// What a refused call could have changed: the catalog (products, stock,
/// ratings), the stored orders and the sagas started in Temporal.
#[derive(Debug, PartialEq)]
struct Written {
    products: Vec<(String, i64, i64)>,
    orders: usize,
    sagas: usize,
}

async fn written(stack: &Stack) -> anyhow::Result<Written> {
    let products = stack
        .store
        .catalog()
        .list()
        .await?
        .into_iter()
        .map(|p| (p.sku.to_string(), p.on_hand, p.rating_count))
        .collect();
    let (orders, _) = stack
        .store
        .orders()
        .list(&ordersaga_store::OrderQuery {
            customer_id: None,
            status: None,
            needs_attention: false,
            limit: 100,
            after: None,
        })
        .await?;
    let sagas = stack
        .client
        .count_workflows(
            format!("TaskQueue = '{}'", stack.task_queue),
            Default::default(),
        )
        .await?
        .count();
    Ok(Written {
        products,
        orders: orders.len(),
        sagas,
    })
}

/// A saga started after the refused calls, and seen by Temporal's
/// visibility: refused starts before it would be seen by then too.
async fn one_saga_later(stack: &Stack, before: &Written) -> anyhow::Result<()> {
    let mut grpc = stack.grpc.clone();
    grpc.place_order(place_request("witness", &[("MUG-1", 1)], ""))
        .await?;
    let seen = eventually("the witness saga visible", ORDER_TIMEOUT, || async {
        let now = written(stack).await?;
        Ok((now.sagas > before.sagas).then_some(now.sagas))
    })
    .await?;
    assert_eq!(seen, before.sagas + 1, "only the witness saga was started");
    Ok(())
}

#[tokio::test]
async fn every_route_refuses_calls_without_a_valid_token_and_writes_nothing() -> anyhow::Result<()>
{
    let stack = Stack::builder().without_worker().start().await?;
    stack.product("MUG-1", 1_000, 10).await?;
    let before = written(&stack).await?;
    let order_id = uuid::Uuid::new_v4().to_string();
    for (why, token) in bad_tokens() {
        for (method, path, body) in http_routes(&order_id, "mallory") {
            let (status, body, challenge) =
                http(&stack, method.clone(), &path, token.as_deref(), body).await?;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{why}: {method} {path}: {body}"
            );
            assert_eq!(body["error"]["code"], "UNAUTHENTICATED", "{why}: {path}");
            assert!(body["error"]["message"].is_string(), "{body}");
            assert_eq!(challenge.as_deref(), Some("Bearer"), "{why}: {path}");
        }
        let channel = Channel::from_shared(stack.grpc_endpoint())?
            .connect()
            .await?;
        for (rpc, code) in grpc_codes(&channel, token.as_deref(), &order_id, "mallory").await {
            assert_eq!(code, Code::Unauthenticated, "{why}: {rpc}");
        }
    }
    assert_eq!(written(&stack).await?, before);
    one_saga_later(&stack, &before).await?;

    // Open: health (HTTP and gRPC) and reflection need no token.
    let (status, _, _) = http(&stack, Method::GET, "/healthz", None, None).await?;
    assert_eq!(status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn each_role_does_what_it_may_and_is_refused_the_rest() -> anyhow::Result<()> {
    let stack = Stack::builder().without_worker().start().await?;
    stack.product("MUG-1", 1_000, 10).await?;
    let channel = Channel::from_shared(stack.grpc_endpoint())?
        .connect()
        .await?;
    let order_id = uuid::Uuid::new_v4().to_string();
    let before = written(&stack).await?;

    // What a customer may not do, and what a merchant may not.
    let customer = token(Role::Customer, "alice");
    let merchant = token(Role::Merchant, "mia");
    let customer_denied = [
        "/v1/orders/{id}/retry-compensation",
        "/v1/orders/{id}/close-attention",
        "/v1/shipments",
        "/v1/products",
        "/v1/stock-receipts",
        "/v1/low-stock-alerts",
        "/v1/shipments/{id}/dispatch",
        "/v1/shipments/{id}/deliver",
        "/v1/customers/alice/spending-limit",
    ];
    for (method, path, body) in http_routes(&order_id, "alice") {
        let pattern = path.replace(&order_id, "{id}");
        // Customers read the catalog; they do not add to it.
        let reads_catalog = method == Method::GET && pattern == "/v1/products";
        if customer_denied.contains(&pattern.as_str()) && !reads_catalog {
            let (status, body, _) =
                http(&stack, method.clone(), &path, Some(&customer), body).await?;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "customer {method} {path}: {body}"
            );
            assert_eq!(body["error"]["code"], "PERMISSION_DENIED", "{path}");
        }
    }
    let merchant_denied = [
        (Method::POST, "/v1/orders".to_string()),
        (
            Method::POST,
            format!("/v1/orders/{order_id}/retry-compensation"),
        ),
        (
            Method::POST,
            format!("/v1/orders/{order_id}/close-attention"),
        ),
        (Method::POST, "/v1/products/MUG-1/ratings".to_string()),
        (Method::POST, format!("/v1/shipments/{order_id}/dispatch")),
        (Method::POST, format!("/v1/shipments/{order_id}/deliver")),
    ];
    for (method, path, body) in http_routes(&order_id, "alice") {
        if merchant_denied.contains(&(method.clone(), path.clone())) {
            let (status, body, _) =
                http(&stack, method.clone(), &path, Some(&merchant), body).await?;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "merchant {method} {path}: {body}"
            );
            assert_eq!(body["error"]["code"], "PERMISSION_DENIED", "{path}");
        }
    }
    // The needs-attention list is the operator's.
    for who in [&customer, &merchant] {
        let (status, body, _) = http(
            &stack,
            Method::GET,
            "/v1/orders?needs_attention=true",
            Some(who),
            None,
        )
        .await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    // A customer names only itself, in an order or a rating.
    let (status, body, _) = http(
        &stack,
        Method::POST,
        "/v1/orders",
        Some(&customer),
        http_routes(&order_id, "bob")[0].2.clone(),
    )
    .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body, _) = http(
        &stack,
        Method::POST,
        "/v1/products/MUG-1/ratings",
        Some(&customer),
        Some(json!({"customer_id": "bob", "stars": 1})),
    )
    .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body, _) = http(
        &stack,
        Method::GET,
        "/v1/orders?customer_id=bob",
        Some(&customer),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // The same over gRPC.
    let codes = grpc_codes(&channel, Some(&customer), &order_id, "bob").await;
    for (rpc, code) in &codes {
        let expected = match *rpc {
            // Another customer's id in the body.
            "PlaceOrder" | "SubmitReviewRating" => Code::PermissionDenied,
            // Staff's and operators' methods.
            "RetryCompensation" | "CloseAttention" | "ListShipments" | "CreateProduct"
            | "CreateStockReceipt" | "ListLowStockAlerts" => Code::PermissionDenied,
            // The courier's, and the managers'.
            "DispatchShipment" | "DeliverShipment" | "SetSpendingLimit" | "GetSpendingLimit" => {
                Code::PermissionDenied
            }
            // No such order (and if there were, not hers).
            "GetOrder" | "CancelOrder" | "AcceptAmendment" => Code::NotFound,
            "ListOrders" | "GetProduct" | "ListProducts" => Code::Ok,
            other => anyhow::bail!("unexpected {other}"),
        };
        assert_eq!(*code, expected, "customer {rpc}");
    }
    let codes = grpc_codes(&channel, Some(&merchant), &order_id, "bob").await;
    for (rpc, code) in &codes {
        let expected = match *rpc {
            "PlaceOrder" | "SubmitReviewRating" | "RetryCompensation" | "CloseAttention"
            | "DispatchShipment" | "DeliverShipment" | "AcceptAmendment" => Code::PermissionDenied,
            // Allowed; the negative limit is refused, nothing written.
            "SetSpendingLimit" => Code::InvalidArgument,
            "GetSpendingLimit" => Code::Ok,
            "GetOrder" | "CancelOrder" => Code::NotFound,
            // Allowed, but refused further on for what they carry (a new
            // product and receipt would be writes: checked below).
            "ListOrders" | "GetProduct" | "ListProducts" | "ListShipments"
            | "ListLowStockAlerts" | "CreateProduct" | "CreateStockReceipt" => Code::Ok,
            other => anyhow::bail!("unexpected {other}"),
        };
        assert_eq!(*code, expected, "merchant {rpc}");
    }
    let mut grpc_customer = stack.orders_as(Role::Customer, "alice");
    let attention = grpc_customer
        .list_orders(pb::ListOrdersRequest {
            needs_attention: true,
            ..Default::default()
        })
        .await;
    assert_eq!(
        attention.err().map(|s| s.code()),
        Some(Code::PermissionDenied)
    );

    // Nothing written by the refused calls: the merchant's product and
    // receipt (allowed) are the only change to the catalog.
    let after = written(&stack).await?;
    assert_eq!(after.orders, before.orders);
    assert_eq!(after.sagas, before.sagas);
    let mug = |w: &Written| w.products.iter().find(|p| p.0 == "MUG-1").cloned();
    assert_eq!(
        mug(&after).map(|(_, on_hand, ratings)| (on_hand, ratings)),
        mug(&before).map(|(_, on_hand, ratings)| (on_hand + 5, ratings)),
        "only the merchant's receipt of 5 moved stock; no rating"
    );
    assert!(after.products.iter().any(|p| p.0 == "NEW-2"));
    one_saga_later(&stack, &before).await?;
    Ok(())
}

/// Placed by alice (a customer token) on a checkout stack: the order waits
/// for the buyer's approval, so its saga runs and can still be cancelled.
#[tokio::test]
async fn a_customer_sees_and_cancels_only_its_own_orders() -> anyhow::Result<()> {
    let timing = CheckoutTiming {
        deadline_secs: 600,
        poll_secs: 30,
    };
    let stack = Stack::builder().checkout(timing).start().await?;
    stack.product("MUG-1", 1_000, 10).await?;
    let alice = token(Role::Customer, "alice");
    let bob = token(Role::Customer, "bob");

    // Alice orders for herself without naming herself.
    let mut order = http_routes("-", "alice")[0]
        .2
        .clone()
        .context("order body")?;
    if let Some(o) = order.as_object_mut() {
        o.remove("customer_id");
    }
    let (status, placed, _) = http(
        &stack,
        Method::POST,
        "/v1/orders",
        Some(&alice),
        Some(order),
    )
    .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{placed}");
    let order_id = placed["order_id"].as_str().context("order_id")?.to_string();
    let stored = eventually("alice's order stored", ORDER_TIMEOUT, || async {
        let id = order_id.parse()?;
        Ok(stack.store.orders().get(&id).await?)
    })
    .await?;
    assert_eq!(stored.summary.customer_id.as_str(), "alice");

    // Bob: not found, over HTTP and gRPC, reading and cancelling.
    let path = format!("/v1/orders/{order_id}");
    let (status, body, _) = http(&stack, Method::GET, &path, Some(&bob), None).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    let cancel = format!("/v1/orders/{order_id}/cancel");
    let (status, body, _) = http(&stack, Method::POST, &cancel, Some(&bob), None).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let mut bob_grpc = stack.orders_with(&bob);
    let got = bob_grpc
        .get_order(pb::GetOrderRequest {
            order_id: order_id.clone(),
        })
        .await;
    assert_eq!(got.err().map(|s| s.code()), Some(Code::NotFound));
    let cancelled = bob_grpc
        .cancel_order(pb::CancelOrderRequest {
            order_id: order_id.clone(),
            reason: "not mine".into(),
        })
        .await;
    assert_eq!(cancelled.err().map(|s| s.code()), Some(Code::NotFound));
    // Bob's list holds none of Alice's orders.
    let listed = bob_grpc
        .list_orders(pb::ListOrdersRequest::default())
        .await?
        .into_inner();
    assert!(listed.orders.is_empty(), "{listed:?}");
    // ... and rating with Alice's purchase as Alice is refused.
    let (status, body, _) = http(
        &stack,
        Method::POST,
        "/v1/products/MUG-1/ratings",
        Some(&bob),
        Some(json!({"customer_id": "alice", "stars": 1})),
    )
    .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // No cancel reached the saga: its history holds no update.
    let history = stack
        .client
        .get_workflow_handle::<temporalio_client::UntypedWorkflow>(format!("order-{order_id}"))
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .to_json()
        .await?;
    let history: Value = serde_json::from_slice(&history)?;
    let updates = history["events"]
        .as_array()
        .context("events")?
        .iter()
        .filter(|e| {
            e["attributes"]
                .get("WorkflowExecutionUpdateAcceptedEventAttributes")
                .is_some()
        })
        .count();
    assert_eq!(updates, 1, "only the payment-link update of the start");
    let rated = stack
        .store
        .catalog()
        .get(&Sku::parse("MUG-1")?)
        .await?
        .context("mug")?;
    assert_eq!(rated.rating_count, 0);

    // Alice reads it and lists it; a merchant reads every order.
    let (status, body, _) = http(&stack, Method::GET, &path, Some(&alice), None).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut alice_grpc = stack.orders_with(&alice);
    let mine = alice_grpc
        .list_orders(pb::ListOrdersRequest::default())
        .await?
        .into_inner();
    assert_eq!(mine.orders.len(), 1);
    let (status, _, _) = http(
        &stack,
        Method::GET,
        &path,
        Some(&token(Role::Merchant, "mia")),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    // Alice may cancel her own.
    let (status, body, _) = http(&stack, Method::POST, &cancel, Some(&alice), None).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    Ok(())
}

#[tokio::test]
async fn place_order_is_rate_limited_per_customer() -> anyhow::Result<()> {
    let stack = Stack::builder()
        .without_worker()
        .rate(RateSettings {
            per_minute: 1,
            burst: 2,
        })
        .start()
        .await?;
    stack.product("MUG-1", 1_000, 10).await?;
    let before = written(&stack).await?;
    let alice = token(Role::Customer, "alice");
    let order = || http_routes("-", "alice")[0].2.clone();
    let (status, _, _) = http(&stack, Method::POST, "/v1/orders", Some(&alice), order()).await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut grpc = stack.orders_with(&alice);
    grpc.place_order(place_request("alice", &[("MUG-1", 1)], ""))
        .await?;
    let (status, body, _) = http(&stack, Method::POST, "/v1/orders", Some(&alice), order()).await?;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "RESOURCE_EXHAUSTED");
    let refused = grpc
        .place_order(place_request("alice", &[("MUG-1", 1)], ""))
        .await;
    assert_eq!(
        refused.err().map(|s| s.code()),
        Some(Code::ResourceExhausted)
    );
    // Another customer has an allowance of its own.
    stack
        .orders_as(Role::Customer, "bob")
        .place_order(place_request("bob", &[("MUG-1", 1)], ""))
        .await?;
    let seen = eventually("three sagas visible", ORDER_TIMEOUT, || async {
        let n = written(&stack).await?.sagas;
        Ok((n >= before.sagas + 3).then_some(n))
    })
    .await?;
    assert_eq!(seen, before.sagas + 3, "the refused orders started nothing");
    Ok(())
}

#[tokio::test]
async fn the_api_serves_grpc_and_http_over_tls() -> anyhow::Result<()> {
    let key = rcgen::KeyPair::generate()?;
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
    let cert = params.self_signed(&key)?;
    let dir = tempfile::tempdir()?;
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem())?;
    std::fs::write(&key_path, key.serialize_pem())?;
    let stack = Stack::builder()
        .without_worker()
        .tls(TlsSettings {
            cert: cert_path,
            key: key_path,
        })
        .start()
        .await?;
    stack.product("MUG-1", 1_000, 10).await?;
    let port = |base: &str| base.rsplit(':').next().unwrap_or_default().to_string();

    // HTTPS, trusting the test certificate.
    let https = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes())?)
        .resolve(
            "localhost",
            format!("127.0.0.1:{}", port(&stack.http_base)).parse()?,
        )
        .build()?;
    let url = format!("https://localhost:{}/v1/products", port(&stack.http_base));
    let response = https.get(&url).bearer_auth(operator_token()).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await?;
    assert_eq!(body["products"][0]["sku"], "MUG-1");
    let response = https.get(&url).send().await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Plain HTTP to the TLS port gets no answer from the API.
    let plain = format!("http://127.0.0.1:{}/v1/products", port(&stack.http_base));
    let answered = reqwest::Client::new()
        .get(&plain)
        .bearer_auth(operator_token())
        .send()
        .await
        .map(|r| r.status());
    assert!(
        answered.map_or(true, |s| s != StatusCode::OK),
        "plain text must not be served"
    );

    // gRPC over TLS.
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(cert.pem()))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://{}", stack.grpc_addr()))?
        .tls_config(tls)?
        .connect()
        .await?;
    let mut catalog =
        CatalogServiceClient::with_interceptor(channel, Bearer::new(&operator_token()));
    let products = catalog
        .list_products(pb::ListProductsRequest::default())
        .await?
        .into_inner();
    assert_eq!(products.products.len(), 1);
    Ok(())
}
