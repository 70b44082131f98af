//! The shop and the console in a real browser: headless Chromium (through
//! chromedriver) signs in, browses, fills in forms and pays on the real
//! payments sandbox's approval page, against the real API, worker and
//! Temporal dev server, as a customer and a merchant would. The pages'
//! screenshots are written to `target/tmp/web-screenshots/` (the best of
//! them are in `docs/screenshots/`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ordersaga_api::web::WebSettings;
use ordersaga_api::web::users::WebUser;
use ordersaga_domain::{CheckoutTiming, OrderId, Sku};
use ordersaga_proto::v1 as pb;
use ordersaga_runtime::auth::Role;
use ordersaga_store::OrderQuery;
use ordersaga_tests::browser::{Browser, WAIT_TIMEOUT};
use ordersaga_tests::{ORDER_TIMEOUT, Stack, create_product, eventually, place_request};
use serde_json::json;

/// The gateway tells the saga by webhook; no polling in the way.
const WEBHOOKS_ONLY: CheckoutTiming = CheckoutTiming {
    deadline_secs: 600,
    poll_secs: 600,
};

/// Where the console links workflows (nothing needs to answer there).
const TEMPORAL_UI: &str = "http://temporal-ui.test:8233";

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots")
}

/// The users of these tests; each signs in with `pw-<username>`.
fn web_settings() -> anyhow::Result<WebSettings> {
    let user = |name: &str, role: Role, customer: Option<&str>| {
        WebUser::with_password(name, &format!("pw-{name}"), role, customer)
    };
    Ok(WebSettings {
        users: vec![
            user("alice", Role::Customer, Some("alice"))?,
            user("dave", Role::Customer, Some("dave"))?,
            user("mia", Role::Merchant, None)?,
            user("ana", Role::Operator, None)?,
        ],
        temporal_ui_url: TEMPORAL_UI.to_string(),
        ..WebSettings::default()
    })
}

async fn shop() -> anyhow::Result<Stack> {
    Stack::builder()
        .checkout(WEBHOOKS_ONLY)
        .web(web_settings()?)
        .start()
        .await
}

/// A browser with a desktop-sized window (for the screenshots).
async fn open_browser() -> anyhow::Result<Browser> {
    let browser = Browser::start().await?;
    browser.resize(1100, 1000).await?;
    Ok(browser)
}

/// Signs `user` in through the sign-in page.
async fn sign_in(browser: &Browser, stack: &Stack, user: &str) -> anyhow::Result<()> {
    browser.open(&format!("{}/login", stack.http_base)).await?;
    browser.type_into("#username", user).await?;
    browser
        .type_into("#password", &format!("pw-{user}"))
        .await?;
    browser.click("#sign-in").await?;
    browser.wait_for("#signed-in-as").await
}

/// Adds `quantity` of `sku` to the cart from its product page.
async fn add_to_cart(
    browser: &Browser,
    stack: &Stack,
    sku: &str,
    quantity: i64,
) -> anyhow::Result<()> {
    browser
        .open(&format!("{}/shop/products/{sku}", stack.http_base))
        .await?;
    browser
        .type_into("#quantity", &quantity.to_string())
        .await?;
    browser.click("#add-to-cart").await?;
    browser.wait_for("#cart-lines").await
}

/// Fills in the checkout form (an empty `line1` leaves the street out).
async fn fill_checkout(browser: &Browser, email: &str, line1: &str) -> anyhow::Result<()> {
    browser.type_into("#email", email).await?;
    browser.type_into("#name", "Alice Example").await?;
    browser.type_into("#line1", line1).await?;
    browser.type_into("#city", "Berlin").await?;
    browser.type_into("#postal_code", "10115").await?;
    browser.type_into("#country", "DE").await
}

/// Waits for the sandbox's approval page after "Place order and pay".
async fn on_approval_page(browser: &Browser, stack: &Stack) -> anyhow::Result<String> {
    let sandbox = stack.sandbox()?.base.clone();
    let url = eventually("the approval page", WAIT_TIMEOUT, || async {
        let url = browser.current_url().await?;
        Ok(url.starts_with(&sandbox).then_some(url))
    })
    .await?;
    browser.wait_for("#approve").await?;
    Ok(url)
}

