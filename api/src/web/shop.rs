//! The storefront (`/shop`): the catalog, a product's page, the cart (in
//! the session cookie), checkout, "my orders", an order's page with its
//! live timeline, cancelling, accepting an amended order, and rating a
//! product received.
//!
//! Checkout places the order with an idempotency key made when the form
//! was shown, so a double click or a resent form places one order; then
//! the buyer goes to the gateway's approval page, which sends them back to
//! the order's page (`/shop/orders/{id}`, the worker's
//! `ORDERSAGA_CHECKOUT_RETURN_URL`). The timeline is the order's history
//! as the shop database records it (`order_events`, written in each step's
//! transaction), polled by htmx every second while the order is pending:
//! it needs neither NATS nor a query to the saga.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use minijinja::value::Serde;
use minijinja::{Value, context};
use ordersaga_domain::{Money, OrderStatus, PaymentStatus, ShippingAddress};
use serde::{Deserialize, Serialize};

use super::session::{CartLine, MAX_CART_LINES, random_token};
use super::{WebError, WebSession, WebState, field_errors, see_other};
use crate::convert::{OrderJson, ProductJson, SummaryJson};
use crate::error::ApiError;
use crate::service::{MAX_QUANTITY, OrderDetails, PlaceOrderCommand};

/// The storefront's routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/shop", get(catalog))
        .route("/shop/products/{sku}", get(product))
        .route("/shop/products/{sku}/rating", post(rate))
        .route("/shop/cart", get(cart).post(add_to_cart))
        .route("/shop/cart/remove", post(remove_from_cart))
        .route("/shop/checkout", post(checkout))
        .route("/shop/orders", get(my_orders))
        .route("/shop/orders/{order_id}", get(order))
        .route("/shop/orders/{order_id}/live", get(order_live))
        .route("/shop/orders/{order_id}/cancel", post(cancel))
        .route(
            "/shop/orders/{order_id}/amendment/accept",
            post(accept_amendment),
        )
}

async fn catalog(State(st): State<WebState>, s: WebSession) -> Result<Response, WebError> {
    let caller = s.principal()?;
    let products: Vec<ProductJson> = st
        .app
        .catalog
        .list_products(&caller)
        .await?
        .iter()
        .map(Into::into)
        .collect();
    s.page(
        "catalog.html",
        context! { products => Value::from(Serde(&products)) },
    )
}

async fn product_page(
    st: &WebState,
    s: &WebSession,
    sku: &str,
    extra: Value,
) -> Result<Response, WebError> {
    let caller = s.principal()?;
    let product = ProductJson::from(&st.app.catalog.get_product(&caller, sku).await?);
    s.page(
        "product.html",
        context! { product => Value::from(Serde(&product)), ..extra },
    )
}

async fn product(
    State(st): State<WebState>,
    s: WebSession,
    Path(sku): Path<String>,
) -> Result<Response, WebError> {
    product_page(&st, &s, &sku, context! {}).await
}

#[derive(Deserialize)]
struct AddForm {
    #[serde(default)]
    sku: String,
    #[serde(default)]
    quantity: String,
}

/// Adds to the cart after checking the product exists and the quantity
/// is one an order may have; a refused line leaves the cart as it was.
async fn add_to_cart(
    State(st): State<WebState>,
    s: WebSession,
    Form(f): Form<AddForm>,
) -> Result<Response, WebError> {
    let caller = s.principal()?;
    st.app.catalog.get_product(&caller, &f.sku).await?;
    let in_cart = s
        .session
        .cart
        .iter()
        .find(|l| l.sku == f.sku)
        .map_or(0, |l| l.quantity);
    let problem = match f.quantity.trim().parse::<i64>() {
        Ok(q) if (1..=MAX_QUANTITY).contains(&q) && q + in_cart <= MAX_QUANTITY => None,
        Ok(q) if (1..=MAX_QUANTITY).contains(&q) => Some(format!(
            "quantity: at most {MAX_QUANTITY} units of one product per order"
        )),
        _ => Some(format!(
            "quantity must be a whole number from 1 to {MAX_QUANTITY}"
        )),
    };
    let problem = problem.or_else(|| {
        (in_cart == 0 && s.session.cart.len() >= MAX_CART_LINES)
            .then(|| format!("The cart holds at most {MAX_CART_LINES} different products."))
    });
    if let Some(message) = problem {
        let mut page = product_page(
            &st,
            &s,
            &f.sku,
            context! { quantity => f.quantity, errors => context! { quantity => message } },
        )
        .await?;
        *page.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(page);
    }
    let quantity = f.quantity.trim().parse::<i64>().unwrap_or_default();
    let mut session = s.session.clone();
    match session.cart.iter_mut().find(|l| l.sku == f.sku) {
        Some(line) => line.quantity += quantity,
        None => session.cart.push(CartLine {
            sku: f.sku.clone(),
            quantity,
        }),
    }
    Ok(s.store(&session, see_other("/shop/cart")))
}

