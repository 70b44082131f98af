//! Logging, set up once per process: `tracing` events filtered by
//! `RUST_LOG` (else the process's default filter) and written as text or,
//! with `ORDERSAGA_LOG_FORMAT=json` (`log_format` in the settings file), as
//! one JSON object per line carrying every open span's fields, so
//! `grep <order_id>` finds an order's lines across processes.

use serde::Deserialize;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::settings::{self, SettingsError};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, with the current span and the span list.
    Json,
}

#[derive(Deserialize)]
struct LogVars {
    log_format: Option<LogFormat>,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `ORDERSAGA_LOG_FORMAT` (or the settings file) is invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// Something else installed a global subscriber first.
    #[error("a tracing subscriber is already installed")]
    AlreadySet(#[from] tracing_subscriber::util::TryInitError),
}

/// Installs the global subscriber: format from the settings, filter from
/// `RUST_LOG` or else `default_filter` (e.g. `info,temporalio_sdk_core=warn`),
/// output to stdout.
pub fn init(default_filter: &str) -> Result<(), TelemetryError> {
    let vars: LogVars = settings::load()?;
    init_with(
        vars.log_format.unwrap_or_default(),
        env_filter(default_filter),
        std::io::stdout,
    )
}

/// `RUST_LOG`'s filter, or `default_filter` when it is unset or invalid.
pub fn env_filter(default_filter: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into())
}

/// [`init`] with everything given: tools that keep stdout for results,
/// tests that capture the lines.
pub fn init_with<W>(format: LogFormat, filter: EnvFilter, writer: W) -> Result<(), TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::util::SubscriberInitExt;

    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.finish().try_init()?,
        LogFormat::Json => builder.json().finish().try_init()?,
    }
    Ok(())
}
