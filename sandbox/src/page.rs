//! The buyer's approval page, PayPal's `checkoutnow?token=...` stand-in:
//! plain server-rendered HTML (no JavaScript) showing what is paid for, with
//! Approve and Cancel buttons that POST back here. After either, the buyer
//! is sent to the order's `return_url` / `cancel_url` with PayPal's query
//! parameters (`token`, `PayerID`), or shown a confirmation page.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::App;
use crate::api::{approve, payer_id, void};
use crate::db::{self, OrderRow};

/// The payer recorded when a person approves on the page.
pub const PAGE_BUYER_EMAIL: &str = "buyer@example.com";

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/checkoutnow", get(show))
        .route("/checkoutnow/approve", post(approve_clicked))
        .route("/checkoutnow/cancel", post(cancel_clicked))
}

#[derive(Deserialize)]
struct Token {
    token: String,
}

/// Escapes text for HTML element content and quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title>\
         <style>body{{font-family:sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}}\
         .amount{{font-size:2rem;font-weight:bold}} form{{display:inline}}\
         button{{font-size:1.1rem;padding:.5rem 1.5rem;margin:.5rem .5rem 0 0}}</style>\
         </head><body><p><small>ordersaga payments sandbox</small></p>{body}</body></html>",
        title = escape(title),
    );
    (status, Html(html)).into_response()
}

fn not_found(token: &str) -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Unknown checkout",
        &format!(
            "<h1>Unknown checkout</h1><p>No order {}.</p>",
            escape(token)
        ),
    )
}

fn status_page(o: &OrderRow) -> Response {
    let (title, text) = match o.status.as_str() {
        "APPROVED" => (
            "Payment approved",
            "You approved this payment. You can close this window.",
        ),
        "COMPLETED" => ("Payment completed", "This payment is complete."),
        "VOIDED" => (
            "Payment cancelled",
            "This payment was cancelled. No money was taken.",
        ),
        _ => (
            "Payment pending",
            "This payment is waiting for your approval.",
        ),
    };
    page(
        StatusCode::OK,
        title,
        &format!(
            "<h1 id=\"status\" data-status=\"{status}\">{title}</h1><p>{text}</p>\
             <p>{value} {currency} &middot; order {id}</p>",
            status = escape(&o.status),
            value = escape(&o.value),
            currency = escape(&o.currency),
            id = escape(&o.id),
        ),
    )
}

/// `GET /checkoutnow?token={order_id}`.
async fn show(State(app): State<App>, Query(q): Query<Token>) -> Response {
    let order = match app.pool().acquire().await {
        Ok(mut conn) => db::order(&mut conn, &q.token).await,
        Err(e) => Err(e),
    };
    let order = match order {
        Ok(Some(o)) => o,
        Ok(None) => return not_found(&q.token),
        Err(e) => return internal(&e),
    };
    if order.status != "CREATED" {
        return status_page(&order);
    }
    let token = escape(&order.id);
    let description = order
        .description
        .as_deref()
        .map(|d| format!("<p>{}</p>", escape(d)))
        .unwrap_or_default();
    page(
        StatusCode::OK,
        "Approve your payment",
        &format!(
            "<h1>Approve your payment</h1>{description}\
             <p class=\"amount\" id=\"amount\">{value} {currency}</p>\
             <p>Order {token}</p>\
             <form method=\"post\" action=\"/checkoutnow/approve?token={token}\">\
             <button type=\"submit\" id=\"approve\">Approve</button></form>\
             <form method=\"post\" action=\"/checkoutnow/cancel?token={token}\">\
             <button type=\"submit\" id=\"cancel\">Cancel</button></form>",
            value = escape(&order.value),
            currency = escape(&order.currency),
        ),
    )
}

fn internal(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "approval page failed");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "<h1>Something went wrong</h1><p>Please try again.</p>",
    )
}

/// `url` with PayPal's return parameters appended.
fn with_query(url: &str, params: &[(&str, &str)]) -> String {
    let mut out = url.to_string();
    for (i, (k, v)) in params.iter().enumerate() {
        let sep = if i == 0 && !url.contains('?') {
            '?'
        } else {
            '&'
        };
        out.push(sep);
        out.push_str(k);
        out.push('=');
        // Ids and payer ids are alphanumeric: no encoding needed.
        out.push_str(v);
    }
    out
}

fn redirect(url: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, url.to_string())]).into_response()
}

/// `POST /checkoutnow/approve?token=...`: the Approve button.
async fn approve_clicked(State(app): State<App>, Query(q): Query<Token>) -> Response {
    let order = match approve(&app, &q.token, PAGE_BUYER_EMAIL).await {
        Ok(Some(o)) => o,
        Ok(None) => return not_found(&q.token),
        Err(e) => return internal(&e),
    };
    match (&order.return_url, order.status.as_str()) {
        (Some(url), "APPROVED") => redirect(&with_query(
            url,
            &[
                ("token", &order.id),
                ("PayerID", &payer_id(PAGE_BUYER_EMAIL)),
            ],
        )),
        _ => status_page(&order),
    }
}

/// `POST /checkoutnow/cancel?token=...`: the Cancel button.
async fn cancel_clicked(State(app): State<App>, Query(q): Query<Token>) -> Response {
    let order = match void(&app, &q.token).await {
        Ok(Some(o)) => o,
        Ok(None) => return not_found(&q.token),
        Err(e) => return internal(&e),
    };
    match (&order.cancel_url, order.status.as_str()) {
        (Some(url), "VOIDED") => redirect(&with_query(url, &[("token", &order.id)])),
        _ => status_page(&order),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_return_urls_keep_their_query() {
        assert_eq!(
            escape("<b>\"x\" & 'y'"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;"
        );
        assert_eq!(
            with_query("http://shop/paid", &[("token", "A1"), ("PayerID", "P")]),
            "http://shop/paid?token=A1&PayerID=P"
        );
        assert_eq!(
            with_query("http://shop/paid?o=1", &[("token", "A1")]),
            "http://shop/paid?o=1&token=A1"
        );
    }
}
