//! The web pages' router without sockets or a Temporal server: the session
//! cookie's attributes, signing in and out, the CSRF check on every POST,
//! and the access policy behind the pages, through
//! `tower::ServiceExt::oneshot` over a store on a temporary SQLite file.

use std::sync::Arc;

use anyhow::Context;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use futures::FutureExt;
use ordersaga_api::catalog::CatalogService;
use ordersaga_api::http::AppState;
use ordersaga_api::rate::{PlaceOrderLimit, RateSettings};
use ordersaga_api::service::{OrderService, PaymentSettings};
use ordersaga_api::web::users::WebUser;
use ordersaga_api::web::{Web, WebSettings, router};
use ordersaga_domain::{Currency, Money, Sku};
use ordersaga_runtime::Secret;
use ordersaga_runtime::auth::{AuthSettings, Authenticator, Role};
use ordersaga_store::{NewProduct, Store};
use temporalio_client::callback_based::{CallbackBasedGrpcService, GrpcRequest};
use temporalio_client::tonic::Status;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};
use tower::ServiceExt;

const AUTH_SECRET: &str = "router-test-hs256-secret-32-bytes-long";

/// A Temporal client that answers every call UNIMPLEMENTED: these routes
/// must not reach Temporal.
async fn offline_temporal() -> anyhow::Result<Client> {
    let service = CallbackBasedGrpcService {
        callback: Arc::new(|request: GrpcRequest| {
            async move {
                Err(match request.rpc.as_str() {
                    // What a server without the call answers: the client
                    // connects without capabilities.
                    "GetSystemInfo" => Status::unimplemented("unknown method GetSystemInfo"),
                    rpc => Status::unimplemented(format!("{rpc}: no Temporal in router tests")),
                })
            }
            .boxed()
        }),
    };
    let options = ConnectionOptions::new(Url::parse("http://127.0.0.1:7233")?)
        .service_override(service)
        .dns_load_balancing(None)
        .build();
    let connection = Connection::connect(options).await?;
    Ok(Client::new(
        connection,
        ClientOptions::new("default").build(),
    )?)
}

struct App {
    router: Router,
    store: Store,
    _dir: tempfile::TempDir,
}

async fn app(tls: bool) -> anyhow::Result<App> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("shop.db").display());
    let store = Store::connect(&url).await?;
    store
        .catalog()
        .create(&NewProduct {
            sku: Sku::parse("MUG-1")?,
            name: "Mug".into(),
            price: Money::new(1250, Currency::parse("EUR")?),
            low_stock_threshold: 0,
        })
        .await?;
    let orders = OrderService::new(
        store.clone(),
        offline_temporal().await?,
        "orders".to_string(),
        PaymentSettings::default(),
        PlaceOrderLimit::new(RateSettings {
            per_minute: 0,
            burst: 0,
        }),
    );
    let state = AppState {
        orders,
        catalog: CatalogService::new(store.clone()),
        auth: Authenticator::new(&AuthSettings::hs256(Secret::new(AUTH_SECRET))).await?,
    };
    let settings = WebSettings {
        users: vec![
            WebUser::with_password("alice", "pw-alice", Role::Customer, Some("alice"))?,
            WebUser::with_password("mia", "pw-mia", Role::Merchant, None)?,
        ],
        ..WebSettings::default()
    };
    let web = Web::new(&settings, tls, "default".into())?;
    Ok(App {
        router: router(state, web),
        store,
        _dir: dir,
    })
}

async fn body(response: Response) -> anyhow::Result<String> {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    Ok(String::from_utf8(bytes.to_vec())?)
}

/// The `name=value` of the session cookie a response sets.
fn session_cookie(response: &Response) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("ordersaga_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
}

/// The value of the first hidden `csrf` field of a page.
fn csrf_of(page: &str) -> Option<String> {
    let at = page.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(page[at..].split('"').next()?.to_string())
}

fn form(uri: &str, cookie: &str, body: &str) -> anyhow::Result<Request<Body>> {
    Ok(Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie)
        .body(Body::from(body.to_string()))?)
}

impl App {
    async fn send(&self, request: Request<Body>) -> anyhow::Result<Response> {
        Ok(self.router.clone().oneshot(request).await?)
    }

    /// Opens the sign-in page: its cookie and CSRF token.
    async fn login_page(&self) -> anyhow::Result<(String, String)> {
        let r = self
            .send(Request::get("/login").body(Body::empty())?)
            .await?;
        anyhow::ensure!(r.status() == StatusCode::OK, "login page: {}", r.status());
        let cookie = session_cookie(&r).context("a session cookie")?;
        let csrf = csrf_of(&body(r).await?).context("a CSRF field")?;
        Ok((cookie, csrf))
    }

