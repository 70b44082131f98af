//! What the API process can be told: [`ApiSettings`], loaded through the
//! runtime's settings loader (defaults, `ordersaga.toml`, `ORDERSAGA_*`
//! variables; see the README's table).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ordersaga_domain::names::ORDERS_TASK_QUEUE;
use ordersaga_domain::{CheckoutTiming, PaymentMode};
use ordersaga_runtime::Secret;
use ordersaga_runtime::auth::{AuthSettings, AuthVars};
use ordersaga_runtime::codec::CodecSettings;
use ordersaga_runtime::connection::TemporalSettings;
use ordersaga_runtime::settings::{Load, SettingsError, set};
use serde::Deserialize;

use crate::rate::RateSettings;
use crate::service::PaymentSettings;
use crate::tls::TlsSettings;
use crate::web::WebSettings;

/// The origins whose pages may call the codec server by default: the
/// local Temporal UI.
pub const DEFAULT_CORS_ORIGINS: &[&str] = &["http://127.0.0.1:8233", "http://localhost:8233"];

/// Everything the API process can be told; each field has an
/// `ORDERSAGA_*` variable (see the README).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Temporal connection overrides on top of the SDK's envconfig.
    pub temporal: TemporalSettings,
    /// The shop database: `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// Task queue the order sagas are started on.
    pub task_queue: String,
    /// gRPC listen address (port 0 picks a free port).
    pub grpc_addr: SocketAddr,
    /// HTTP listen address (port 0 picks a free port).
    pub http_addr: SocketAddr,
    /// Create the demo catalog at start-up if missing.
    pub seed_demo: bool,
    /// Payment mode of new orders and the webhook secret.
    pub payment: PaymentSettings,
    /// How long in-flight requests get to finish once shutdown is asked;
    /// those still running then are dropped.
    pub graceful_shutdown: Duration,
    /// Whether catalog changes write their domain events for the workers'
    /// relay to publish: on when `ORDERSAGA_NATS_URL` is set (the API only
    /// writes them; a worker publishes).
    pub publish_events: bool,
    /// How callers' bearer tokens are verified (required).
    pub auth: AuthSettings,
    /// `PlaceOrder`'s rate limit per customer.
    pub place_order_rate: RateSettings,
    /// Serve both listeners over TLS with this certificate.
    pub tls: Option<TlsSettings>,
    /// Origins whose pages may call the codec server (the Temporal UI's).
    pub codec_cors_origins: Vec<String>,
    /// The shop's and the console's pages: users, sessions, the Temporal
    /// UI's address.
    pub web: WebSettings,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            temporal: TemporalSettings::default(),
            database_url: "sqlite://.data/ordersaga.db?mode=rwc".to_string(),
            task_queue: ORDERS_TASK_QUEUE.to_string(),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            seed_demo: false,
            payment: PaymentSettings::default(),
            graceful_shutdown: Duration::from_secs(10),
            publish_events: false,
            auth: AuthSettings::default(),
            place_order_rate: RateSettings::default(),
            tls: None,
            codec_cors_origins: DEFAULT_CORS_ORIGINS.iter().map(|o| o.to_string()).collect(),
            web: WebSettings::default(),
        }
    }
}

/// `ORDERSAGA_PAYMENT_MODE`.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum ModeName {
    /// Simulated payments: approved at once.
    Simulated,
    /// Checkout through the payment gateway.
    Checkout,
}

/// The API's settings as given, named as the variables without
/// `ORDERSAGA_` (and as the keys of `ordersaga.toml`).
#[derive(Deserialize)]
pub struct ApiVars {
    database_url: Option<String>,
    task_queue: Option<String>,
    grpc_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    seed_demo: Option<bool>,
    payment_mode: Option<ModeName>,
    payment_deadline_secs: Option<u64>,
    payment_poll_secs: Option<u64>,
    payment_link_wait_ms: Option<u64>,
    webhook_secret: Option<Secret>,
    graceful_shutdown_ms: Option<u64>,
    nats_url: Option<String>,
    place_order_per_minute: Option<u32>,
    place_order_burst: Option<u32>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    codec_keys: Option<Secret>,
    codec_keys_file: Option<PathBuf>,
    codec_cors_origins: Option<String>,
    web_users_file: Option<PathBuf>,
    web_session_key: Option<Secret>,
    web_session_ttl_secs: Option<u64>,
    temporal_ui_url: Option<String>,
    #[serde(flatten)]
    auth: AuthVars,
}

