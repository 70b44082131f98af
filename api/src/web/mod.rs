//! The shop and the operations console in the browser: server-rendered
//! HTML pages on the API's HTTP port, `/shop` for customers and `/console`
//! for merchants and operators, plus `/login`.
//!
//! Pages call the same use cases as the JSON and gRPC APIs
//! ([`OrderService`], [`CatalogService`]) with the signed-in user's
//! [`Principal`], so [`crate::access`] decides here too; nothing is read
//! or written around it. Templates ([`templates`], minijinja, HTML
//! auto-escaped) and the assets (a small stylesheet and a vendored `htmx`
//! for the order page's live timeline) are compiled into the binary: the
//! pages call nothing outside the machine.
//!
//! Who is signed in, the cart and the CSRF binding live in one signed
//! cookie ([`session`]); every POST is refused with `403` unless it carries
//! the session's CSRF token ([`csrf_guard`]). Users and passwords are
//! local ([`users`]). Bad input is shown next to its field, as the
//! service's message, and nothing is stored.

pub mod console;
pub mod session;
pub mod shop;
pub mod templates;
pub mod users;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use minijinja::value::Serde;
use minijinja::{Value, context};
use ordersaga_runtime::Secret;
use ordersaga_runtime::auth::{Principal, Role};
use serde::Deserialize;

use crate::error::ApiError;
use crate::http::{AppState, MAX_BODY_BYTES};
use session::{CSRF_FIELD, Session, SessionKeys};
use users::{Users, UsersError, WebUser};

/// The Temporal UI of the local dev server.
pub const DEFAULT_TEMPORAL_UI_URL: &str = "http://localhost:8233";

/// What the web pages can be told (`ORDERSAGA_WEB_*`,
/// `ORDERSAGA_TEMPORAL_UI_URL`).
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// The local users' file (`ORDERSAGA_WEB_USERS_FILE`).
    pub users_file: Option<PathBuf>,
    /// Users given directly (tests), besides the file's.
    pub users: Vec<WebUser>,
    /// The key sessions are signed with (`ORDERSAGA_WEB_SESSION_KEY`);
    /// without one a random key per process: a restart signs everyone out.
    pub session_key: Option<Secret>,
    /// How long a sign-in lasts.
    pub session_ttl: Duration,
    /// The Temporal UI's base URL; the console links each order's
    /// workflow there (`<url>/namespaces/<ns>/workflows/<workflow id>`).
    pub temporal_ui_url: String,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            users_file: None,
            users: Vec::new(),
            session_key: None,
            session_ttl: Duration::from_secs(8 * 3600),
            temporal_ui_url: DEFAULT_TEMPORAL_UI_URL.to_string(),
        }
    }
}

/// What the pages share besides the services.
pub struct Web {
    keys: SessionKeys,
    users: Users,
    temporal_ui_url: String,
    namespace: String,
}

impl Web {
    /// The pages' configuration; `tls` marks the session cookie `Secure`,
    /// `namespace` is the one the orders' workflows run in.
    pub fn new(settings: &WebSettings, tls: bool, namespace: String) -> Result<Self, UsersError> {
        let mut all = settings.users.clone();
        if let Some(path) = &settings.users_file {
            all.extend(Users::load(path)?);
        }
        let users = Users::new(all)?;
        if users.is_empty() {
            tracing::info!(
                "no web users (ORDERSAGA_WEB_USERS_FILE): nobody can sign in to /shop or /console"
            );
        }
        let key = match &settings.session_key {
            Some(k) => k.expose().as_bytes().to_vec(),
            None => SessionKeys::random_key(),
        };
        Ok(Self {
            keys: SessionKeys::new(&key, settings.session_ttl, tls),
            users,
            temporal_ui_url: settings.temporal_ui_url.trim_end_matches('/').to_string(),
            namespace,
        })
    }

    /// The Temporal UI's page of a workflow.
    pub fn workflow_url(&self, workflow_id: &str) -> String {
        format!(
            "{}/namespaces/{}/workflows/{workflow_id}",
            self.temporal_ui_url, self.namespace
        )
    }
}

/// The services and the pages' configuration.
#[derive(Clone)]
pub struct WebState {
    app: AppState,
    web: Arc<Web>,
}