    /// Signs in: the new cookie and the CSRF token of its pages.
    async fn sign_in(&self, user: &str) -> anyhow::Result<(String, String)> {
        let (cookie, csrf) = self.login_page().await?;
        let r = self
            .send(form(
                "/login",
                &cookie,
                &format!("csrf={csrf}&username={user}&password=pw-{user}"),
            )?)
            .await?;
        anyhow::ensure!(
            r.status() == StatusCode::SEE_OTHER,
            "sign-in: {}",
            r.status()
        );
        let cookie = session_cookie(&r).context("a new session cookie")?;
        let page = self
            .send(
                Request::get("/shop/cart")
                    .header(header::COOKIE, &cookie)
                    .body(Body::empty())?,
            )
            .await?;
        let csrf = csrf_of(&body(page).await?).context("a CSRF field")?;
        Ok((cookie, csrf))
    }
}

#[tokio::test]
async fn the_session_cookie_is_http_only_same_site_and_secure_over_tls() -> anyhow::Result<()> {
    let plain = app(false).await?;
    let r = plain
        .send(Request::get("/login").body(Body::empty())?)
        .await?;
    let cookie = r
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        cookie.contains("; HttpOnly") && cookie.contains("; SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "{cookie}");
    let tls = app(true).await?;
    let r = tls
        .send(Request::get("/login").body(Body::empty())?)
        .await?;
    let cookie = r
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    Ok(())
}

#[tokio::test]
async fn pages_need_a_sign_in_and_a_wrong_password_is_refused() -> anyhow::Result<()> {
    let app = app(false).await?;
    let r = app
        .send(Request::get("/shop/cart").body(Body::empty())?)
        .await?;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok()),
        Some("/login?next=/shop/cart")
    );
    let (cookie, csrf) = app.login_page().await?;
    let r = app
        .send(form(
            "/login",
            &cookie,
            &format!("csrf={csrf}&username=alice&password=nope"),
        )?)
        .await?;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        session_cookie(&r).is_none(),
        "no session for a wrong password"
    );
    assert!(
        body(r)
            .await?
            .contains("Unknown username or wrong password.")
    );
    Ok(())
}

#[tokio::test]
async fn every_post_without_the_sessions_csrf_token_is_refused() -> anyhow::Result<()> {
    let app = app(false).await?;
    // Signing in needs the sign-in page's token.
    let (cookie, _) = app.login_page().await?;
    let r = app
        .send(form("/login", &cookie, "username=alice&password=pw-alice")?)
        .await?;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(session_cookie(&r).is_none());
    assert!(body(r).await?.contains("This form has expired"));

    let (cookie, csrf) = app.sign_in("alice").await?;
    for (uri, fields) in [
        ("/shop/cart", "sku=MUG-1&quantity=1"),
        ("/shop/checkout", "key=k&email=a%40example.com"),
        ("/logout", ""),
        (
            "/console/products",
            "sku=X-1&name=x&price=1&currency=EUR&threshold=0",
        ),
    ] {
        let r = app.send(form(uri, &cookie, fields)?).await?;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{uri}");
        let r = app
            .send(form(uri, &cookie, &format!("{fields}&csrf=forged"))?)
            .await?;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{uri}");
    }
    // The token of another session does not pass either.
    let (other, _) = app.sign_in("alice").await?;
    let r = app
        .send(form(
            "/shop/cart",
            &other,
            &format!("sku=MUG-1&quantity=1&csrf={csrf}"),
        )?)
        .await?;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // With it, the same post works.
    let r = app
        .send(form(
            "/shop/cart",
            &cookie,
            &format!("sku=MUG-1&quantity=1&csrf={csrf}"),
        )?)
        .await?;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(session_cookie(&r).is_some(), "the cart is stored");
    Ok(())
}

#[tokio::test]
async fn the_console_follows_the_access_policy_and_bad_input_stores_nothing() -> anyhow::Result<()>
{
    let app = app(false).await?;
    let (cookie, csrf) = app.sign_in("alice").await?;
    let r = app
        .send(
            Request::get("/console/products")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())?,
        )
        .await?;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .send(form(
            "/console/products",
            &cookie,
            &format!("sku=X-1&name=x&price=1&currency=EUR&threshold=0&csrf={csrf}"),
        )?)
        .await?;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let (cookie, csrf) = app.sign_in("mia").await?;
    let r = app
        .send(form(
            "/console/products",
            &cookie,
            &format!("sku=CAP-1&name=Cap&price=abc&currency=EUR&threshold=0&csrf={csrf}"),
        )?)
        .await?;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let page = body(r).await?;
    assert!(page.contains("id=\"price-error\""), "{page}");
    assert!(!page.contains("\"error\":"), "no raw JSON: {page}");
    assert!(
        app.store
            .catalog()
            .get(&Sku::parse("CAP-1")?)
            .await?
            .is_none()
    );
    Ok(())
}
