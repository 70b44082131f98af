//! The operations console (`/console`, merchants and operators): orders
//! with filters and paging, an order's detail (events with times, payment,
//! emails, shipment, its workflow in the Temporal UI, the operator's
//! actions on parked compensations), products, stock receipts, low-stock
//! alerts and the shipments queue. Who may do what is the services' access
//! policy; on top of it, every console page is for staff only (a customer
//! is refused even the pages whose data the catalog shows them anyway).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use minijinja::value::Serde;
use minijinja::{Value, context};
use ordersaga_domain::{AttentionStatus, Currency, OrderStatus};
use serde::{Deserialize, Serialize};

use super::session::random_token;
use super::{WebError, WebSession, WebState, field_errors, see_other};
use crate::access::{STAFF, require};
use crate::catalog::{CreateProductCommand, StockReceiptCommand};
use crate::convert::{AlertJson, OrderJson, ProductJson, ShipmentJson, SummaryJson};
use crate::error::{ApiError, invalid};
use crate::service::OrderDetails;

/// Orders per console page.
const PAGE_SIZE: u32 = 20;

/// The signed-in staff member, or the policy's refusal.
fn staff(s: &WebSession) -> Result<ordersaga_runtime::auth::Principal, WebError> {
    let caller = s.principal()?;
    require(&caller, STAFF, "use the console")?;
    Ok(caller)
}

/// The console's routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/orders") }),
        )
        .route("/console/orders", get(orders))
        .route("/console/orders/{order_id}", get(order))
        .route("/console/orders/{order_id}/retry", post(retry))
        .route("/console/orders/{order_id}/close", post(close))
        .route("/console/products", get(products).post(create_product))
        .route("/console/stock", get(stock).post(receive_stock))
        .route("/console/alerts", get(alerts))
        .route("/console/shipments", get(shipments))
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct OrderFilter {
    #[serde(default)]
    status: String,
    #[serde(default)]
    customer: String,
    #[serde(default)]
    needs_attention: Option<String>,
    #[serde(default)]
    page_token: Option<String>,
}

impl OrderFilter {
    /// The query string of this filter on another page.
    fn query(&self, page_token: &str) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("status", &self.status)
            .append_pair("customer", &self.customer);
        if self.needs_attention.is_some() {
            q.append_pair("needs_attention", "on");
        }
        q.append_pair("page_token", page_token);
        q.finish()
    }
}

async fn orders(
    State(st): State<WebState>,
    s: WebSession,
    Query(f): Query<OrderFilter>,
) -> Result<Response, WebError> {
    let caller = staff(&s)?;
    let listed = match f.status.trim() {
        "" => Ok(None),
        other => other.parse::<OrderStatus>().map(Some).map_err(invalid),
    };
    let listed = match listed {
        Ok(status) => {
            let customer = Some(f.customer.trim()).filter(|c| !c.is_empty());
            st.app
                .orders
                .list_orders(
                    &caller,
                    customer,
                    status,
                    f.needs_attention.is_some(),
                    PAGE_SIZE,
                    f.page_token.as_deref().filter(|t| !t.is_empty()),
                )
                .await
        }
        Err(e) => Err(e),
    };
    let (orders, next, errors) = match listed {
        Ok((orders, next)) => (orders, next, context! {}),
        Err(e @ ApiError::PermissionDenied(_)) => return Err(e.into()),
        Err(e) => (Vec::new(), None, field_errors(e)?),
    };
    let orders: Vec<SummaryJson> = orders.iter().map(Into::into).collect();
    let next_url = next.map(|t| format!("/console/orders?{}", f.query(&t)));
    s.page(
        "console_orders.html",
        context! {
            orders => Value::from(Serde(&orders)),
            filter => Value::from(Serde(&f)),
            next_url => next_url,
            errors => errors,
        },
    )
}

/// One email as the order page lists it.
#[derive(Serialize)]
struct EmailRow {
    stage: String,
    recipient: String,
    subject: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
}

#[derive(Deserialize, Default)]
struct NoticeQuery {
    notice: Option<String>,
}

async fn order_page(
    st: &WebState,
    s: &WebSession,
    order_id: &str,
    extra: Value,
) -> Result<Response, WebError> {
    let caller = staff(s)?;
    let details = st.app.orders.get_order(&caller, order_id).await?;
    // The operator's actions apply while a compensation is parked.
    let attention_open = matches!(
        &details,
        OrderDetails::Stored { record, .. }
            if record.attention.iter().any(|a| a.status == AttentionStatus::Open)
    );
    let emails: Vec<EmailRow> = st
        .app
        .orders
        .order_emails(&caller, order_id)
        .await?
        .into_iter()
        .map(|n| EmailRow {
            stage: n.stage.to_string(),
            recipient: n.recipient,
            subject: n.subject,
            status: n.status.to_string(),
            attempts: n.attempts,
            last_error: n.last_error,
        })
        .collect();
    let json = OrderJson::from(details);
    let order = Value::from(Serde(&json));
    let workflow_id = order
        .get_attr("workflow_id")
        .ok()
        .and_then(|w| w.as_str().map(str::to_string))
        .unwrap_or_default();
    s.page(
        "console_order.html",
        context! {
            order => order,
            emails => Value::from(Serde(&emails)),
            temporal_url => st.web.workflow_url(&workflow_id),
            attention_open => attention_open,
            ..extra
        },
    )
}

