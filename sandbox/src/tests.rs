//! HTTP tests of the router without sockets (`oneshot`).

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{App, Settings};

struct Sandbox {
    router: Router,
    app: App,
    token: String,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

async fn sandbox() -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        database_url: format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display()),
        ..Settings::default()
    };
    let app = App::new(settings, "http://sandbox.test".to_string())
        .await
        .unwrap();
    let router = app.router();
    let answer = send(
        &router,
        Request::post("/v1/oauth2/token")
            .header(
                header::AUTHORIZATION,
                basic("sandbox-client", "sandbox-secret"),
            )
            .body(Body::from("grant_type=client_credentials"))
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let token = answer.json()["access_token"].as_str().unwrap().to_string();
    Sandbox {
        router,
        app,
        token,
        _dir: dir,
    }
}

impl Sandbox {
    async fn api(
        &self,
        method: Method,
        uri: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = key {
            request = request.header("PayPal-Request-Id", key);
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        send(&self.router, request.body(body).unwrap()).await
    }

    async fn create(&self, key: &str, txn: &str) -> Answer {
        self.api(
            Method::POST,
            "/v2/checkout/orders",
            Some(key),
            Some(json!({
                "intent": "CAPTURE",
                "purchase_units": [{
                    "custom_id": txn,
                    "description": "2 mugs <b>",
                    "amount": {"currency_code": "EUR", "value": "12.34"},
                }],
                "application_context": {
                    "return_url": "http://shop.test/paid",
                    "cancel_url": "http://shop.test/cancelled",
                },
            })),
        )
        .await
    }

    async fn page_post(&self, uri: &str) -> Answer {
        send(
            &self.router,
            Request::post(uri).body(Body::empty()).unwrap(),
        )
        .await
    }

    async fn counts(&self, txn: &str) -> Value {
        let a = send(
            &self.router,
            Request::get(format!("/sandbox/transactions/{txn}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        a.json()
    }
}

#[tokio::test]
async fn oauth_needs_the_client_credentials_and_the_api_a_token() {
    let s = sandbox().await;
    let wrong = send(
        &s.router,
        Request::post("/v1/oauth2/token")
            .header(header::AUTHORIZATION, basic("sandbox-client", "guess"))
            .body(Body::from("grant_type=client_credentials"))
            .unwrap(),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json()["error"], "invalid_client");

    let anonymous = send(
        &s.router,
        Request::get("/v2/checkout/orders/X")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.json()["name"], "AUTHENTICATION_FAILURE");

    let missing = s
        .api(Method::GET, "/v2/checkout/orders/NOPE", None, None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["name"], "RESOURCE_NOT_FOUND");
}

#[tokio::test]
async fn approve_then_capture_once_with_paypal_shapes() {
    let s = sandbox().await;
    let first = s.create("txn-1-create", "txn-1").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    let order = first.json();
    let id = order["id"].as_str().unwrap().to_string();
    assert_eq!(order["status"], "CREATED");
    assert_eq!(order["purchase_units"][0]["amount"]["value"], "12.34");
    let approve = order["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"] == "approve")
        .unwrap()["href"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        approve,
        format!("http://sandbox.test/checkoutnow?token={id}")
    );

    // The same PayPal-Request-Id names the same order.
    let again = s.create("txn-1-create", "txn-1").await;
    assert_eq!(again.json()["id"], id.as_str());
    assert_eq!(s.counts("txn-1").await["orders"], 1);

    // Not approved yet: refused the PayPal way, and not cached.
    let early = s
        .api(
            Method::POST,
            &format!("/v2/checkout/orders/{id}/capture"),
            Some("txn-1-capture"),
            None,
        )
        .await;
    assert_eq!(early.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(early.json()["name"], "UNPROCESSABLE_ENTITY");
    assert_eq!(early.json()["details"][0]["issue"], "ORDER_NOT_APPROVED");

    // The approval page shows the amount, escapes input, and approves.
    let page = send(
        &s.router,
        Request::get(format!("/checkoutnow?token={id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let html = page.text();
    assert_eq!(page.status, StatusCode::OK);
    assert!(html.contains("12.34 EUR"), "{html}");
    assert!(html.contains("2 mugs &lt;b&gt;"), "{html}");
    assert!(html.contains(&format!("action=\"/checkoutnow/approve?token={id}\"")));
    let approved = s
        .page_post(&format!("/checkoutnow/approve?token={id}"))
        .await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER);
    let location = approved.headers[header::LOCATION].to_str().unwrap();
    assert!(
        location.starts_with(&format!("http://shop.test/paid?token={id}&PayerID=")),
        "{location}"
    );
    let got = s
        .api(
            Method::GET,
            &format!("/v2/checkout/orders/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(got.json()["status"], "APPROVED");
    assert_eq!(got.json()["payer"]["email_address"], "buyer@example.com");

    // Capture, replay under the same key, refuse under another.
    let capture_uri = format!("/v2/checkout/orders/{id}/capture");
    let captured = s
        .api(Method::POST, &capture_uri, Some("txn-1-capture"), None)
        .await;
    assert_eq!(captured.status, StatusCode::CREATED, "{}", captured.text());
    let body = captured.json();
    assert_eq!(body["status"], "COMPLETED");
    let capture = &body["purchase_units"][0]["payments"]["captures"][0];
    assert_eq!(capture["status"], "COMPLETED");
    assert_eq!(capture["custom_id"], "txn-1");
    let replayed = s
        .api(Method::POST, &capture_uri, Some("txn-1-capture"), None)
        .await;
    assert_eq!(replayed.status, StatusCode::CREATED);
    assert_eq!(replayed.json(), body);
    let other = s
        .api(Method::POST, &capture_uri, Some("another-key"), None)
        .await;
    assert_eq!(
        other.json()["details"][0]["issue"],
        "ORDER_ALREADY_CAPTURED"
    );

    // Refund once; a second key finds it fully refunded.
    let refund_uri = format!(
        "/v2/payments/captures/{}/refund",
        capture["id"].as_str().unwrap()
    );
    let refunded = s
        .api(
            Method::POST,
            &refund_uri,
            Some("txn-1-refund"),
            Some(json!({})),
        )
        .await;
    assert_eq!(refunded.status, StatusCode::CREATED, "{}", refunded.text());
    assert_eq!(refunded.json()["status"], "COMPLETED");
    let twice = s.api(Method::POST, &refund_uri, Some("other"), None).await;
    assert_eq!(
        twice.json()["details"][0]["issue"],
        "CAPTURE_FULLY_REFUNDED"
    );
    let got = s
        .api(
            Method::GET,
            &format!("/v2/checkout/orders/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(
        got.json()["purchase_units"][0]["payments"]["captures"][0]["status"],
        "REFUNDED"
    );

    let counts = s.counts("txn-1").await;
    assert_eq!(counts["captures"], 1);
    assert_eq!(counts["capture_requests"], 4);
    assert_eq!(counts["refunds"], 1);
    assert_eq!(counts["refund_requests"], 2);
}

#[tokio::test]
async fn cancel_voids_for_good() {
    let s = sandbox().await;
    let id = s.create("txn-2-create", "txn-2").await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let cancelled = s
        .page_post(&format!("/checkoutnow/cancel?token={id}"))
        .await;
    assert_eq!(cancelled.status, StatusCode::SEE_OTHER);
    assert_eq!(
        cancelled.headers[header::LOCATION],
        format!("http://shop.test/cancelled?token={id}").as_str()
    );
    // Approving afterwards changes nothing; the page says it is cancelled.
    let late = s
        .page_post(&format!("/checkoutnow/approve?token={id}"))
        .await;
    assert_eq!(late.status, StatusCode::OK);
    assert!(late.text().contains("data-status=\"VOIDED\""));
    let void = s
        .api(
            Method::POST,
            &format!("/v2/checkout/orders/{id}/void"),
            Some("txn-2-void"),
            None,
        )
        .await;
    assert_eq!(void.status, StatusCode::OK);
    assert_eq!(void.json()["status"], "VOIDED");
    let capture = s
        .api(
            Method::POST,
            &format!("/v2/checkout/orders/{id}/capture"),
            Some("k"),
            None,
        )
        .await;
    assert_eq!(capture.json()["details"][0]["issue"], "ORDER_EXPIRED");
    assert_eq!(s.counts("txn-2").await["captures"], 0);
}

#[tokio::test]
async fn injected_failures_and_bad_input_change_nothing() {
    let s = sandbox().await;
    s.app.with_controls(|c| c.fail_next = 1);
    let failed = s.create("txn-3-create", "txn-3").await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(failed.json()["name"], "INTERNAL_SERVER_ERROR");
    let missing = send(
        &s.router,
        Request::get("/sandbox/transactions/txn-3")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        s.create("txn-3-create", "txn-3").await.status,
        StatusCode::CREATED
    );

    let bad = s
        .api(
            Method::POST,
            "/v2/checkout/orders",
            None,
            Some(json!({"intent": "CAPTURE", "purchase_units": [
                {"amount": {"currency_code": "EUR", "value": "1.234"}}]})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["details"][0]["issue"], "DECIMAL_PRECISION");
    // Decimal places follow the currency: none for JPY, three for BHD.
    for (currency, value, ok) in [
        ("JPY", "1000", true),
        ("JPY", "10.00", false),
        ("BHD", "1.000", true),
        ("ABC", "1.00", false),
    ] {
        let answer = s
            .api(
                Method::POST,
                "/v2/checkout/orders",
                None,
                Some(json!({"intent": "CAPTURE", "purchase_units": [
                    {"amount": {"currency_code": currency, "value": value}}]})),
            )
            .await;
        assert_eq!(answer.status.is_success(), ok, "{currency} {value}");
    }

    let controls = send(
        &s.router,
        Request::post("/sandbox/controls")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"latency_ms": 1, "nonsense": true}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(controls.status, StatusCode::BAD_REQUEST);
    assert_eq!(s.app.controls().latency_ms, 0);
}

#[tokio::test]
async fn the_behavior_header_picks_the_simulated_buyer() {
    let s = sandbox().await;
    let body = json!({
        "intent": "CAPTURE",
        "purchase_units": [{"custom_id": "txn-4", "amount": {"currency_code": "EUR", "value": "5"}}],
    });
    let created = send(
        &s.router,
        Request::post("/v2/checkout/orders")
            .header(header::AUTHORIZATION, format!("Bearer {}", s.token))
            .header(header::CONTENT_TYPE, "application/json")
            .header(crate::api::BEHAVIOR_HEADER, "approve")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    // The shop gets CREATED; the simulated buyer approves right after.
    assert_eq!(created.json()["status"], "CREATED");
    let id = created.json()["id"].as_str().unwrap().to_string();
    let mut status = Value::Null;
    for _ in 0..200 {
        let got = s
            .api(
                Method::GET,
                &format!("/v2/checkout/orders/{id}"),
                None,
                None,
            )
            .await;
        status = got.json()["status"].clone();
        if status == "APPROVED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(status, "APPROVED");
}

#[tokio::test]
async fn partial_refunds_add_up_to_the_capture_at_most() {
    let s = sandbox().await;
    let id = s.create("txn-5-create", "txn-5").await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.page_post(&format!("/checkoutnow/approve?token={id}"))
        .await;
    let captured = s
        .api(
            Method::POST,
            &format!("/v2/checkout/orders/{id}/capture"),
            Some("txn-5-capture"),
            None,
        )
        .await;
    let capture_id = captured.json()["purchase_units"][0]["payments"]["captures"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let refund_uri = format!("/v2/payments/captures/{capture_id}/refund");
    let refund = |key: &'static str, value: &'static str, currency: &'static str| {
        let body = json!({"amount": {"value": value, "currency_code": currency}});
        s.api(Method::POST, &refund_uri, Some(key), Some(body))
    };
    let capture_status = || async {
        s.api(
            Method::GET,
            &format!("/v2/checkout/orders/{id}"),
            None,
            None,
        )
        .await
        .json()["purchase_units"][0]["payments"]["captures"][0]["status"]
            .clone()
    };

    // 12.34 captured: 2.50 back, replayed under its key, then 9.84 more.
    let first = refund("part-1", "2.50", "EUR").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert_eq!(first.json()["amount"]["value"], "2.50");
    assert_eq!(first.json()["status"], "COMPLETED");
    let replayed = refund("part-1", "2.50", "EUR").await;
    assert_eq!(
        replayed.json(),
        first.json(),
        "the same refund, not a second"
    );
    assert_eq!(capture_status().await, "PARTIALLY_REFUNDED");

    // Bad amounts: refused, nothing refunded.
    for (key, value, currency, status, issue) in [
        (
            "bad-1",
            "9.85",
            "EUR",
            StatusCode::UNPROCESSABLE_ENTITY,
            "REFUND_AMOUNT_EXCEEDED",
        ),
        (
            "bad-2",
            "1.00",
            "USD",
            StatusCode::UNPROCESSABLE_ENTITY,
            "REFUND_CURRENCY_MISMATCH",
        ),
        (
            "bad-3",
            "0.00",
            "EUR",
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "bad-4",
            "1.001",
            "EUR",
            StatusCode::BAD_REQUEST,
            "DECIMAL_PRECISION",
        ),
    ] {
        let refused = refund(key, value, currency).await;
        assert_eq!(refused.status, status, "{value} {currency}");
        assert_eq!(
            refused.json()["details"][0]["issue"],
            issue,
            "{value} {currency}"
        );
    }
    assert_eq!(capture_status().await, "PARTIALLY_REFUNDED");

    // No amount: what is left, 9.84; then nothing is left.
    let rest = s
        .api(Method::POST, &refund_uri, Some("rest"), Some(json!({})))
        .await;
    assert_eq!(rest.status, StatusCode::CREATED, "{}", rest.text());
    assert_eq!(rest.json()["amount"]["value"], "9.84");
    assert_eq!(capture_status().await, "REFUNDED");
    let more = refund("part-3", "0.01", "EUR").await;
    assert_eq!(more.json()["details"][0]["issue"], "CAPTURE_FULLY_REFUNDED");

    let counts = s.counts("txn-5").await;
    assert_eq!(counts["refunds"], 2, "2.50 and 9.84");
    assert_eq!(counts["refund_requests"], 8);
}
