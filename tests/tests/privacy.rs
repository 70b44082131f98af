//! Customers' personal data (email, name, postal address) stays in the
//! shop database: what Temporal stores of an order is encrypted
//! (`runtime::codec`), and only the codec server, for operators, shows it
//! in clear. Read here as an outsider would: the raw history through the
//! `temporal` CLI without a codec, the codec server over HTTP, the Temporal
//! UI in headless Chromium, and the processes' logs.

use ordersaga_proto::v1 as pb;
use ordersaga_tests::{Stack, place_request};

/// A customer whose every personal detail is unmistakable in any text.
const EMAIL: &str = "quirina.privacy@example.com";
const NAME: &str = "Quirina Vasquez-Oyelaran";
const LINE1: &str = "17 Zwiebelgasse";
const CITY: &str = "Quedlinburg";
const POSTAL_CODE: &str = "06484";

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
