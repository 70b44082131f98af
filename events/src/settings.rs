//! What the event relay and the CLI can be told: [`EventSettings`], loaded
//! through the runtime's settings loader (`ORDERSAGA_NATS_*`,
//! `ORDERSAGA_EVENTS_*`; see `docs/events.md`).

use std::path::PathBuf;
use std::time::Duration;

use ordersaga_runtime::Secret;
use ordersaga_runtime::settings::{Load, SettingsError, set};
use serde::Deserialize;

/// How to reach NATS: a URL and, for a production cluster, credentials and
/// TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSettings {
    /// `nats://host:4222` (several comma-separated for a cluster;
    /// `tls://` requires TLS).
    pub url: String,
    /// A `.creds` file (JWT and nkey seed), as NATS accounts issue.
    pub creds_file: Option<PathBuf>,
    /// User and password.
    pub user: Option<String>,
    /// The password of [`Self::user`].
    pub password: Option<Secret>,
    /// A token instead of a user.
    pub token: Option<Secret>,
    /// Refuse to talk without TLS.
    pub require_tls: bool,
    /// PEM file of the CAs to trust besides the system's.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM files of a client certificate and its key (mutual TLS).
    pub tls_client_cert: Option<(PathBuf, PathBuf)>,
}

impl NatsSettings {
    /// A plain connection to `url`.
    pub fn at(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            creds_file: None,
            user: None,
            password: None,
            token: None,
            require_tls: false,
            tls_ca_file: None,
            tls_client_cert: None,
        }
    }
}

/// The JetStream stream the events go to, as created or updated at
/// start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// Stream name.
    pub name: String,
    /// Events older than this are dropped.
    pub max_age: Duration,
    /// Above this size the oldest events are dropped.
    pub max_bytes: i64,
    /// Copies kept (1 on a single server, 3 on a cluster).
    pub replicas: usize,
    /// How long the stream remembers event ids to drop a republished
    /// event (`Nats-Msg-Id`); must cover a relay's crash and take-over.
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            name: "SHOP_EVENTS".to_string(),
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_bytes: 1 << 30,
            replicas: 1,
            duplicate_window: Duration::from_secs(10 * 60),
        }
    }
}

/// How the relay reads the event outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelaySettings {
    /// Events published per round (acknowledgements awaited together).
    pub batch: u32,
    /// How often an empty outbox is polled.
    pub poll: Duration,
    /// How long the relay's lease lasts; a crashed relay's successor takes
    /// over after it (keep well below the stream's duplicate window).
    pub lease: Duration,
    /// How long published rows stay in the outbox (then the stream has them).
    pub keep: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch: 256,
            poll: Duration::from_millis(50),
            lease: Duration::from_secs(15),
            keep: Duration::from_secs(3600),
        }
    }
}

/// Everything about the events: `nats` is `None` unless
/// `ORDERSAGA_NATS_URL` is set, and then nothing is published and the
/// steps write no event rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventSettings {
    /// Where to publish, if anywhere.
    pub nats: Option<NatsSettings>,
    /// The stream.
    pub stream: StreamSettings,
    /// The relay.
    pub relay: RelaySettings,
}

/// The variables, without `ORDERSAGA_` (and the keys of `ordersaga.toml`).
#[derive(Deserialize)]
pub struct EventVars {
    nats_url: Option<String>,
    nats_creds_file: Option<PathBuf>,
    nats_user: Option<String>,
    nats_password: Option<Secret>,
    nats_token: Option<Secret>,
    nats_require_tls: Option<bool>,
    nats_tls_ca_file: Option<PathBuf>,
    nats_tls_cert_file: Option<PathBuf>,
    nats_tls_key_file: Option<PathBuf>,
    events_stream: Option<String>,
    events_max_age_secs: Option<u64>,
    events_max_bytes: Option<i64>,
    events_replicas: Option<usize>,
    events_duplicate_window_secs: Option<u64>,
    events_relay_batch: Option<u32>,
    events_relay_poll_ms: Option<u64>,
    events_relay_lease_ms: Option<u64>,
}

impl Load for EventSettings {
    type Given = EventVars;