#[derive(Deserialize)]
struct RemoveForm {
    #[serde(default)]
    sku: String,
}

async fn remove_from_cart(s: WebSession, Form(f): Form<RemoveForm>) -> Result<Response, WebError> {
    s.principal()?;
    let mut session = s.session.clone();
    session.cart.retain(|l| l.sku != f.sku);
    Ok(s.store(&session, see_other("/shop/cart")))
}

/// A cart line as the cart page shows it.
#[derive(Serialize)]
struct CartRow {
    sku: String,
    name: String,
    quantity: i64,
    unit_price: String,
    subtotal: String,
}

/// The checkout form's values (shown again after a refusal).
#[derive(Debug, Default, Deserialize, Serialize)]
struct CheckoutForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    line1: String,
    #[serde(default)]
    line2: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    postal_code: String,
    #[serde(default)]
    country: String,
}

async fn cart_page(
    st: &WebState,
    s: &WebSession,
    form: CheckoutForm,
    errors: Value,
) -> Result<Response, WebError> {
    let caller = s.principal()?;
    let mut rows = Vec::new();
    let mut total: Option<Money> = None;
    for line in &s.session.cart {
        // A product that vanished is left out (and refused at checkout).
        let Ok(p) = st.app.catalog.get_product(&caller, &line.sku).await else {
            continue;
        };
        let subtotal = p.price.times(line.quantity).ok();
        total = match (total, subtotal) {
            (None, Some(s)) => Some(s),
            (Some(t), Some(s)) => t.plus(s).ok(),
            (t, None) => t,
        };
        rows.push(CartRow {
            sku: line.sku.clone(),
            name: p.name.clone(),
            quantity: line.quantity,
            unit_price: p.price.to_string(),
            subtotal: subtotal.map(|m| m.to_string()).unwrap_or_default(),
        });
    }
    // The key of this rendering of the form: the order it places, however
    // often the form is sent.
    let form = CheckoutForm {
        key: if form.key.is_empty() {
            random_token()
        } else {
            form.key
        },
        ..form
    };
    s.page(
        "cart.html",
        context! {
            rows => Value::from(Serde(&rows)),
            total => total.map(|t| t.to_string()),
            form => Value::from(Serde(&form)),
            errors => errors,
        },
    )
}

async fn cart(State(st): State<WebState>, s: WebSession) -> Result<Response, WebError> {
    cart_page(&st, &s, CheckoutForm::default(), context! {}).await
}

/// Places the cart as an order; a refused one is shown with its message
/// next to the field and nothing is placed.
async fn checkout(
    State(st): State<WebState>,
    s: WebSession,
    Form(f): Form<CheckoutForm>,
) -> Result<Response, WebError> {
    let caller = s.principal()?;
    let refused = |errors: Value, f: CheckoutForm| async {
        let mut page = cart_page(&st, &s, f, errors).await?;
        *page.status_mut() = StatusCode::BAD_REQUEST;
        Ok::<_, WebError>(page)
    };
    if s.session.cart.is_empty() {
        return refused(context! { _form => "Your cart is empty." }, f).await;
    }
    let cmd = PlaceOrderCommand {
        customer_id: String::new(),
        lines: s
            .session
            .cart
            .iter()
            .map(|l| (l.sku.clone(), l.quantity))
            .collect(),
        idempotency_key: Some(format!("web-{}", f.key.trim())),
        customer_email: f.email.trim().to_string(),
        shipping_address: Some(ShippingAddress {
            name: f.name.clone(),
            line1: f.line1.clone(),
            line2: f.line2.clone(),
            city: f.city.clone(),
            postal_code: f.postal_code.clone(),
            country: f.country.trim().to_uppercase(),
        }),
    };
    match st.app.orders.place_order(&caller, cmd).await {
        Ok(placed) => {
            let mut session = s.session.clone();
            session.cart.clear();
            let to = placed
                .approval_url
                .unwrap_or_else(|| format!("/shop/orders/{}", placed.order_id));
            Ok(s.store(&session, see_other(&to)))
        }
        Err(e) => {
            let errors = field_errors(e)?;
            refused(errors, f).await
        }
    }
}

#[derive(Deserialize)]
struct PageQuery {
    page_token: Option<String>,
}

async fn my_orders(
    State(st): State<WebState>,
    s: WebSession,
    Query(q): Query<PageQuery>,
) -> Result<Response, WebError> {
    let caller = s.principal()?;
    let (orders, next) = st
        .app
        .orders
        .list_orders(&caller, None, None, false, 20, q.page_token.as_deref())
        .await?;
    let orders: Vec<SummaryJson> = orders.iter().map(Into::into).collect();
    s.page(
        "orders.html",
        context! { orders => Value::from(Serde(&orders)), next => next },
    )
}

#[derive(Deserialize, Default)]
struct OrderQuery {
    /// `cancelled`: the buyer cancelled on the gateway's page.
    payment: Option<String>,
    /// A note after an action (`cancel`, `rated`).
    notice: Option<String>,
}

