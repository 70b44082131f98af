//! The NATS side: connecting with the configured credentials and TLS, and
//! the JetStream stream every event goes to.

use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions};

use crate::EventsError;
use crate::settings::{NatsSettings, StreamSettings};

/// Every subject the shop publishes on (`shop.orders.<id>.<Event>`,
/// `shop.catalog.<sku>.<Event>`).
pub const ALL_SUBJECTS: &str = "shop.>";

/// Connects to NATS. With `wait` false the client comes back at once and
/// connects in the background (a worker must start while NATS is down:
/// events wait in the outbox); with `wait` true a server that does not
/// answer is an error (the CLI).
pub async fn connect(s: &NatsSettings, name: &str, wait: bool) -> Result<Client, EventsError> {
    let mut options = ConnectOptions::new().name(name).require_tls(s.require_tls);
    if !wait {
        options = options.retry_on_initial_connect();
    }
    if let Some(path) = &s.creds_file {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| EventsError::Credentials(path.clone(), e))?;
    }
    if let (Some(user), Some(password)) = (&s.user, &s.password) {
        options = options.user_and_password(user.clone(), password.expose().to_string());
    }
    if let Some(token) = &s.token {
        options = options.token(token.expose().to_string());
    }
    if let Some(ca) = &s.tls_ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &s.tls_client_cert {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    let servers: Vec<&str> = s.url.split(',').map(str::trim).collect();
    options
        .connect(servers)
        .await
        .map_err(|e| EventsError::Connect(e.to_string()))
}

/// The stream's configuration: every `shop.>` subject, kept by limits
/// (age, size), file storage, the oldest events dropped first.
pub fn stream_config(s: &StreamSettings) -> stream::Config {
    stream::Config {
        name: s.name.clone(),
        description: Some("ordersaga domain events (CloudEvents 1.0 JSON)".to_string()),
        subjects: vec![ALL_SUBJECTS.to_string()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::Old,
        max_age: s.max_age,
        max_bytes: s.max_bytes,
        num_replicas: s.replicas,
        duplicate_window: s.duplicate_window,
        ..stream::Config::default()
    }
}

/// Creates the stream, or brings an existing one's limits to the
/// configured ones. A stream that cannot be made so (another retention,
/// subjects taken by another stream) is an error naming it.
pub async fn ensure_stream(
    js: &jetstream::Context,
    s: &StreamSettings,
) -> Result<stream::Info, EventsError> {
    js.create_or_update_stream(stream_config(s))
        .await
        .map_err(|e| EventsError::Stream(s.name.clone(), e.to_string()))
}