// Temporal's own `TEMPORAL_*` variables are read by envconfig when
// connecting, not here.
impl Load for ApiSettings {
    type Given = ApiVars;

    fn apply(&mut self, v: ApiVars) {
        let s = self;
        set(&mut s.database_url, v.database_url);
        set(&mut s.task_queue, v.task_queue);
        set(&mut s.grpc_addr, v.grpc_addr);
        set(&mut s.http_addr, v.http_addr);
        set(&mut s.seed_demo, v.seed_demo);
        if let Some(ModeName::Checkout) = v.payment_mode {
            let default = CheckoutTiming::default();
            s.payment.mode = PaymentMode::Checkout(CheckoutTiming {
                deadline_secs: v.payment_deadline_secs.unwrap_or(default.deadline_secs),
                poll_secs: v.payment_poll_secs.unwrap_or(default.poll_secs),
            });
        }
        set(
            &mut s.payment.link_wait,
            v.payment_link_wait_ms.map(Duration::from_millis),
        );
        s.payment.webhook_secret = v.webhook_secret;
        set(
            &mut s.graceful_shutdown,
            v.graceful_shutdown_ms.map(Duration::from_millis),
        );
        s.publish_events = v.nats_url.is_some();
        set(&mut s.place_order_rate.per_minute, v.place_order_per_minute);
        set(&mut s.place_order_rate.burst, v.place_order_burst);
        match (v.tls_cert, v.tls_key) {
            (None, None) => {}
            (cert, key) => {
                s.tls = Some(TlsSettings {
                    cert: cert.unwrap_or_default(),
                    key: key.unwrap_or_default(),
                });
            }
        }
        if let Some(origins) = v.codec_cors_origins {
            s.codec_cors_origins = origins
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect();
        }
        if v.web_users_file.is_some() {
            s.web.users_file = v.web_users_file;
        }
        if v.web_session_key.is_some() {
            s.web.session_key = v.web_session_key;
        }
        set(
            &mut s.web.session_ttl,
            v.web_session_ttl_secs.map(Duration::from_secs),
        );
        set(&mut s.web.temporal_ui_url, v.temporal_ui_url);
        s.auth.apply(v.auth);
        s.temporal.codec = CodecSettings {
            keys: v.codec_keys,
            keys_file: v.codec_keys_file,
        };
    }

    fn check(&self) -> Result<(), SettingsError> {
        self.auth.check()?;
        if let Some(tls) = &self.tls
            && (tls.cert.as_os_str().is_empty() || tls.key.as_os_str().is_empty())
        {
            return Err(SettingsError::Invalid {
                name: "ORDERSAGA_TLS_CERT, ORDERSAGA_TLS_KEY".into(),
                problem: "set both or neither".into(),
            });
        }
        self.temporal.codec.check()
    }
}

#[cfg(test)]
mod tests {
    use ordersaga_runtime::settings::{SettingsError, Sources};

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<ApiSettings, SettingsError> {
        ApiSettings::from_sources(&Sources::default().vars(vars.iter().copied()))
    }

    #[test]
    fn no_variables_give_the_defaults() {
        let s = load(&[]).unwrap();
        assert_eq!(format!("{s:?}"), format!("{:?}", ApiSettings::default()));
        assert_eq!(s.payment.mode, PaymentMode::Simulated);
        assert!(!s.publish_events, "no NATS URL: no events written");
    }

    #[test]
    fn the_web_pages_variables_land_in_their_settings() {
        let s = load(&[
            ("ORDERSAGA_WEB_USERS_FILE", "/etc/shop/users.json"),
            ("ORDERSAGA_WEB_SESSION_KEY", "a-session-key"),
            ("ORDERSAGA_WEB_SESSION_TTL_SECS", "600"),
            ("ORDERSAGA_TEMPORAL_UI_URL", "https://cloud.example/ui"),
        ])
        .unwrap();
        assert_eq!(
            s.web.users_file,
            Some(PathBuf::from("/etc/shop/users.json"))
        );
        assert_eq!(
            s.web.session_key.as_ref().map(Secret::expose),
            Some("a-session-key")
        );
        assert_eq!(s.web.session_ttl, Duration::from_secs(600));
        assert_eq!(s.web.temporal_ui_url, "https://cloud.example/ui");
        assert!(
            !format!("{s:?}").contains("a-session-key"),
            "the key is not printed"
        );
    }

