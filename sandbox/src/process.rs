//! What the sandbox binary needs from its process, kept apart from the
//! shop's runtime crate because the sandbox plays an outside company:
//! [`Settings`] from `ORDERSAGA_SANDBOX_*` variables (through figment, like
//! the shop's loader), logging and the shutdown signal.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use figment::Figment;
use figment::providers::Serialized;
use serde::Deserialize;

/// The prefix of the sandbox's variables.
const PREFIX: &str = "ORDERSAGA_SANDBOX_";

/// Everything the sandbox can be told; each field has an
/// `ORDERSAGA_SANDBOX_*` variable (see [`Settings::from_vars`]). No
/// `Debug`: it holds the two secrets.
#[derive(Clone)]
pub struct Settings {
    /// Listen address of the binary ([`crate::serve`]).
    pub addr: String,
    /// SQLite URL of the sandbox's own database.
    pub database_url: String,
    /// Base URL in the links it hands out (approval page, self); default
    /// `http://{listen address}`.
    pub public_url: Option<String>,
    /// OAuth2 client id the shop must present.
    pub client_id: String,
    /// OAuth2 client secret.
    pub client_secret: String,
    /// Where webhooks go (the API's `/v1/payments/webhook`); `None`: nowhere.
    pub webhook_url: Option<String>,
    /// HMAC secret webhooks are signed with.
    pub webhook_secret: String,
    /// Lifetime of issued access tokens.
    pub token_ttl: Duration,
    /// Delivery attempts per webhook.
    pub webhook_attempts: u32,
    /// Wait before the first redelivery; doubles each time.
    pub webhook_backoff: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8090".to_string(),
            database_url: "sqlite://.data/sandbox.db?mode=rwc".to_string(),
            public_url: None,
            client_id: "sandbox-client".to_string(),
            client_secret: "sandbox-secret".to_string(),
            webhook_url: None,
            webhook_secret: "sandbox-webhook-secret".to_string(),
            token_ttl: Duration::from_secs(9 * 3600),
            webhook_attempts: 8,
            webhook_backoff: Duration::from_millis(200),
        }
    }
}

/// What the variables may set, named as the variables without the prefix.
#[derive(Deserialize)]
struct Vars {
    addr: Option<String>,
    database_url: Option<String>,
    public_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    token_ttl_secs: Option<u64>,
    webhook_attempts: Option<u32>,
}

/// A variable that does not fit.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct SettingsError {
    /// The variable.
    pub variable: String,
    /// What is wrong with it.
    pub problem: String,
}

impl Settings {
    /// [`Settings::from_vars`] over this process's environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// Defaults overridden by `ORDERSAGA_SANDBOX_ADDR`, `_DATABASE_URL`,
    /// `_PUBLIC_URL`, `_CLIENT_ID`, `_CLIENT_SECRET`, `_WEBHOOK_URL`,
    /// `_WEBHOOK_SECRET`, `_TOKEN_TTL_SECS`, `_WEBHOOK_ATTEMPTS`; an empty
    /// variable counts as unset.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        // All text, as given: figment converts numbers on extraction, and
        // a secret stays a string whatever it looks like.
        let given: BTreeMap<String, String> = vars
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .filter_map(|(k, v)| Some((k.strip_prefix(PREFIX)?.to_ascii_lowercase(), v)))
            .collect();
        let vars: Vars = Figment::from(Serialized::defaults(given))
            .extract_lossy()
            .map_err(|e| SettingsError {
                variable: format!("{PREFIX}{}", e.path.join("_").to_ascii_uppercase()),
                problem: e.kind.to_string(),
            })?;
        let mut s = Self::default();
        let Vars {
            addr,
            database_url,
            public_url,
            client_id,
            client_secret,
            webhook_url,
            webhook_secret,
            token_ttl_secs,
            webhook_attempts,
        } = vars;
        s.addr = addr.unwrap_or(s.addr);
        s.database_url = database_url.unwrap_or(s.database_url);
        s.public_url = public_url;
        s.client_id = client_id.unwrap_or(s.client_id);
        s.client_secret = client_secret.unwrap_or(s.client_secret);
        s.webhook_url = webhook_url;
        s.webhook_secret = webhook_secret.unwrap_or(s.webhook_secret);
        s.token_ttl = token_ttl_secs.map_or(s.token_ttl, Duration::from_secs);
        s.webhook_attempts = webhook_attempts.unwrap_or(s.webhook_attempts);
        Ok(s)
    }
}

/// Logs to stdout, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

/// A future that resolves on SIGINT or SIGTERM, whichever comes first;
/// fails at once when the handlers cannot be installed. Call it inside
/// the runtime.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn variables_override_the_defaults() {
        let s = Settings::from_vars(vars(&[
            ("ORDERSAGA_SANDBOX_ADDR", "0.0.0.0:9000"),
            ("ORDERSAGA_SANDBOX_CLIENT_SECRET", "12345"),
            (
                "ORDERSAGA_SANDBOX_WEBHOOK_URL",
                "http://shop/v1/payments/webhook",
            ),
            ("ORDERSAGA_SANDBOX_TOKEN_TTL_SECS", "60"),
            ("ORDERSAGA_SANDBOX_WEBHOOK_ATTEMPTS", "3"),
            ("ORDERSAGA_SANDBOX_PUBLIC_URL", ""),
            ("ORDERSAGA_WEBHOOK_SECRET", "the shop's, not ours"),
        ]))
        .unwrap();
        assert_eq!(s.addr, "0.0.0.0:9000");
        assert_eq!(s.client_secret, "12345");
        assert_eq!(s.client_id, "sandbox-client");
        assert_eq!(s.webhook_secret, "sandbox-webhook-secret");
        assert_eq!(
            s.webhook_url.as_deref(),
            Some("http://shop/v1/payments/webhook")
        );
        assert_eq!(s.public_url, None);
        assert_eq!(s.token_ttl, Duration::from_secs(60));
        assert_eq!(s.webhook_attempts, 3);
    }

    #[test]
    fn a_bad_number_names_its_variable() {
        let err = Settings::from_vars(vars(&[("ORDERSAGA_SANDBOX_TOKEN_TTL_SECS", "soon")]))
            .err()
            .unwrap();
        assert_eq!(err.variable, "ORDERSAGA_SANDBOX_TOKEN_TTL_SECS");
    }
}
