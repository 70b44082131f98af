//! A real browser on the payment approval page: headless Chromium (through
//! chromedriver) opens the approval link of a real `PlaceOrder` (or of an
//! order created with the PayPal adapter) against the real
//! `ordersaga-payment-sandbox` binary and clicks a button, as a buyer would. Needs chromium and chromium-driver
//! (`scripts/test` installs them) and the built binaries.

use anyhow::Context;
use ordersaga_activities::gateway::checkout::{
    CheckoutGateway, CheckoutRequest, CheckoutStatus as OrderStatus,
};
use ordersaga_domain::{CheckoutTiming, Currency, Money, OrderId, TransactionId};
use ordersaga_proto::v1 as pb;
use ordersaga_tests::browser::{Browser, WAIT_TIMEOUT};
use ordersaga_tests::{Sandbox, Stack, eventually, place_request};

fn checkout(amount_cents: i64, return_url: Option<String>) -> anyhow::Result<CheckoutRequest> {
    Ok(CheckoutRequest {
        transaction_id: TransactionId::from_uuid(uuid::Uuid::new_v4()),
        amount: Money::new(amount_cents, Currency::parse("EUR")?),
        return_url,
        cancel_url: None,
        description: Some("Order of 2 mugs".to_string()),
        payer_email: None,
    })
}

#[tokio::test]
async fn approve_in_chromium_approves_the_order_and_returns_to_the_shop() -> anyhow::Result<()> {
    let sandbox = Sandbox::standalone().await?;
    let gateway = sandbox.gateway();
    // Any page that answers stands in for the shop's return page.
    let return_url = format!("{}/healthz", sandbox.base);
    let order = gateway
        .create_order(&checkout(1234, Some(return_url.clone()))?)
        .await?;
    assert_eq!(order.status, OrderStatus::Created);

    let browser = Browser::start().await?;
    browser.open(&order.approve_url).await?;
    browser.wait_for("#approve").await?;
    assert_eq!(browser.text("#amount").await?, "12.34 EUR");
    browser.click("#approve").await?;

    // The sandbox sends the buyer back with PayPal's query parameters.
    let back = eventually("the return page", WAIT_TIMEOUT, || async {
        let url = browser.current_url().await?;
        Ok(url.starts_with(&return_url).then_some(url))
    })
    .await?;
    assert!(
        back.contains(&format!("token={}", order.id.as_str())) && back.contains("PayerID="),
        "{back}"
    );
    assert_eq!(
        gateway.get_order(&order.id).await?.status,
        OrderStatus::Approved
    );
    browser.close().await?;
    Ok(())
}

#[tokio::test]
async fn cancel_in_chromium_voids_the_order() -> anyhow::Result<()> {
    let sandbox = Sandbox::standalone().await?;
    let gateway = sandbox.gateway();
    let order = gateway.create_order(&checkout(500, None)?).await?;

    let browser = Browser::start().await?;
    browser.open(&order.approve_url).await?;
    browser.click("#cancel").await?;
    // Without a cancel URL the sandbox shows the order's status page.
    browser.wait_for("#status").await?;
    assert_eq!(
        browser
            .attribute("#status", "data-status")
            .await?
            .as_deref(),
        Some("VOIDED")
    );
    assert_eq!(
        gateway.get_order(&order.id).await?.status,
        OrderStatus::Voided
    );
    browser.close().await?;
    Ok(())
}

/// Issue #3's acceptance: a real `PlaceOrder` in checkout mode answers the
/// approval link; Chromium opens it and clicks Approve; the sandbox's
/// signed webhook reaches the API, the saga captures once and the order
/// becomes CONFIRMED. The "order received" email carries the same link.
#[tokio::test]
async fn approving_in_chromium_confirms_a_real_order() -> anyhow::Result<()> {
    let stack = Stack::builder()
        .checkout(CheckoutTiming {
            deadline_secs: 600,
            // Only the webhook (or the buyer) moves the order within the test.
            poll_secs: 600,
        })
        .start()
        .await?;
    stack.product("MUG-1", 1_250, 10).await?;
    let placed = stack
        .grpc
        .clone()
        .place_order(place_request("chromium", &[("MUG-1", 2)], ""))
        .await?
        .into_inner();
    assert!(
        placed.approval_url.contains("/checkoutnow?token="),
        "{placed:?}"
    );

    let browser = Browser::start().await?;
    browser.open(&placed.approval_url).await?;
    browser.wait_for("#approve").await?;
    assert_eq!(browser.text("#amount").await?, "25.00 EUR");
    browser.click("#approve").await?;

    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32, "{order:?}");
    assert_eq!(order.payment_status, pb::PaymentStatus::Captured as i32);
    let transaction = TransactionId::for_order(&OrderId::parse(&placed.order_id)?);
    let counts = stack.sandbox()?.counts(&transaction.to_string()).await?;
    assert_eq!((counts.orders, counts.captures), (1, 1), "{counts:?}");
    browser.close().await?;

    let received = stack
        .mailbox_dir()
        .join(format!("order-received.{}.eml", placed.order_id));
    let eml = eventually("the order-received email", WAIT_TIMEOUT, || {
        let received = received.clone();
        async move { Ok(std::fs::read_to_string(&received).ok()) }
    })
    .await?;
    // Quoted-printable may fold long lines: compare without soft breaks.
    let eml = eml
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let token = placed
        .approval_url
        .rsplit("token=")
        .next()
        .context("token")?;
    assert!(eml.contains(&format!("checkoutnow?token={token}")), "{eml}");
    Ok(())
}