    #[test]
    fn every_documented_variable_lands_in_its_setting() {
        let s = load(&[
            ("ORDERSAGA_DATABASE_URL", "postgres://db/shop"),
            ("ORDERSAGA_TASK_QUEUE", "orders-b"),
            ("ORDERSAGA_GRPC_ADDR", "0.0.0.0:1"),
            ("ORDERSAGA_HTTP_ADDR", "0.0.0.0:2"),
            ("ORDERSAGA_SEED_DEMO", "yes"),
            ("ORDERSAGA_PAYMENT_MODE", "checkout"),
            ("ORDERSAGA_PAYMENT_DEADLINE_SECS", "60"),
            ("ORDERSAGA_PAYMENT_POLL_SECS", "5"),
            ("ORDERSAGA_PAYMENT_LINK_WAIT_MS", "250"),
            ("ORDERSAGA_WEBHOOK_SECRET", "whsec"),
            ("ORDERSAGA_GRACEFUL_SHUTDOWN_MS", "1500"),
            ("ORDERSAGA_NATS_URL", "nats://127.0.0.1:4222"),
            ("ORDERSAGA_PLACE_ORDER_PER_MINUTE", "120"),
            ("ORDERSAGA_PLACE_ORDER_BURST", "40"),
            ("ORDERSAGA_TLS_CERT", "/etc/shop/cert.pem"),
            ("ORDERSAGA_TLS_KEY", "/etc/shop/key.pem"),
            ("ORDERSAGA_AUTH_ISSUER", "https://idp.example"),
            ("ORDERSAGA_AUTH_AUDIENCE", "shop-api"),
            (
                "ORDERSAGA_AUTH_HS256_SECRET",
                "hs256-secret-for-tests-32-bytes-long",
            ),
        ])
        .unwrap();
        assert!(s.publish_events);
        assert_eq!(s.database_url, "postgres://db/shop");
        assert_eq!(s.task_queue, "orders-b");
        assert_eq!(s.grpc_addr, "0.0.0.0:1".parse().unwrap());
        assert_eq!(s.http_addr, "0.0.0.0:2".parse().unwrap());
        assert!(s.seed_demo);
        assert_eq!(
            s.payment.mode,
            PaymentMode::Checkout(CheckoutTiming {
                deadline_secs: 60,
                poll_secs: 5
            })
        );
        assert_eq!(s.payment.link_wait, Duration::from_millis(250));
        assert_eq!(
            s.payment.webhook_secret.as_ref().map(Secret::expose),
            Some("whsec")
        );
        assert_eq!(s.graceful_shutdown, Duration::from_millis(1500));
        assert!(!format!("{s:?}").contains("whsec"));
        assert_eq!(
            s.place_order_rate,
            RateSettings {
                per_minute: 120,
                burst: 40
            }
        );
        assert_eq!(
            s.tls,
            Some(TlsSettings {
                cert: "/etc/shop/cert.pem".into(),
                key: "/etc/shop/key.pem".into()
            })
        );
        assert_eq!(s.auth.issuer, "https://idp.example");
        assert_eq!(s.auth.audience, "shop-api");
        assert_eq!(
            s.auth.keys,
            Some(ordersaga_runtime::auth::KeySource::Hs256(Secret::new(
                "hs256-secret-for-tests-32-bytes-long"
            )))
        );
        assert!(!format!("{s:?}").contains("hs256-secret"));

        // The timing only matters in checkout mode; `1`/`true` seed too.
        let s = load(&[
            ("ORDERSAGA_PAYMENT_MODE", "simulated"),
            ("ORDERSAGA_PAYMENT_DEADLINE_SECS", "60"),
            ("ORDERSAGA_SEED_DEMO", "1"),
        ])
        .unwrap();
        assert_eq!(s.payment.mode, PaymentMode::Simulated);
        assert!(s.seed_demo);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("ORDERSAGA_PAYMENT_MODE", "cash"),
            ("ORDERSAGA_GRPC_ADDR", "localhost"),
            ("ORDERSAGA_PAYMENT_DEADLINE_SECS", "soon"),
            ("ORDERSAGA_GRACEFUL_SHUTDOWN_MS", "-1"),
            ("ORDERSAGA_PLACE_ORDER_PER_MINUTE", "lots"),
        ] {
            let err = load(&[(name, value)]).unwrap_err();
            assert!(err.to_string().starts_with(&format!("{name}: ")), "{err}");
        }
        let err = load(&[("ORDERSAGA_TLS_CERT", "/only/the/cert.pem")]).unwrap_err();
        assert!(err.to_string().contains("set both or neither"), "{err}");
    }
}