/// The order page's id, once the browser is on it.
async fn on_order_page(browser: &Browser, stack: &Stack) -> anyhow::Result<OrderId> {
    let prefix = format!("{}/shop/orders/", stack.http_base);
    let url = eventually("the order page", WAIT_TIMEOUT, || async {
        let url = browser.current_url().await?;
        Ok(url.starts_with(&prefix).then_some(url))
    })
    .await?;
    let id = url[prefix.len()..]
        .split(['?', '/'])
        .next()
        .context("no order id")?;
    browser.wait_for("#order-status").await?;
    Ok(OrderId::parse(id)?)
}

/// Waits until the order page (without a reload) shows `status`.
async fn shows_status(browser: &Browser, status: &str) -> anyhow::Result<()> {
    eventually(
        &format!("the page to show {status}"),
        ORDER_TIMEOUT,
        || async {
            let shown = browser.attribute("#order-status", "data-status").await?;
            Ok((shown.as_deref() == Some(status)).then_some(()))
        },
    )
    .await
}

/// The orders `customer` has in the shop database.
async fn orders_of(stack: &Stack, customer: &str) -> anyhow::Result<usize> {
    let query = OrderQuery {
        customer_id: Some(ordersaga_domain::CustomerId::parse(customer)?),
        status: None,
        needs_attention: false,
        limit: 100,
        after: None,
    };
    Ok(stack.store.orders().list(&query).await?.0.len())
}

#[tokio::test]
async fn a_customer_buys_two_products_pays_and_watches_the_order_confirm() -> anyhow::Result<()> {
    let stack = shop().await?;
    create_product(&stack.store, "MUG-1", 1_250, 10, 0).await?;
    create_product(&stack.store, "TEE-1", 2_000, 10, 0).await?;
    let browser = open_browser().await?;
    // Not signed in: the shop sends the browser to sign in, then back.
    browser.open(&format!("{}/shop", stack.http_base)).await?;
    browser.wait_for("#sign-in").await?;
    browser.type_into("#username", "alice").await?;
    browser.type_into("#password", "pw-alice").await?;
    browser.click("#sign-in").await?;
    browser.wait_for(".products [data-sku=\"MUG-1\"]").await?;
    assert!(
        browser
            .text("[data-sku=\"MUG-1\"] .price")
            .await?
            .contains("12.50 EUR")
    );
    assert_eq!(
        browser.text("[data-sku=\"TEE-1\"] .stock").await?,
        "In stock"
    );
    browser
        .screenshot(&screenshots().join("catalog.png"))
        .await?;

    add_to_cart(&browser, &stack, "MUG-1", 2).await?;
    add_to_cart(&browser, &stack, "TEE-1", 1).await?;
    assert_eq!(browser.count("#cart-lines tbody tr").await?, 2);
    assert_eq!(browser.text("#cart-total").await?, "45.00 EUR");
    fill_checkout(&browser, "alice@example.com", "1 Main St").await?;
    browser.screenshot(&screenshots().join("cart.png")).await?;
    browser.click("#place-order").await?;

    on_approval_page(&browser, &stack).await?;
    assert_eq!(browser.text("#amount").await?, "45.00 EUR");
    browser.click("#approve").await?;
    let order_id = on_order_page(&browser, &stack).await?;
    // A mark a reload would wipe: the timeline must arrive without one.
    browser.execute("window.stillTheSamePage = true;").await?;
    shows_status(&browser, "CONFIRMED").await?;
    let events = eventually("the four events", WAIT_TIMEOUT, || async {
        let events = browser.texts("#timeline .event strong").await?;
        Ok((events.len() == 4).then_some(events))
    })
    .await?;
    assert_eq!(
        events,
        [
            "OrderPlaced",
            "PaymentProcessed",
            "InventoryProcessed",
            "OrderConfirmed"
        ]
    );
    assert_eq!(
        browser
            .execute("return window.stillTheSamePage === true;")
            .await?,
        json!(true),
        "the page was reloaded"
    );
    assert_eq!(
        browser
            .attribute("#payment-status", "data-status")
            .await?
            .as_deref(),
        Some("CAPTURED")
    );
    assert_eq!(
        browser.count("#cancel-order").await?,
        0,
        "no cancel once confirmed"
    );
    browser
        .screenshot(&screenshots().join("order-confirmed.png"))
        .await?;

    // My orders lists it; the database holds exactly one order.
    browser
        .open(&format!("{}/shop/orders", stack.http_base))
        .await?;
    browser
        .wait_for(&format!("#my-orders [data-order=\"{order_id}\"]"))
        .await?;
    assert_eq!(orders_of(&stack, "alice").await?, 1);

    // Rating what was received, from the order page.
    browser
        .open(&format!("{}/shop/orders/{order_id}", stack.http_base))
        .await?;
    browser.select("#stars-MUG-1", "4").await?;
    browser.click("#rate-MUG-1").await?;
    browser.wait_for("#rated-notice").await?;
    let mug = stack
        .store
        .catalog()
        .get(&Sku::parse("MUG-1")?)
        .await?
        .context("MUG-1")?;
    assert_eq!((mug.rating_count, mug.rating_sum), (1, 4));
    assert_eq!(mug.on_hand, 8);

    // On a phone's width the page still reads.
    browser.resize(390, 844).await?;
    browser
        .screenshot(&screenshots().join("order-phone.png"))
        .await?;
    browser.close().await
}

