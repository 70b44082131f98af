//! How every ordersaga process reaches Temporal: the SDK's envconfig
//! (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, TLS
//! variables, `temporal.toml` profiles), optionally overridden per process,
//! with the shop's payload encryption ([`crate::codec`]) on every client and
//! so on every worker made from one, and, when traces are on
//! ([`crate::telemetry::tracing_on`]), the SDK's OpenTelemetry plugin, which
//! carries the trace context through Temporal headers.

use temporalio_client::envconfig::LoadClientConfigProfileOptions;
use temporalio_client::{Client, ClientOptions, Connection, Url};
use temporalio_sdk::opentelemetry::OpenTelemetryPlugin;

use crate::codec::{CodecError, CodecSettings, data_converter};

/// Overrides on top of envconfig; `None` keeps what envconfig says
/// (default `localhost:7233`, namespace `default`).
#[derive(Debug, Clone, Default)]
pub struct TemporalSettings {
    /// `host:port` or URL of the Temporal frontend.
    pub address: Option<String>,
    /// The namespace.
    pub namespace: Option<String>,
    /// Identity shown in the Temporal UI for this process.
    pub identity: Option<String>,
    /// The payload encryption keys (none: payloads in clear).
    pub codec: CodecSettings,
}

/// Why a Temporal client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The envconfig profile or variables are invalid.
    #[error("invalid Temporal client configuration: {0}")]
    Config(String),
    /// The key ring could not be loaded.
    #[error("payload encryption: {0}")]
    Codec(#[from] CodecError),
    /// The address is not a URL.
    #[error("invalid Temporal address {0:?}")]
    Address(String),
    /// The server could not be reached.
    #[error("cannot connect to Temporal at {address}")]
    Connect {
        /// Where we tried.
        address: String,
        /// The transport's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Connects a client as envconfig and `settings` say.
pub async fn connect(settings: &TemporalSettings) -> Result<Client, ConnectError> {
    // ConfigError is !Send: render it here.
    let (mut conn, opts) =
        ClientOptions::load_from_config(LoadClientConfigProfileOptions::default())
            .map_err(|e| ConnectError::Config(e.to_string()))?;
    if let Some(address) = &settings.address {
        let scheme = if conn.tls_options.is_some() {
            "https"
        } else {
            "http"
        };
        let url = if address.contains("://") {
            address.clone()
        } else {
            format!("{scheme}://{address}")
        };
        conn.target = Url::parse(&url).map_err(|_| ConnectError::Address(address.clone()))?;
    }
    let namespace = settings.namespace.clone().unwrap_or(opts.namespace);
    if let Some(identity) = &settings.identity {
        conn.identity = identity.clone();
    }
    let ring = settings.codec.key_ring()?;
    match &ring {
        Some(ring) => tracing::info!(current_key = ring.current_id(), "payloads encrypted"),
        None => tracing::warn!(
            "no payload key ring (ORDERSAGA_CODEC_KEYS or ORDERSAGA_CODEC_KEYS_FILE): \
             payloads, customers' emails and addresses included, reach Temporal in clear"
        ),
    }
    let mut options = ClientOptions::new(namespace).data_converter(data_converter(ring));
    if crate::telemetry::tracing_on() {
        // Experimental in the SDK; the W3C context in the `_tracer-data`
        // header, as the other Temporal SDKs read it (docs/tuning.md).
        options = options.plugin(OpenTelemetryPlugin::builder().build());
    }
    let opts = options.build();
    let address = conn.target.to_string();
    let connection = Connection::connect(conn)
        .await
        .map_err(|e| ConnectError::Connect {
            address: address.clone(),
            source: Box::new(e),
        })?;
    Client::new(connection, opts).map_err(|e| ConnectError::Connect {
        address,
        source: Box::new(e),
    })
}