/// The order and whether it is still moving (the page polls while it is).
async fn order_view(
    st: &WebState,
    s: &WebSession,
    order_id: &str,
) -> Result<(Value, bool), WebError> {
    let caller = s.principal()?;
    let details = st.app.orders.get_order(&caller, order_id).await?;
    // Still moving: pending, or failed while the money is not yet
    // settled (a refund or void still to come).
    let pending = match &details {
        OrderDetails::Stored { record, .. } => {
            matches!(
                record.summary.status,
                OrderStatus::Pending | OrderStatus::ActionRequired
            ) || (record.summary.status == OrderStatus::Failed
                && record.payment.as_ref().is_some_and(|p| {
                    matches!(p.status, PaymentStatus::Pending | PaymentStatus::Captured)
                }))
        }
        OrderDetails::Accepted(_) => true,
    };
    let json = OrderJson::from(details);
    Ok((Value::from(Serde(&json)), pending))
}

async fn order_page(
    st: &WebState,
    s: &WebSession,
    order_id: &str,
    extra: Value,
) -> Result<Response, WebError> {
    let (order, pending) = order_view(st, s, order_id).await?;
    s.page(
        "order.html",
        context! { order => order, pending => pending, ..extra },
    )
}

async fn order(
    State(st): State<WebState>,
    s: WebSession,
    Path(order_id): Path<String>,
    Query(q): Query<OrderQuery>,
) -> Result<Response, WebError> {
    order_page(
        &st,
        &s,
        &order_id,
        context! { payment_cancelled => q.payment.as_deref() == Some("cancelled"), notice => q.notice },
    )
    .await
}

/// The live part of the order page, for htmx's polling.
async fn order_live(
    State(st): State<WebState>,
    s: WebSession,
    Path(order_id): Path<String>,
) -> Result<Response, WebError> {
    let (order, pending) = order_view(&st, &s, &order_id).await?;
    s.page(
        "order_live.html",
        context! { order => order, pending => pending },
    )
}

async fn cancel(
    State(st): State<WebState>,
    s: WebSession,
    Path(order_id): Path<String>,
) -> Result<Response, WebError> {
    let caller = s.principal()?;
    match st
        .app
        .orders
        .cancel_order(&caller, &order_id, "cancelled in the shop")
        .await
    {
        Ok(_) => Ok(see_other(&format!("/shop/orders/{order_id}?notice=cancel"))),
        Err(ApiError::FailedPrecondition(m)) => {
            let mut page = order_page(&st, &s, &order_id, context! { cancel_error => m }).await?;
            *page.status_mut() = StatusCode::CONFLICT;
            Ok(page)
        }
        Err(e) => Err(e.into()),
    }
}

/// The customer accepts the amended order (some lines could not be
/// served): the missing lines are refunded and the rest is shipped.
async fn accept_amendment(
    State(st): State<WebState>,
    s: WebSession,
    Path(order_id): Path<String>,
) -> Result<Response, WebError> {
    let caller = s.principal()?;
    match st.app.orders.accept_amendment(&caller, &order_id).await {
        Ok(_) => Ok(see_other(&format!(
            "/shop/orders/{order_id}?notice=accepted"
        ))),
        Err(ApiError::FailedPrecondition(m)) => {
            let mut page = order_page(&st, &s, &order_id, context! { cancel_error => m }).await?;
            *page.status_mut() = StatusCode::CONFLICT;
            Ok(page)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct RateForm {
    #[serde(default)]
    stars: String,
    #[serde(default)]
    order_id: String,
}

async fn rate(
    State(st): State<WebState>,
    s: WebSession,
    Path(sku): Path<String>,
    Form(f): Form<RateForm>,
) -> Result<Response, WebError> {
    let caller = s.principal()?;
    let back = |extra: Value| async {
        if f.order_id.is_empty() {
            product_page(&st, &s, &sku, extra).await
        } else {
            order_page(&st, &s, &f.order_id, extra).await
        }
    };
    let stars = f.stars.trim().parse::<i64>().unwrap_or(0);
    match st.app.catalog.submit_rating(&caller, "", &sku, stars).await {
        Ok(_) if f.order_id.is_empty() => Ok(see_other(&format!("/shop/products/{sku}"))),
        Ok(_) => Ok(see_other(&format!(
            "/shop/orders/{}?notice=rated",
            f.order_id
        ))),
        Err(
            e @ (ApiError::InvalidArgument(_)
            | ApiError::FailedPrecondition(_)
            | ApiError::NotFound(_)),
        ) => {
            let mut page =
                back(context! { rating_error => e.to_string(), rating_sku => sku.clone() }).await?;
            *page.status_mut() = StatusCode::BAD_REQUEST;
            Ok(page)
        }
        Err(e) => Err(e.into()),
    }
    .map(IntoResponse::into_response)
}