#[tokio::test]
async fn paid_but_out_of_stock_shows_failed_the_refund_and_the_reason() -> anyhow::Result<()> {
    let stack = shop().await?;
    create_product(&stack.store, "LAST-1", 4_999, 1, 0).await?;
    let browser = open_browser().await?;
    sign_in(&browser, &stack, "dave").await?;
    add_to_cart(&browser, &stack, "LAST-1", 2).await?;
    fill_checkout(&browser, "dave@example.com", "2 Side St").await?;
    browser.click("#place-order").await?;
    on_approval_page(&browser, &stack).await?;
    browser.click("#approve").await?;
    let order_id = on_order_page(&browser, &stack).await?;
    shows_status(&browser, "FAILED").await?;
    eventually("the refund on the page", WAIT_TIMEOUT, || async {
        let shown = browser.attribute("#payment-status", "data-status").await?;
        Ok((shown.as_deref() == Some("REFUNDED")).then_some(()))
    })
    .await?;
    browser.wait_for("#refunded").await?;
    let reason = browser.text("#failure-reason").await?;
    assert!(reason.contains("OUT_OF_STOCK"), "{reason}");
    let events = browser.texts("#timeline .event strong").await?;
    assert!(events.iter().any(|e| e == "PaymentRefunded"), "{events:?}");
    browser
        .screenshot(&screenshots().join("order-failed.png"))
        .await?;
    let order = stack.terminal_order(&order_id.to_string()).await?;
    assert_eq!(order.failure_code, "OUT_OF_STOCK");
    browser.close().await
}