/// The pages' routes, to merge into the API's router.
pub fn router(app: AppState, web: Web) -> Router {
    let state = WebState {
        app,
        web: Arc::new(web),
    };
    Router::new()
        .route("/", get(|| async { Redirect::to("/shop") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/web/htmx.min.js", get(htmx))
        .route("/web/web.css", get(css))
        .merge(shop::routes())
        .merge(console::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            csrf_guard,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn htmx() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("static/htmx.min.js"),
    )
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("static/web.css"),
    )
}

/// Refuses every POST whose form (or `X-CSRF-Token` header) does not carry
/// this session's CSRF token, with a readable `403`, before any handler
/// runs.
async fn csrf_guard(State(state): State<WebState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let (session, _) = state.web.keys.from_headers(&parts.headers);
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Too much",
            "The form was too large.",
        );
    };
    let from_header = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let from_form = form_pairs(&bytes)
        .into_iter()
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v);
    let token = from_header.or(from_form).unwrap_or_default();
    if !state.web.keys.check_csrf(&session, &token) {
        return error_page(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The form was not sent from this page or your session changed since it was shown \
             (signed in or out, or the server restarted). Nothing was done: go back, reload \
             the page and try again.",
        );
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The `application/x-www-form-urlencoded` pairs of a body.
fn form_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

/// A minimal page for errors that happen before a template can be chosen.
fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = templates::render(
        "error.html",
        context! { title => title, message => message, user => Value::UNDEFINED },
    )
    .unwrap_or_else(|_| format!("{title}: {message}"));
    (status, Html(body)).into_response()
}

// ----- the request's session -------------------------------------------------

/// The request's session (a fresh one without a valid cookie), with the
/// values every page shows.
pub struct WebSession {
    /// The session.
    pub session: Session,
    keys: SessionKeys,
    /// The path and query asked for (where to come back after signing in).
    path: String,
}

impl FromRequestParts<WebState> for WebSession {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Self, Self::Rejection> {
        let (session, _) = state.web.keys.from_headers(&parts.headers);
        Ok(Self {
            session,
            keys: state.web.keys.clone(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        })
    }
}

impl WebSession {
    /// The signed-in principal, or [`WebError::SignIn`].
    pub fn principal(&self) -> Result<Principal, WebError> {
        self.session
            .principal()
            .ok_or_else(|| WebError::SignIn(self.path.clone()))
    }

    /// What every page's template gets: the user, the CSRF token, the
    /// cart's size.
    pub fn base(&self) -> Value {
        context! {
            user => Value::from(Serde(&self.session.user)),
            csrf => self.keys.csrf_token(&self.session),
            cart_count => self.session.cart.iter().map(|l| l.quantity).sum::<i64>(),
            staff => self.session.user.as_ref().is_some_and(|u| u.role != Role::Customer),
            operator => self.session.user.as_ref().is_some_and(|u| u.role == Role::Operator),
        }
    }

    /// A page from `template` with `ctx` and the base values.
    pub fn page(&self, template: &str, ctx: Value) -> Result<Response, WebError> {
        let body = templates::render(template, context! { ..ctx, ..self.base() })?;
        Ok(Html(body).into_response())
    }

    /// Stores `session` (a `Set-Cookie` on `response`).
    pub fn store(&self, session: &Session, mut response: Response) -> Response {
        response
            .headers_mut()
            .append(header::SET_COOKIE, self.keys.set_cookie(session));
        response
    }
}

/// A `303 See Other` to `to` (after a POST: a reload does not post again).
pub fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Not signed in: to the sign-in page, then back to this path.
    #[error("sign in first")]
    SignIn(String),
    /// The use case refused or failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A template failed (a bug).
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn(path) => {
                let next: String = url_escape(&path);
                see_other(&format!("/login?next={next}"))
            }
            Self::Api(ApiError::Unauthenticated(_)) => see_other("/login"),
            Self::Api(ApiError::NotFound(m)) => error_page(StatusCode::NOT_FOUND, "Not found", &m),
            Self::Api(ApiError::PermissionDenied(m)) => {
                error_page(StatusCode::FORBIDDEN, "Not allowed", &m)
            }
            Self::Api(ApiError::Internal(e)) => {
                tracing::error!(error = format!("{e:#}"), "page failed");
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The shop could not answer just now. Please try again in a moment.",
                )
            }
            Self::Api(e) => {
                error_page(StatusCode::BAD_REQUEST, "That did not work", &e.to_string())
            }
            Self::Template(e) => {
                tracing::error!(error = format!("{e:#}"), "template failed");
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "This page could not be shown.",
                )
            }
        }
    }
}

/// Percent-escapes everything but unreserved characters and `/`.
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The field a service message is about, so the page shows it there:
/// `customer_email ...` -> `email`, `shipping_address.city ...` -> `city`,
/// `line 2: quantity ...` -> `quantity`; `None`: the form as a whole.
pub fn field_of(message: &str) -> Option<&'static str> {
    const FIELDS: &[(&str, &str)] = &[
        ("unknown product", "sku"),
        ("already exists", "sku"),
        ("customer_email", "email"),
        ("shipping_address.name", "name"),
        ("shipping_address.line1", "line1"),
        ("shipping_address.line2", "line2"),
        ("shipping_address.city", "city"),
        ("shipping_address.postal_code", "postal_code"),
        ("shipping_address.country", "country"),
        ("quantity", "quantity"),
        ("sku", "sku"),
        ("name must", "name"),
        ("price", "price"),
        ("low_stock_threshold", "threshold"),
        ("idempotency_key", "key"),
        ("stars", "stars"),
        ("operator", "operator"),
        ("reason", "reason"),
        ("warehouse", "warehouse"),
    ];
    FIELDS
        .iter()
        .find(|(needle, _)| message.contains(needle))
        .map(|(_, field)| *field)
}

