//! Requests and money validated at the door: an idempotency key names one
//! request and nothing else, whether or not a worker has stored the order;
//! and what the door is configured with (secrets) never leaves through the
//! logs or the errors.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, ensure};
use ordersaga_activities::gateway::webhook;
use ordersaga_domain::CheckoutTiming;
use ordersaga_proto::v1 as pb;
use ordersaga_runtime::auth::Role;
use ordersaga_tests::auth::{TEST_AUTH_SECRET, token};
use ordersaga_tests::{ORDER_TIMEOUT, Stack, TestDatabase, place_request};
use ordersaga_worker::WorkerSettings;
use serde_json::json;
use tonic::Code;

/// `PlaceOrder` once; the total's minor units, or the error code.
async fn place(stack: &Stack, req: pb::PlaceOrderRequest) -> Result<(String, i64), Code> {
    let mut grpc = stack.grpc.clone();
    match grpc.place_order(req).await {
        Ok(res) => {
            let res = res.into_inner();
            Ok((res.order_id, res.total.map_or(-1, |t| t.minor_units)))
        }
        Err(status) => Err(status.code()),
    }
}

/// 20 racing calls with one key, half with other quantities, no worker:
/// one kind wins with its own total, the other kind is refused; every
/// other field changed is refused too; after the saga stored the order the
/// answers are the same.
async fn reused_key_is_refused_every_time(db: TestDatabase) -> anyhow::Result<()> {
    let mut stack = Stack::builder()
        .database(db)
        .without_worker()
        .start()
        .await?;
    let mug = stack.product("MUG-1", 1_000, 100).await?;
    let one = place_request("erin", &[("MUG-1", 1)], "k-race");
    let two = place_request("erin", &[("MUG-1", 2)], "k-race");

    let calls = (0..20).map(|n| {
        let req = if n % 2 == 0 { one.clone() } else { two.clone() };
        let stack = &stack;
        async move { (req.lines[0].quantity, place(stack, req).await) }
    });
    let answers = futures::future::join_all(calls).await;
    let winners: BTreeSet<i64> = answers
        .iter()
        .filter(|(_, a)| a.is_ok())
        .map(|(q, _)| *q)
        .collect();
    assert_eq!(winners.len(), 1, "one kind of request wins: {answers:?}");
    let winner_qty = *winners.first().context("a winner")?;
    let mut order_ids = BTreeSet::new();
    for (qty, answer) in &answers {
        match answer {
            Ok((order_id, total)) => {
                assert_eq!(*total, 1_000 * winner_qty, "the first request's total");
                order_ids.insert(order_id.clone());
            }
            Err(code) => {
                assert_ne!(*qty, winner_qty, "a replay of the winner is answered");
                assert_eq!(*code, Code::FailedPrecondition, "{answers:?}");
            }
        }
    }
    assert_eq!(order_ids.len(), 1, "one order");
    let order_id = order_ids.first().context("an order")?.clone();
    let (same, loser) = if winner_qty == 1 {
        (one, two)
    } else {
        (two, one)
    };

    // Any other field is another request.
    let mut email = same.clone();
    email.customer_email = "someone-else@example.com".into();
    let mut address = same.clone();
    if let Some(a) = address.shipping_address.as_mut() {
        a.line1 = "2 Other Street".into();
    }
    for (req, what) in [(&loser, "lines"), (&email, "email"), (&address, "address")] {
        assert_eq!(
            place(&stack, req.clone()).await,
            Err(Code::FailedPrecondition),
            "{what} changed, no worker"
        );
    }
    assert_eq!(
        place(&stack, same.clone()).await,
        Ok((order_id.clone(), 1_000 * winner_qty))
    );

    // Over HTTP: the documented 409 and JSON shape.
    let res = stack
        .http
        .post(format!("{}/v1/orders", stack.http_base))
        .header("Idempotency-Key", "k-race")
        .json(&serde_json::json!({
            "customer_id": "erin", "customer_email": "erin@example.com",
            "shipping_address": {"name": "Test Customer", "line1": "1 Test Street",
                "city": "Berlin", "postal_code": "10115", "country": "DE"},
            "lines": [{"sku": "MUG-1", "quantity": 3}]}))
        .send()
        .await?;
    assert_eq!(res.status(), 409);
    let body: serde_json::Value = res.json().await?;
    assert_eq!(body["error"]["code"], "FAILED_PRECONDITION");

    // Once a worker has run the saga, the same holds.
    stack.start_worker(WorkerSettings::default())?;
    let order = stack.terminal_order(&order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    assert_eq!(stack.on_hand(&mug).await?, 100 - winner_qty);
    for req in [&loser, &email, &address] {
        assert_eq!(
            place(&stack, req.clone()).await,
            Err(Code::FailedPrecondition)
        );
    }
    assert_eq!(
        place(&stack, same).await,
        Ok((order_id, 1_000 * winner_qty))
    );
    stack.stop_workers()
}

#[tokio::test]
async fn reused_key_is_refused_every_time_sqlite() -> anyhow::Result<()> {
    reused_key_is_refused_every_time(TestDatabase::sqlite()?).await
}

#[tokio::test]
async fn reused_key_is_refused_every_time_postgres() -> anyhow::Result<()> {
    reused_key_is_refused_every_time(TestDatabase::postgres().await?).await
}

/// Log levels of the processes whose logs are searched: debug for our
/// crates' and the SDK's own lines, info for the transport crates (their
/// debug lines are frame dumps).
const SEARCHED_LOG_LEVELS: &str = "debug,h2=info,hyper=info,hyper_util=info,tower=info,\
     tonic=info,rustls=info,reqwest=info,tokio_util=info";

/// One end-to-end checkout order through the real API and worker binaries,
/// configured with a secret of every kind (database password, webhook
/// secret, SMTP password, PayPal client secret), plus a worker refused for
/// an unsupported database URL: none of the secrets is in their output.
#[tokio::test]
async fn secrets_never_reach_the_logs() -> anyhow::Result<()> {
    const DB_PASSWORD: &str = "db-pass-5Qx81";
    const WEBHOOK_SECRET: &str = "whsec-Zr7c0q";
    const SMTP_PASSWORD: &str = "smtp-pass-Lm29w";
    // The sandbox accepts only its own client secret.
    const PAYPAL_SECRET: &str = "sandbox-secret";
    let timing = CheckoutTiming {
        deadline_secs: 600,
        poll_secs: 2,
    };
    let db = TestDatabase::postgres().await?;
    // The test server trusts local connections: any password is accepted,
    // and the URL carries one as a production URL would.
    let with_password = db.url().replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{DB_PASSWORD}@"),
        1,
    );
    ensure!(with_password.contains(DB_PASSWORD), "{}", db.url());
    let mut stack = Stack::builder()
        .database(db)
        .checkout(timing)
        .without_worker()
        .start()
        .await?;
    stack.database_url = with_password;
    stack.start_smtp(Duration::ZERO).await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let logs = tempfile::tempdir()?;
    let api_log = logs.path().join("api.log");
    let worker_log = logs.path().join("worker.log");
    let refused_log = logs.path().join("refused-worker.log");

    let sandbox_url = stack.sandbox()?.paypal_settings().base_url;
    let mut worker = stack.spawn_worker_process_logging_to(
        &[
            ("RUST_LOG", SEARCHED_LOG_LEVELS),
            ("ORDERSAGA_SMTP_USERNAME", "shop"),
            ("ORDERSAGA_SMTP_PASSWORD", SMTP_PASSWORD),
            ("ORDERSAGA_PAYPAL_BASE_URL", &sandbox_url),
            ("ORDERSAGA_PAYPAL_CLIENT_ID", "sandbox-client"),
            ("ORDERSAGA_PAYPAL_CLIENT_SECRET", PAYPAL_SECRET),
        ],
        &worker_log,
    )?;
    let (mut api, api_base) = stack
        .spawn_api_process(
            &[
                ("RUST_LOG", SEARCHED_LOG_LEVELS),
                ("ORDERSAGA_PAYMENT_MODE", "checkout"),
                ("ORDERSAGA_PAYMENT_POLL_SECS", "2"),
                ("ORDERSAGA_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ],
            &api_log,
        )
        .await?;

    // An order through the API process, approved by the buyer, paid
    // through the PayPal adapter with the client secret.
    let bearer = token(Role::Customer, "gina");
    let placed: serde_json::Value = stack
        .http
        .post(format!("{api_base}/v1/orders"))
        .bearer_auth(&bearer)
        .json(&json!({
            "customer_id": "gina", "customer_email": "gina@example.com",
            "shipping_address": {"name": "Gina", "line1": "1 Test Street",
                "city": "Berlin", "postal_code": "10115", "country": "DE"},
            "lines": [{"sku": "MUG-1", "quantity": 2}]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let order_id = placed["order_id"].as_str().context("order id")?.to_string();
    let approval_url = placed["approval_url"]
        .as_str()
        .context("approval link")?
        .to_string();
    stack.sandbox()?.approve(&approval_url).await?;
    let order = stack.terminal_order(&order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);

    // A forged webhook: the API process checks it against its secret.
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let forged = stack
        .http
        .post(format!("{api_base}/v1/payments/webhook"))
        .header(webhook::TIMESTAMP_HEADER, now_secs.to_string())
        .header(webhook::SIGNATURE_HEADER, "v1=00")
        .body("{}")
        .send()
        .await?;
    assert_eq!(forged.status(), 401);

    // A worker told to use a database it does not support fails at once.
    let mut refused = stack.spawn_worker_process_logging_to(
        &[(
            "ORDERSAGA_DATABASE_URL",
            &format!("mysql://shop:{DB_PASSWORD}@db.internal:3306/shop"),
        )],
        &refused_log,
    )?;
    let status = tokio::time::timeout(ORDER_TIMEOUT, refused.wait()).await??;
    assert!(!status.success(), "an unsupported database is refused");

    for child in [&mut worker, &mut api] {
        child.start_kill()?;
        child.wait().await?;
    }
    let read = |path: &std::path::Path| std::fs::read_to_string(path);
    let (api_out, worker_out, refused_out) =
        (read(&api_log)?, read(&worker_log)?, read(&refused_log)?);
    for (secret, what) in [
        (DB_PASSWORD, "database password"),
        (WEBHOOK_SECRET, "webhook secret"),
        (SMTP_PASSWORD, "SMTP password"),
        (PAYPAL_SECRET, "PayPal client secret"),
        (TEST_AUTH_SECRET, "token secret"),
        (bearer.as_str(), "bearer token"),
    ] {
        for (out, who) in [
            (&api_out, "API"),
            (&worker_out, "worker"),
            (&refused_out, "refused worker"),
        ] {
            assert!(!out.contains(secret), "the {what} is in the {who} log");
        }
    }
    assert!(
        api_out.contains("API listening"),
        "the API logged: {api_out}"
    );
    assert!(
        worker_out.contains(&order_id),
        "the worker logged the order: {worker_out}"
    );
    assert!(
        refused_out.contains("\"mysql\""),
        "the refusal names the scheme: {refused_out}"
    );
    Ok(())
}

/// A total the payment gateway would refuse is refused at the door (400),
/// before anything is stored or started.
#[tokio::test]
async fn a_total_over_the_gateway_limit_is_refused_at_the_door() -> anyhow::Result<()> {
    let stack = Stack::builder().without_worker().start().await?;
    let max_cents = i64::try_from(ordersaga_domain::GATEWAY_MAX_MAJOR_UNITS)? * 100;
    stack.product("YACHT-1", max_cents, 10).await?;
    let ok = place(&stack, place_request("hal", &[("YACHT-1", 1)], "")).await;
    assert!(ok.is_ok(), "the limit itself is accepted: {ok:?}");
    let over = place(&stack, place_request("ivy", &[("YACHT-1", 2)], "k-1")).await;
    assert_eq!(over, Err(Code::InvalidArgument));
    let listed = stack
        .grpc
        .clone()
        .list_orders(pb::ListOrdersRequest {
            customer_id: "ivy".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(listed.orders.is_empty(), "nothing stored");
    // Nothing claimed the key either: a valid request may still use it.
    let fine = place(&stack, place_request("ivy", &[("YACHT-1", 1)], "k-1")).await;
    assert!(fine.is_ok(), "{fine:?}");
    Ok(())
}

/// Sends message bytes as they are: the encoder writes them unchanged and
/// the decoder keeps whatever comes back.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let remaining = bytes::Buf::remaining(buf);
        Ok(Some(bytes::Buf::copy_to_bytes(buf, remaining).to_vec()))
    }
}

/// A message that does not decode — a string field that is not UTF-8,
/// bytes cut short, garbage — is the caller's mistake on both services:
/// `INVALID_ARGUMENT` (tonic's prost codec says `INTERNAL`), and nothing is
/// written.
#[tokio::test]
async fn undecodable_grpc_messages_are_invalid_argument() -> anyhow::Result<()> {
    let stack = Stack::builder().without_worker().start().await?;
    let channel = tonic::transport::Channel::from_shared(stack.grpc_endpoint())?
        .connect()
        .await?;
    let bearer: tonic::metadata::MetadataValue<_> =
        format!("Bearer {}", token(Role::Operator, "ops")).parse()?;
    let messages: [(&str, Vec<u8>); 3] = [
        // Field 1 (customer_id, sku: strings), two bytes that are not UTF-8.
        ("a string that is not UTF-8", vec![0x0a, 0x02, 0xff, 0xfe]),
        // Field 1 announces five bytes, one follows.
        ("a truncated message", vec![0x0a, 0x05, b'a']),
        ("garbage", vec![0xff; 12]),
    ];
    for method in [
        "/ordersaga.v1.OrderService/PlaceOrder",
        "/ordersaga.v1.CatalogService/CreateProduct",
    ] {
        for (what, message) in &messages {
            let mut grpc = tonic::client::Grpc::new(channel.clone());
            grpc.ready().await?;
            let mut request = tonic::Request::new(message.clone());
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
            let answer = grpc.unary(request, path, RawCodec).await;
            let status = answer.err().context("an undecodable message is refused")?;
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{method}, {what}: {status:?}"
            );
        }
    }
    let products = stack
        .catalog()
        .list_products(pb::ListProductsRequest {})
        .await?
        .into_inner();
    assert!(products.products.is_empty(), "nothing created");
    let orders = stack
        .grpc
        .clone()
        .list_orders(pb::ListOrdersRequest::default())
        .await?
        .into_inner();
    assert!(orders.orders.is_empty(), "nothing placed");
    Ok(())
}