#[tokio::test]
async fn a_customer_cancels_before_paying_and_after_the_capture() -> anyhow::Result<()> {
    let stack = shop().await?;
    create_product(&stack.store, "MUG-1", 1_250, 10, 0).await?;
    let sandbox = stack.sandbox()?;
    let browser = open_browser().await?;
    sign_in(&browser, &stack, "alice").await?;

    // Before paying: back from the approval page without approving.
    add_to_cart(&browser, &stack, "MUG-1", 1).await?;
    fill_checkout(&browser, "alice@example.com", "1 Main St").await?;
    browser.click("#place-order").await?;
    on_approval_page(&browser, &stack).await?;
    browser
        .open(&format!("{}/shop/orders", stack.http_base))
        .await?;
    browser.click("#my-orders tbody tr a").await?;
    let first = on_order_page(&browser, &stack).await?;
    browser.click("#cancel-order").await?;
    browser.wait_for("#cancel-notice").await?;
    shows_status(&browser, "FAILED").await?;
    assert!(browser.text("#failure-reason").await?.contains("CANCELLED"));
    let order = stack.terminal_order(&first.to_string()).await?;
    assert_eq!(order.failure_code, "CANCELLED");
    assert_eq!(order.payment_status, pb::PaymentStatus::Voided as i32);

    // After the capture: the capture's answer hangs, so the order is paid
    // but not yet confirmed while the buyer presses Cancel.
    sandbox
        .controls(json!({"lose_capture_answer_next": 1, "hang_ms": 8000}))
        .await?;
    add_to_cart(&browser, &stack, "MUG-1", 1).await?;
    fill_checkout(&browser, "alice@example.com", "1 Main St").await?;
    browser.click("#place-order").await?;
    on_approval_page(&browser, &stack).await?;
    browser.click("#approve").await?;
    let second = on_order_page(&browser, &stack).await?;
    let record = stack.store.orders().get(&second).await?.context("stored")?;
    eventually("the capture at the gateway", ORDER_TIMEOUT, || async {
        Ok((sandbox
            .counts(&record.summary.transaction_id)
            .await?
            .captures
            == 1)
            .then_some(()))
    })
    .await?;
    browser.click("#cancel-order").await?;
    browser.wait_for("#cancel-notice").await?;
    shows_status(&browser, "FAILED").await?;
    eventually("the refund on the page", ORDER_TIMEOUT, || async {
        let shown = browser.attribute("#payment-status", "data-status").await?;
        Ok((shown.as_deref() == Some("REFUNDED")).then_some(()))
    })
    .await?;
    let counts = sandbox.counts(&record.summary.transaction_id).await?;
    assert_eq!((counts.captures, counts.refunds), (1, 1));
    browser.close().await
}

#[tokio::test]
async fn a_merchant_adds_a_product_receives_stock_once_and_sees_the_alert() -> anyhow::Result<()> {
    let stack = shop().await?;
    let browser = open_browser().await?;
    sign_in(&browser, &stack, "mia").await?;
    assert!(browser.current_url().await?.contains("/console/orders"));

    browser
        .open(&format!("{}/console/products", stack.http_base))
        .await?;
    browser.type_into("#sku", "CAP-1").await?;
    browser.type_into("#name", "Ordersaga cap").await?;
    browser.type_into("#price", "19.99").await?;
    browser.type_into("#currency", "EUR").await?;
    browser.type_into("#threshold", "5").await?;
    browser.click("#create-product").await?;
    browser.wait_for("#products [data-sku=\"CAP-1\"]").await?;
    // The same sku again: refused next to the field, nothing changes.
    browser.type_into("#sku", "CAP-1").await?;
    browser.type_into("#name", "Another cap").await?;
    browser.type_into("#price", "5").await?;
    browser.click("#create-product").await?;
    browser.wait_for("#sku-error").await?;
    let cap = Sku::parse("CAP-1")?;
    let product = stack.store.catalog().get(&cap).await?.context("CAP-1")?;
    assert_eq!(
        (product.name.as_str(), product.price.minor),
        ("Ordersaga cap", 1_999)
    );

    // The same delivery twice: one receipt.
    for _ in 0..2 {
        browser
            .open(&format!("{}/console/stock", stack.http_base))
            .await?;
        browser.select("#sku", "CAP-1").await?;
        browser.type_into("#quantity", "6").await?;
        browser.type_into("#key", "delivery-7").await?;
        browser.click("#receive").await?;
        browser.wait_for("#receipt-result").await?;
    }
    assert_eq!(
        browser
            .attribute("#receipt-result", "data-created")
            .await?
            .as_deref(),
        Some("false")
    );
    browser
        .screenshot(&screenshots().join("console-stock.png"))
        .await?;
    assert_eq!(stack.on_hand(&cap).await?, 6);

    // An order takes it to 4, at or below the threshold of 5.
    let mut erin = stack.orders_as(Role::Customer, "erin");
    let mut request = place_request("erin", &[("CAP-1", 2)], "");
    request.customer_email = "approve-erin@example.com".into();
    let placed = erin.place_order(request).await?.into_inner();
    let order = stack.terminal_order(&placed.order_id).await?;
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);

    browser
        .open(&format!("{}/console/alerts", stack.http_base))
        .await?;
    browser.wait_for("#alerts [data-sku=\"CAP-1\"]").await?;
    let row = browser.text("#alerts [data-sku=\"CAP-1\"]").await?;
    assert!(row.contains(&placed.order_id), "{row}");

    // The order's page: its events, its shipment, its workflow's link.
    browser
        .open(&format!("{}/console/orders", stack.http_base))
        .await?;
    browser
        .click(&format!("#orders [data-order=\"{}\"] a", placed.order_id))
        .await?;
    browser.wait_for("#temporal-link").await?;
    let link = browser.attribute("#temporal-link", "href").await?;
    assert_eq!(
        link.as_deref(),
        Some(
            format!(
                "{TEMPORAL_UI}/namespaces/{}/workflows/order-{}",
                stack.namespace, placed.order_id
            )
            .as_str()
        )
    );
    // The link names a workflow that exists there.
    stack
        .order_status_attribute(&format!("order-{}", placed.order_id))
        .await?;
    assert_eq!(browser.count("#events tbody tr").await?, 4);
    browser.wait_for("#shipment").await?;
    browser
        .screenshot(&screenshots().join("console-order.png"))
        .await?;

    // A customer is refused the console by the access policy.
    let customer = open_browser().await?;
    sign_in(&customer, &stack, "alice").await?;
    customer
        .open(&format!("{}/console/stock", stack.http_base))
        .await?;
    customer.wait_for("#error-message").await?;
    assert!(
        customer
            .text("#error-message")
            .await?
            .contains("customer role may not")
    );
    customer.close().await?;
    browser.close().await
}