/// The service's message in the form's words: `shipping_address.city is
/// required` -> `City is required`.
fn humanize(message: &str) -> String {
    const NAMES: &[(&str, &str)] = &[
        ("shipping_address.name", "Name"),
        ("shipping_address.line1", "Street and number"),
        ("shipping_address.line2", "Flat, floor, company"),
        ("shipping_address.city", "City"),
        ("shipping_address.postal_code", "Postal code"),
        ("shipping_address.country", "Country"),
        ("customer_email", "Email"),
        ("low_stock_threshold", "Low-stock alert"),
        ("idempotency_key", "Delivery key"),
    ];
    NAMES
        .iter()
        .fold(message.to_string(), |m, (from, to)| m.replace(from, to))
}

/// The message of a refused input, by field (`_form` when it is about no
/// one field); other failures pass through.
pub fn field_errors(e: ApiError) -> Result<Value, WebError> {
    match e {
        ApiError::InvalidArgument(m)
        | ApiError::NotFound(m)
        | ApiError::AlreadyExists(m)
        | ApiError::FailedPrecondition(m)
        | ApiError::ResourceExhausted(m) => {
            let field = field_of(&m).unwrap_or("_form");
            Ok(Value::from(std::collections::BTreeMap::from([(
                field.to_string(),
                humanize(&m),
            )])))
        }
        other => Err(other.into()),
    }
}

// ----- signing in -------------------------------------------------------------

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// Only a local path: never a redirect to another site.
fn local_path(next: Option<&str>) -> Option<String> {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .map(str::to_string)
}

async fn login_page(s: WebSession, Query(q): Query<NextQuery>) -> Result<Response, WebError> {
    // The form's CSRF token binds to this session: store it if it is new.
    let page = s.page(
        "login.html",
        context! { next => local_path(q.next.as_deref()) },
    )?;
    Ok(s.store(&s.session, page))
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

async fn login(
    State(state): State<WebState>,
    s: WebSession,
    Form(f): Form<LoginForm>,
) -> Result<Response, WebError> {
    let users = state.web.users.clone();
    let (username, password) = (f.username.trim().to_string(), f.password);
    // Argon2 is slow on purpose: off the async threads.
    let user = tokio::task::spawn_blocking(move || users.verify(&username, &password))
        .await
        .map_err(ApiError::internal)?;
    let Some(user) = user else {
        let mut response = s.page(
            "login.html",
            context! {
                next => local_path(f.next.as_deref()),
                username => f.username,
                errors => context! { _form => "Unknown username or wrong password." },
            },
        )?;
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(response);
    };
    let home = if user.role == Role::Customer {
        "/shop"
    } else {
        "/console"
    };
    let to = local_path(f.next.as_deref()).unwrap_or_else(|| home.to_string());
    let session = state.web.keys.sign_in(&s.session, user);
    Ok(s.store(&session, see_other(&to)))
}

async fn logout(State(state): State<WebState>, s: WebSession) -> Response {
    s.store(&state.web.keys.fresh(), see_other("/login"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_messages_find_their_field() {
        assert_eq!(field_of("customer_email is required"), Some("email"));
        assert_eq!(field_of("shipping_address.city is required"), Some("city"));
        assert_eq!(
            field_of("line 1: quantity must be 1 to 10000, got 0"),
            Some("quantity")
        );
        assert_eq!(field_of("product CAP-1 already exists"), Some("sku"));
        assert_eq!(field_of("an order needs at least one line"), None);
        assert_eq!(
            humanize("shipping_address.line1 is required"),
            "Street and number is required"
        );
    }

    #[test]
    fn forms_decode_and_redirects_stay_local() {
        assert_eq!(
            form_pairs(b"csrf=a%2Bb&name=J+Doe&x"),
            vec![
                ("csrf".to_string(), "a+b".to_string()),
                ("name".to_string(), "J Doe".to_string()),
                ("x".to_string(), String::new()),
            ]
        );
        assert_eq!(local_path(Some("/shop/cart")), Some("/shop/cart".into()));
        assert_eq!(local_path(Some("//evil.example")), None);
        assert_eq!(local_path(Some("https://evil.example")), None);
        assert_eq!(url_escape("/shop?x=1&y"), "/shop%3Fx%3D1%26y");
    }
}
