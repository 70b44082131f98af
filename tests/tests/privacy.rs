//! Customers' personal data (email, name, postal address) stays in the
//! shop database: what Temporal stores of an order is encrypted
//! (`runtime::codec`), and only the codec server, for operators, shows it
//! in clear. Read here as an outsider would: the raw history through the
//! `temporal` CLI without a codec, the codec server over HTTP, the Temporal
//! UI in headless Chromium, and the processes' logs.

use std::time::Duration;

use anyhow::Context;
use ordersaga_proto::v1 as pb;
use ordersaga_runtime::Secret;
use ordersaga_runtime::auth::{AuthSettings, Claims, Role};
use ordersaga_tests::auth::TEST_AUTH_SECRET;
use ordersaga_tests::browser::{Browser, WAIT_TIMEOUT};
use ordersaga_tests::{
    DevServer, ORDER_TIMEOUT, Stack, TEST_CODEC_KEYS, eventually, free_port, place_request,
};
use serde_json::{Value, json};
use temporalio_client::{UntypedWorkflow, WorkflowDescribeOptions};

/// A customer whose every personal detail is unmistakable in any text.
const EMAIL: &str = "quirina.privacy@example.com";
const NAME: &str = "Quirina Vasquez-Oyelaran";
const LINE1: &str = "17 Zwiebelgasse";
const CITY: &str = "Quedlinburg";
/// With a space and letters: a digits-only code turns up by chance in
/// event times and task ids, and base64 never holds a space.
const POSTAL_CODE: &str = "QZ 0648-X";

/// What must never appear outside the shop database and encrypted payloads.
const PERSONAL: [&str; 5] = [EMAIL, NAME, LINE1, CITY, POSTAL_CODE];

/// `binary/encrypted`, as proto3 JSON writes a metadata value (base64).
const ENCRYPTED_B64: &str = "YmluYXJ5L2VuY3J5cHRlZA==";

/// A `PlaceOrder` of that customer.
fn private_request(customer: &str, lines: &[(&str, i64)]) -> pb::PlaceOrderRequest {
    let mut request = place_request(customer, lines, "");
    request.customer_email = EMAIL.to_string();
    request.shipping_address = Some(pb::ShippingAddress {
        name: NAME.into(),
        line1: LINE1.into(),
        line2: String::new(),
        city: CITY.into(),
        postal_code: POSTAL_CODE.into(),
        country: "DE".into(),
    });
    request
}

/// A token the test stack's API accepts.
fn token(role: Role, subject: &str) -> anyhow::Result<String> {
    let settings = AuthSettings::hs256(Secret::new(TEST_AUTH_SECRET));
    Ok(
        Claims::new(&settings, subject, role, Duration::from_secs(3600))
            .sign_hs256(&Secret::new(TEST_AUTH_SECRET))?,
    )
}

fn assert_no_personal_data(text: &str, what: &str) {
    for personal in PERSONAL {
        assert!(
            !text.contains(personal),
            "{what} shows {personal:?}:\n{text}"
        );
    }
}