#[tokio::test]
async fn an_operator_retries_a_parked_refund_from_the_needs_attention_list() -> anyhow::Result<()> {
    let stack = shop().await?;
    create_product(&stack.store, "LAST-1", 4_999, 1, 0).await?;
    let sandbox = stack.sandbox()?;
    // Paid but out of stock, and the gateway refuses the refund: parked.
    sandbox.controls(json!({"refuse_refunds": true})).await?;
    let mut dave = stack.orders_as(Role::Customer, "dave");
    let mut request = place_request("dave", &[("LAST-1", 2)], "");
    request.customer_email = "approve-dave@example.com".into();
    let placed = dave.place_order(request).await?.into_inner();
    let order_id = OrderId::parse(&placed.order_id)?;
    let parked = OrderQuery {
        customer_id: None,
        status: None,
        needs_attention: true,
        limit: 10,
        after: None,
    };
    eventually("the refund parked", ORDER_TIMEOUT, || async {
        Ok((stack.store.orders().list(&parked).await?.0.len() == 1).then_some(()))
    })
    .await?;
    sandbox.controls(json!({"refuse_refunds": false})).await?;

    let browser = open_browser().await?;
    sign_in(&browser, &stack, "ana").await?;
    browser
        .click("a[href=\"/console/orders?needs_attention=on\"]")
        .await?;
    browser
        .click(&format!("#orders [data-order=\"{order_id}\"] a"))
        .await?;
    browser.wait_for("#retry-compensation").await?;
    assert!(browser.text("#attention").await?.contains("OPEN"));
    assert_eq!(
        browser.text("#payment-status").await?.split(' ').next(),
        Some("REFUND_FAILED")
    );
    browser
        .screenshot(&screenshots().join("console-attention.png"))
        .await?;
    browser.click("#retry-compensation").await?;
    browser.wait_for("#notice").await?;
    eventually("the refund", ORDER_TIMEOUT, || async {
        let record = stack
            .store
            .orders()
            .get(&order_id)
            .await?
            .context("stored")?;
        let refunded = record
            .payment
            .is_some_and(|p| p.status == ordersaga_domain::PaymentStatus::Refunded);
        Ok(refunded.then_some(()))
    })
    .await?;
    // Resolved: off the list, and no action left on the page.
    eventually("off the list", ORDER_TIMEOUT, || async {
        Ok(stack
            .store
            .orders()
            .list(&parked)
            .await?
            .0
            .is_empty()
            .then_some(()))
    })
    .await?;
    browser
        .open(&format!("{}/console/orders/{order_id}", stack.http_base))
        .await?;
    browser.wait_for("#attention").await?;
    assert_eq!(browser.count("#retry-compensation").await?, 0);
    browser.close().await
}