async fn order(
    State(st): State<WebState>,
    s: WebSession,
    Path(order_id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, WebError> {
    order_page(&st, &s, &order_id, context! { notice => q.notice }).await
}

#[derive(Deserialize)]
struct OperatorForm {
    #[serde(default)]
    reason: String,
}

/// `RetryCompensation` or `CloseAttention` as the signed-in operator.
async fn operator_action(
    st: &WebState,
    s: &WebSession,
    order_id: &str,
    close: bool,
    reason: &str,
) -> Result<Response, WebError> {
    let caller = staff(s)?;
    let done = if close {
        st.app
            .orders
            .close_attention(&caller, order_id, &caller.subject, reason)
            .await
    } else {
        st.app
            .orders
            .retry_compensation(&caller, order_id, &caller.subject, reason)
            .await
    };
    let notice = if close { "closed" } else { "retrying" };
    match done {
        Ok(_) => Ok(see_other(&format!(
            "/console/orders/{order_id}?notice={notice}"
        ))),
        Err(e @ ApiError::PermissionDenied(_)) => Err(e.into()),
        Err(e) => {
            let errors = field_errors(e)?;
            let mut page = order_page(
                st,
                s,
                order_id,
                context! { errors => errors, reason => reason },
            )
            .await?;
            *page.status_mut() = StatusCode::BAD_REQUEST;
            Ok(page)
        }
    }
}

async fn retry(
    State(st): State<WebState>,
    s: WebSession,
    Path(order_id): Path<String>,
    Form(f): Form<OperatorForm>,
) -> Result<Response, WebError> {
    operator_action(&st, &s, &order_id, false, &f.reason).await
}

async fn close(
    State(st): State<WebState>,
    s: WebSession,
    Path(order_id): Path<String>,
    Form(f): Form<OperatorForm>,
) -> Result<Response, WebError> {
    operator_action(&st, &s, &order_id, true, &f.reason).await
}

// ----- products and stock ----------------------------------------------------

#[derive(Debug, Default, Deserialize, Serialize)]
struct ProductForm {
    #[serde(default)]
    sku: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    price: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    threshold: String,
}

async fn products_page(
    st: &WebState,
    s: &WebSession,
    form: ProductForm,
    extra: Value,
) -> Result<Response, WebError> {
    let caller = staff(s)?;
    let products: Vec<ProductJson> = st
        .app
        .catalog
        .list_products(&caller)
        .await?
        .iter()
        .map(Into::into)
        .collect();
    s.page(
        "console_products.html",
        context! {
            products => Value::from(Serde(&products)),
            form => Value::from(Serde(&form)),
            ..extra
        },
    )
}

async fn products(
    State(st): State<WebState>,
    s: WebSession,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, WebError> {
    let form = ProductForm {
        currency: "EUR".to_string(),
        threshold: "0".to_string(),
        ..ProductForm::default()
    };
    products_page(&st, &s, form, context! { notice => q.notice }).await
}

/// `12.5` in a currency with 2 decimals -> 1250; `None` if it is not a
/// plain decimal with at most that many decimals.
fn minor_units(price: &str, currency: &Currency) -> Option<i64> {
    let exponent = currency.exponent();
    let (whole, fraction) = price.trim().split_once('.').unwrap_or((price.trim(), ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > usize::try_from(exponent).ok()?
    {
        return None;
    }
    let scale = 10i64.checked_pow(exponent)?;
    let mut fraction = fraction.to_string();
    while fraction.len() < usize::try_from(exponent).ok()? {
        fraction.push('0');
    }
    let fraction: i64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(scale)?
        .checked_add(fraction)
}

async fn create_product(
    State(st): State<WebState>,
    s: WebSession,
    Form(f): Form<ProductForm>,
) -> Result<Response, WebError> {
    let caller = staff(&s)?;
    let parsed = Currency::parse(f.currency.trim())
        .map_err(|e| invalid(format!("currency: {e}")))
        .and_then(|c| {
            minor_units(&f.price, &c).ok_or_else(|| {
                invalid(format!(
                    "price must be an amount like 19.99 (at most {} decimals)",
                    c.exponent()
                ))
            })
        })
        .and_then(|minor| {
            f.threshold
                .trim()
                .parse::<i64>()
                .map(|t| (minor, t))
                .map_err(|_| invalid("low_stock_threshold must be a whole number"))
        });
    let created = match parsed {
        Ok((price_minor, threshold)) => {
            st.app
                .catalog
                .create_product(
                    &caller,
                    CreateProductCommand {
                        sku: f.sku.trim().to_string(),
                        name: f.name.clone(),
                        price_minor,
                        currency: f.currency.trim().to_uppercase(),
                        low_stock_threshold: threshold,
                    },
                )
                .await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(p) => Ok(see_other(&format!(
            "/console/products?notice=created-{}",
            p.sku
        ))),
        Err(e @ ApiError::PermissionDenied(_)) => Err(e.into()),
        Err(e) => {
            let errors = field_errors(e)?;
            let mut page = products_page(&st, &s, f, context! { errors => errors }).await?;
            *page.status_mut() = StatusCode::BAD_REQUEST;
            Ok(page)
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct StockForm {
    #[serde(default)]
    sku: String,
    #[serde(default)]
    quantity: String,
    #[serde(default)]
    key: String,
    /// Empty: the default warehouse.
    #[serde(default)]
    warehouse: String,
}

async fn stock_page(
    st: &WebState,
    s: &WebSession,
    form: StockForm,
    extra: Value,
) -> Result<Response, WebError> {
    let caller = staff(s)?;
    let products: Vec<ProductJson> = st
        .app
        .catalog
        .list_products(&caller)
        .await?
        .iter()
        .map(Into::into)
        .collect();
    s.page(
        "console_stock.html",
        context! {
            products => Value::from(Serde(&products)),
            form => Value::from(Serde(&form)),
            ..extra
        },
    )
}

async fn stock(State(st): State<WebState>, s: WebSession) -> Result<Response, WebError> {
    let form = StockForm {
        // The delivery's key: the same receipt sent twice counts once.
        key: format!("receipt-{}", random_token()),
        ..StockForm::default()
    };
    stock_page(&st, &s, form, context! {}).await
}

async fn receive_stock(
    State(st): State<WebState>,
    s: WebSession,
    Form(f): Form<StockForm>,
) -> Result<Response, WebError> {
    let caller = staff(&s)?;
    let received = match f.quantity.trim().parse::<i64>() {
        Ok(quantity) => {
            st.app
                .catalog
                .create_stock_receipt(
                    &caller,
                    StockReceiptCommand {
                        idempotency_key: Some(f.key.clone()),
                        warehouse: Some(f.warehouse.trim().to_string()),
                        lines: vec![(f.sku.trim().to_string(), quantity)],
                    },
                )
                .await
        }
        Err(_) => Err(invalid("quantity must be a whole number")),
    };
    match received {
        Ok(receipt) => {
            let form = StockForm {
                key: format!("receipt-{}", random_token()),
                ..StockForm::default()
            };
            let result = context! {
                receipt_id => receipt.receipt_id,
                created => receipt.created,
                lines => receipt.lines.iter().map(|(sku, q)| format!("{q} x {sku}")).collect::<Vec<_>>(),
                key => f.key,
            };
            stock_page(&st, &s, form, context! { result => result }).await
        }
        Err(e @ ApiError::PermissionDenied(_)) => Err(e.into()),
        Err(e) => {
            let errors = field_errors(e)?;
            let mut page = stock_page(&st, &s, f, context! { errors => errors }).await?;
            *page.status_mut() = StatusCode::BAD_REQUEST;
            Ok(page)
        }
    }
}

#[derive(Deserialize)]
struct PageQuery {
    page_token: Option<String>,
}

async fn alerts(
    State(st): State<WebState>,
    s: WebSession,
    Query(q): Query<PageQuery>,
) -> Result<Response, WebError> {
    let caller = staff(&s)?;
    let (alerts, next) = st
        .app
        .catalog
        .list_low_stock_alerts(&caller, None, PAGE_SIZE, q.page_token.as_deref())
        .await?;
    let alerts: Vec<AlertJson> = alerts.iter().map(Into::into).collect();
    s.page(
        "console_alerts.html",
        context! { alerts => Value::from(Serde(&alerts)), next => next },
    )
}

async fn shipments(
    State(st): State<WebState>,
    s: WebSession,
    Query(q): Query<PageQuery>,
) -> Result<Response, WebError> {
    let caller = staff(&s)?;
    let (shipments, next) = st
        .app
        .orders
        .list_shipments(&caller, PAGE_SIZE, q.page_token.as_deref())
        .await?;
    let shipments: Vec<ShipmentJson> = shipments.iter().map(Into::into).collect();
    s.page(
        "console_shipments.html",
        context! { shipments => Value::from(Serde(&shipments)), next => next },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_read_as_decimals_of_the_currency() {
        let eur = Currency::parse("EUR").unwrap();
        assert_eq!(minor_units("19.99", &eur), Some(1999));
        assert_eq!(minor_units("5", &eur), Some(500));
        assert_eq!(minor_units("5.5", &eur), Some(550));
        assert_eq!(minor_units("5.555", &eur), None);
        assert_eq!(minor_units("-1", &eur), None);
        assert_eq!(minor_units("abc", &eur), None);
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(minor_units("1000", &jpy), Some(1000));
        assert_eq!(minor_units("10.5", &jpy), None);
    }
}