/// The raw history and description of a confirmed and of a declined order,
/// as `temporal workflow show/describe` print them without a codec: no
/// email, name or address anywhere, the input encrypted. Records both
/// histories (`ORDERSAGA_RECORD_HISTORIES=1`) for the replay test.
#[tokio::test]
async fn temporal_holds_no_personal_data_in_clear() -> anyhow::Result<()> {
    let stack = Stack::builder().start().await?;
    stack.product("MUG-P", 1_250, 10).await?;
    // 2500.00 EUR: in the simulated gateway's declined range.
    stack.product("GOLD-P", 250_000, 10).await?;
    let mut grpc = stack.grpc.clone();
    let confirmed = grpc
        .place_order(private_request("quirina", &[("MUG-P", 2)]))
        .await?
        .into_inner();
    let declined = grpc
        .place_order(private_request("quirina", &[("GOLD-P", 1)]))
        .await?
        .into_inner();
    let order = stack.terminal_order(&confirmed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    let order = stack.terminal_order(&declined.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Failed as i32);

    for placed in [&confirmed, &declined] {
        let id = placed.workflow_id.as_str();
        let history = stack
            .temporal_cli(&["workflow", "show", "-w", id, "--output", "json"])
            .await?;
        assert_no_personal_data(&history, "the raw history");
        assert!(
            history.contains(ENCRYPTED_B64),
            "the payloads are encrypted: {history}"
        );
        let description = stack
            .temporal_cli(&["workflow", "describe", "-w", id, "--output", "json"])
            .await?;
        assert_no_personal_data(&description, "the description");
        assert!(
            description.contains(&placed.order_id),
            "described: {description}"
        );
    }
    // The failure's message travels encoded too (encoded attributes).
    let failed = stack
        .temporal_cli(&[
            "workflow",
            "show",
            "-w",
            &declined.workflow_id,
            "--output",
            "json",
        ])
        .await?;
    assert!(failed.contains("Encoded failure"), "{failed}");

    stack
        .replay_check(&confirmed.workflow_id, "encrypted-confirmed")
        .await?;
    stack
        .replay_check(&declined.workflow_id, "encrypted-payment-declined")
        .await
}

/// The order's workflow input as Temporal stores it, in the codec
/// protocol's shape (`{"payloads": [...]}`), read with the CLI.
async fn stored_input(stack: &Stack, workflow_id: &str) -> anyhow::Result<Value> {
    let history: Value = serde_json::from_str(
        &stack
            .temporal_cli(&["workflow", "show", "-w", workflow_id, "--output", "json"])
            .await?,
    )?;
    let input = &history["events"][0]["workflowExecutionStartedEventAttributes"]["input"];
    anyhow::ensure!(input["payloads"].is_array(), "no input in {history}");
    Ok(input.clone())
}

/// The codec server decodes and encodes for an operator only: no token, a
/// forged one or a customer's or merchant's get 401; the Temporal CLI, given
/// the endpoint and an operator's token, shows the history decoded; the
/// UI's origin passes the CORS preflight.
#[tokio::test]
async fn the_codec_server_decodes_for_operators_only() -> anyhow::Result<()> {
    let stack = Stack::builder().start().await?;
    stack.product("MUG-C", 1_250, 10).await?;
    let placed = stack
        .grpc
        .clone()
        .place_order(private_request("quirina", &[("MUG-C", 1)]))
        .await?
        .into_inner();
    stack.terminal_order(&placed.order_id).await?;
    let input = stored_input(&stack, &placed.workflow_id).await?;
    assert_no_personal_data(&input.to_string(), "the stored input");

    let http = reqwest::Client::new();
    let decode = format!("{}/codec/decode", stack.http_base);
    let operator = token(Role::Operator, "ana")?;
    let forged = {
        let settings = AuthSettings::hs256(Secret::new("another-secret-of-at-least-32-bytes!!"));
        Claims::new(
            &settings,
            "mallory",
            Role::Operator,
            Duration::from_secs(60),
        )
        .sign_hs256(&Secret::new("another-secret-of-at-least-32-bytes!!"))?
    };
    for authorization in [
        None,
        Some(format!("Bearer {forged}")),
        Some(format!("Bearer {}", token(Role::Customer, "quirina")?)),
        Some(format!("Bearer {}", token(Role::Merchant, "shop")?)),
        Some(operator.clone()), // without `Bearer `
    ] {
        let mut request = http.post(&decode).json(&input);
        if let Some(a) = &authorization {
            request = request.header("authorization", a);
        }
        let answer = request.send().await?;
        assert_eq!(answer.status(), 401, "{authorization:?}");
        let body: Value = answer.json().await?;
        assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
        assert_no_personal_data(&body.to_string(), "a refusal");
    }

    // An operator gets the input in clear, by header or by endpoint path.
    for (url, authorization) in [
        (decode.clone(), Some(format!("Bearer {operator}"))),
        (
            format!("{}/codec/bearer/{operator}/decode", stack.http_base),
            None,
        ),
    ] {
        let mut request = http
            .post(&url)
            .header("x-namespace", &stack.namespace)
            .json(&input);
        if let Some(a) = &authorization {
            request = request.header("authorization", a);
        }
        let decoded: Value = request.send().await?.error_for_status()?.json().await?;
        let data = decoded["payloads"][0]["data"].as_str().context("data")?;
        let json = String::from_utf8(base64_decode(data)?)?;
        assert!(json.contains(EMAIL) && json.contains(LINE1), "{json}");
    }

    // Encode, then decode: the same payload back.
    let plain = json!({"payloads": [{"metadata": {"encoding": base64_encode(b"json/plain")},
                                     "data": base64_encode(b"\"hello\"")}]});
    let sealed: Value = http
        .post(format!("{}/codec/encode", stack.http_base))
        .bearer_auth(&operator)
        .json(&plain)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_ne!(sealed, plain);
    let opened: Value = http
        .post(&decode)
        .bearer_auth(&operator)
        .json(&sealed)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(opened, plain);

    // The Temporal CLI through the codec server: the history decoded.
    let decoded_history: Value = serde_json::from_str(
        &stack
            .temporal_cli(&[
                "workflow",
                "show",
                "-w",
                &placed.workflow_id,
                "--output",
                "json",
                "--codec-endpoint",
                &format!("{}/codec", stack.http_base),
                "--codec-auth",
                &format!("Bearer {operator}"),
            ])
            .await?,
    )?;
    let payload = &decoded_history["events"][0]["workflowExecutionStartedEventAttributes"]["input"]
        ["payloads"][0];
    let data = String::from_utf8(base64_decode(
        payload["data"].as_str().context("input data")?,
    )?)?;
    assert!(data.contains(EMAIL), "{payload}");

    // The browser's preflight from the Temporal UI.
    let preflight = http
        .request(reqwest::Method::OPTIONS, &decode)
        .header("origin", "http://127.0.0.1:8233")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-namespace",
        )
        .send()
        .await?;
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://127.0.0.1:8233"
    );
    Ok(())
}