#[tokio::test]
async fn bad_input_is_shown_next_to_its_field_and_nothing_is_stored() -> anyhow::Result<()> {
    let stack = shop().await?;
    create_product(&stack.store, "MUG-1", 1_250, 10, 0).await?;
    let browser = open_browser().await?;
    sign_in(&browser, &stack, "alice").await?;

    // Quantity 0: refused on the product page, the cart stays empty.
    browser
        .open(&format!("{}/shop/products/MUG-1", stack.http_base))
        .await?;
    browser.type_into("#quantity", "0").await?;
    browser.click("#add-to-cart").await?;
    browser.wait_for("#quantity-error").await?;
    assert!(browser.text("#quantity-error").await?.contains("1 to"));
    assert_eq!(browser.text("#cart-link").await?, "Cart (0)");

    // An empty street: refused next to it, no order placed.
    add_to_cart(&browser, &stack, "MUG-1", 1).await?;
    fill_checkout(&browser, "alice@example.com", "").await?;
    browser.click("#place-order").await?;
    browser.wait_for("#line1-error").await?;
    assert!(
        browser
            .text("#line1-error")
            .await?
            .contains("Street and number is required")
    );
    // The other fields keep what was typed.
    assert_eq!(
        browser.attribute("#city", "value").await?.as_deref(),
        Some("Berlin")
    );
    browser
        .screenshot(&screenshots().join("checkout-error.png"))
        .await?;
    assert_eq!(orders_of(&stack, "alice").await?, 0);

    // A form post without the CSRF token (another site's form, say) is
    // refused with a readable page, and nothing is placed.
    browser
        .execute(
            "const f = document.getElementById('checkout-form');
             f.querySelector('input[name=csrf]').remove();
             f.querySelector('#line1').value = '1 Main St';
             f.submit();",
        )
        .await?;
    browser.wait_for("#error-message").await?;
    assert!(browser.text("h1").await?.contains("expired"));
    assert_eq!(orders_of(&stack, "alice").await?, 0);
    browser.close().await
}

#[tokio::test]
async fn a_checkout_form_sent_twice_places_one_order() -> anyhow::Result<()> {
    let stack = shop().await?;
    create_product(&stack.store, "MUG-1", 1_250, 10, 0).await?;
    let browser = open_browser().await?;
    sign_in(&browser, &stack, "alice").await?;
    add_to_cart(&browser, &stack, "MUG-1", 1).await?;
    fill_checkout(&browser, "alice@example.com", "1 Main St").await?;
    // A double click: the form goes out twice before the first answer.
    browser
        .execute(
            "const f = document.getElementById('checkout-form');
             const body = new URLSearchParams(new FormData(f));
             const send = () => fetch(f.action, {method: 'POST', body, redirect: 'manual'});
             Promise.all([send(), send()]).then(rs => { window.answered = rs.length; });",
        )
        .await?;
    eventually("both posts answered", Duration::from_secs(30), || async {
        let done = browser
            .execute("return window.answered || 0;")
            .await
            .ok()
            .and_then(|v| v.as_u64());
        Ok((done == Some(2)).then_some(()))
    })
    .await?;
    assert_eq!(orders_of(&stack, "alice").await?, 1);
    browser.close().await
}