    fn apply(&mut self, v: EventVars) {
        self.nats = v.nats_url.map(|url| NatsSettings {
            url,
            creds_file: v.nats_creds_file,
            user: v.nats_user,
            password: v.nats_password,
            token: v.nats_token,
            require_tls: v.nats_require_tls.unwrap_or(false),
            tls_ca_file: v.nats_tls_ca_file,
            tls_client_cert: v.nats_tls_cert_file.zip(v.nats_tls_key_file),
        });
        let s = &mut self.stream;
        set(&mut s.name, v.events_stream);
        set(
            &mut s.max_age,
            v.events_max_age_secs.map(Duration::from_secs),
        );
        set(&mut s.max_bytes, v.events_max_bytes);
        set(&mut s.replicas, v.events_replicas);
        set(
            &mut s.duplicate_window,
            v.events_duplicate_window_secs.map(Duration::from_secs),
        );
        let r = &mut self.relay;
        set(&mut r.batch, v.events_relay_batch);
        set(
            &mut r.poll,
            v.events_relay_poll_ms.map(Duration::from_millis),
        );
        set(
            &mut r.lease,
            v.events_relay_lease_ms.map(Duration::from_millis),
        );
    }

    fn check(&self) -> Result<(), SettingsError> {
        let invalid = |name: &str, problem: &str| SettingsError::Invalid {
            name: name.to_string(),
            problem: problem.to_string(),
        };
        if self.relay.lease >= self.stream.duplicate_window {
            return Err(invalid(
                "ORDERSAGA_EVENTS_RELAY_LEASE_MS",
                "must be shorter than ORDERSAGA_EVENTS_DUPLICATE_WINDOW_SECS",
            ));
        }
        if self.relay.batch == 0 {
            return Err(invalid(
                "ORDERSAGA_EVENTS_RELAY_BATCH",
                "expected at least 1",
            ));
        }
        let name_ok = !self.stream.name.is_empty()
            && self
                .stream
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(invalid(
                "ORDERSAGA_EVENTS_STREAM",
                "expected letters, digits, '_' or '-'",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ordersaga_runtime::settings::Sources;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<EventSettings, SettingsError> {
        EventSettings::from_sources(&Sources::default().vars(vars.iter().copied()))
    }

    #[test]
    fn unset_url_means_no_events() {
        let s = load(&[]).unwrap();
        assert_eq!(s.nats, None);
        assert_eq!(s.stream, StreamSettings::default());
    }

    #[test]
    fn credentials_and_tls_are_read_and_secrets_not_shown() {
        let s = load(&[
            ("ORDERSAGA_NATS_URL", "tls://nats.internal:4222"),
            ("ORDERSAGA_NATS_USER", "shop"),
            ("ORDERSAGA_NATS_PASSWORD", "hunter2"),
            ("ORDERSAGA_NATS_REQUIRE_TLS", "yes"),
            ("ORDERSAGA_NATS_TLS_CA_FILE", "/etc/ca.pem"),
            ("ORDERSAGA_NATS_TLS_CERT_FILE", "/etc/c.pem"),
            ("ORDERSAGA_NATS_TLS_KEY_FILE", "/etc/k.pem"),
            ("ORDERSAGA_EVENTS_MAX_AGE_SECS", "60"),
        ])
        .unwrap();
        let nats = s.nats.clone().unwrap();
        assert_eq!(nats.url, "tls://nats.internal:4222");
        assert!(nats.require_tls);
        assert_eq!(nats.password.as_ref().map(Secret::expose), Some("hunter2"));
        assert_eq!(
            nats.tls_client_cert,
            Some(("/etc/c.pem".into(), "/etc/k.pem".into()))
        );
        assert_eq!(s.stream.max_age, Duration::from_secs(60));
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn a_lease_longer_than_the_duplicate_window_is_refused() {
        let err = load(&[
            ("ORDERSAGA_EVENTS_RELAY_LEASE_MS", "700000"),
            ("ORDERSAGA_EVENTS_DUPLICATE_WINDOW_SECS", "600"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("ORDERSAGA_EVENTS_RELAY_LEASE_MS"));
        assert!(load(&[("ORDERSAGA_EVENTS_STREAM", "a.b")]).is_err());
    }
}