fn base64_decode(text: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::STANDARD.decode(text)?)
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The Temporal UI (the dev server's, in headless Chromium) shows an
/// order's input decoded, the customer's email included, while its codec
/// endpoint answers, and only `binary/encrypted` payloads once it does not.
#[tokio::test]
async fn the_temporal_ui_shows_the_order_decoded_through_the_codec_server() -> anyhow::Result<()> {
    let api_addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let ui_port = free_port()?;
    // The dev server's UI has no sign-in: the token is in the endpoint.
    let endpoint = format!(
        "http://{api_addr}/codec/bearer/{}",
        token(Role::Operator, "ui")?
    );
    let server = DevServer::with_ui(ui_port, Some(&endpoint)).await?;
    let mut stack = Stack::builder()
        .server(server)
        .http_addr(api_addr)
        .codec_cors_origin(format!("http://127.0.0.1:{ui_port}"))
        .start()
        .await?;
    stack.product("MUG-U", 1_250, 10).await?;
    let placed = stack
        .grpc
        .clone()
        .place_order(private_request("quirina", &[("MUG-U", 1)]))
        .await?
        .into_inner();
    stack.terminal_order(&placed.order_id).await?;
    let run_id = stack
        .client
        .get_workflow_handle::<UntypedWorkflow>(placed.workflow_id.clone())
        .describe(WorkflowDescribeOptions::default())
        .await?
        .run_id()
        .to_string();
    let page = format!(
        "http://127.0.0.1:{ui_port}/namespaces/{}/workflows/{}/{run_id}/history",
        stack.namespace, placed.workflow_id
    );

    let browser = Browser::start().await?;
    browser.open(&page).await?;
    let shown = eventually("the decoded input in the UI", ORDER_TIMEOUT, || async {
        let text = browser.text("body").await.unwrap_or_default();
        Ok(text.contains(EMAIL).then_some(()))
    })
    .await;
    if let Err(e) = shown {
        let text = browser.text("body").await.unwrap_or_default();
        anyhow::bail!("{e}: the page ({page}) shows:\n{text}");
    }

    // Without a codec server to answer, the UI has only what Temporal stores.
    stack.stop_api();
    eventually("the API to stop", WAIT_TIMEOUT, || async {
        Ok(reqwest::get(format!("http://{api_addr}/healthz"))
            .await
            .is_err()
            .then_some(()))
    })
    .await?;
    browser.open(&page).await?;
    let text = eventually("the encrypted input in the UI", ORDER_TIMEOUT, || async {
        let text = browser.text("body").await.unwrap_or_default();
        let encrypted = text.contains("binary/encrypted") || text.contains(ENCRYPTED_B64);
        Ok(encrypted.then_some(text))
    })
    .await;
    let text = match text {
        Ok(text) => text,
        Err(e) => {
            let text = browser.text("body").await.unwrap_or_default();
            anyhow::bail!("{e}: the page shows:\n{text}");
        }
    };
    assert!(!text.contains(EMAIL), "{text}");
    browser.close().await?;
    Ok(())
}

/// The API's and the worker's logs (debug level) of orders confirmed and
/// declined and of codec server calls hold no email, name or address, no
/// token and no key.
#[tokio::test]
async fn logs_hold_no_personal_data_or_secrets() -> anyhow::Result<()> {
    const LOG_LEVELS: &str = "debug,h2=info,hyper=info,hyper_util=info,tower=info,\
                              sqlx=info,reqwest=info,rustls=info";
    let stack = Stack::builder().without_worker().start().await?;
    stack.product("MUG-L", 1_250, 10).await?;
    stack.product("GOLD-L", 250_000, 10).await?;
    let logs = tempfile::tempdir()?;
    let (api_log, worker_log) = (logs.path().join("api.log"), logs.path().join("worker.log"));
    let mut worker =
        stack.spawn_worker_process_logging_to(&[("RUST_LOG", LOG_LEVELS)], &worker_log)?;
    let (mut api, api_base) = stack
        .spawn_api_process(
            &[
                ("RUST_LOG", LOG_LEVELS),
                ("ORDERSAGA_AUTH_HS256_SECRET", TEST_AUTH_SECRET),
            ],
            &api_log,
        )
        .await?;
    let operator = token(Role::Operator, "ana")?;
    let customer = token(Role::Customer, "quirina")?;
    let http = reqwest::Client::new();
    let mut orders = Vec::new();
    for sku in ["MUG-L", "GOLD-L"] {
        let request = private_request("quirina", &[(sku, 1)]);
        let address = request.shipping_address.clone().context("address")?;
        let placed: Value = http
            .post(format!("{api_base}/v1/orders"))
            .bearer_auth(&customer)
            .json(&json!({
                "customer_id": "quirina", "customer_email": EMAIL,
                "shipping_address": {"name": address.name, "line1": address.line1,
                    "city": address.city, "postal_code": address.postal_code, "country": "DE"},
                "lines": [{"sku": sku, "quantity": 1}]}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        orders.push(placed);
    }
    for placed in &orders {
        let order_id = placed["order_id"].as_str().context("order id")?;
        stack.terminal_order(order_id).await?;
    }
    let workflow_id = orders[0]["workflow_id"].as_str().context("workflow id")?;
    let input = stored_input(&stack, workflow_id).await?;
    for url in [
        format!("{api_base}/codec/decode"),
        format!("{api_base}/codec/bearer/{operator}/decode"),
    ] {
        http.post(&url)
            .bearer_auth(&operator)
            .json(&input)
            .send()
            .await?
            .error_for_status()?;
    }
    let refused = http
        .post(format!("{api_base}/codec/decode"))
        .bearer_auth(&customer)
        .json(&input)
        .send()
        .await?;
    assert_eq!(refused.status(), 401);

    for child in [&mut worker, &mut api] {
        child.start_kill()?;
        tokio::time::timeout(ORDER_TIMEOUT, child.wait()).await??;
    }
    let key = TEST_CODEC_KEYS.split_once(':').context("key ring")?.1;
    for (path, who) in [(&api_log, "API"), (&worker_log, "worker")] {
        let log = std::fs::read_to_string(path)?;
        let order_id = orders[0]["order_id"].as_str().context("order id")?;
        assert!(log.contains(order_id), "the {who} logged the order: {log}");
        assert_no_personal_data(&log, &format!("the {who} log"));
        for (secret, what) in [
            (operator.as_str(), "operator token"),
            (customer.as_str(), "customer token"),
            (key, "payload key"),
            (TEST_AUTH_SECRET, "token secret"),
        ] {
            assert!(!log.contains(secret), "the {what} is in the {who} log");
        }
    }
    Ok(())
}
