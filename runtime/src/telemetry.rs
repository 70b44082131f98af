//! Logging and traces, set up once per process.
//!
//! Logs: `tracing` events filtered by `RUST_LOG` (else the process's
//! default filter) and written as text or, with `ORDERSAGA_LOG_FORMAT=json`
//! (`log_format` in the settings file), as one JSON object per line
//! carrying every open span's fields, so `grep <order_id>` finds an order's
//! lines across processes.
//!
//! Traces (off by default): with `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, the shop's own spans (targets
//! `ordersaga*`, down to `debug`, but not [`LOG_ONLY`]: requests, relay
//! messages, gateway calls, SMTP sends, database transactions) go over OTLP/gRPC to that endpoint
//! as service `OTEL_SERVICE_NAME` (default: the binary's name), and every
//! Temporal client made by [`crate::connection::connect`] carries the
//! SDK's `OpenTelemetryPlugin`: it puts the caller's trace context into
//! the Temporal headers of a workflow start, update or signal, opens
//! workflow spans on the worker and passes the context on in the headers
//! of each activity it schedules, so one order is one trace from the API's
//! `PlaceOrder` to the last activity on any worker ([`tracing_on`]).
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` keep it off.
//! Outside Temporal the context travels as W3C `traceparent`
//! ([`trace_context`], [`follow`]): in the gateway's HTTP requests and in
//! the outbox rows the relays deliver.

use std::collections::HashMap;
use std::sync::OnceLock;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;
use temporalio_sdk::opentelemetry::WorkflowIdGenerator;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

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
    /// `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` asks for a transport other
    /// than gRPC.
    #[error("OTLP protocol {0:?} is not supported: traces are exported over gRPC (\"grpc\")")]
    Protocol(String),
    /// The OTLP exporter could not be built (e.g. an invalid endpoint).
    #[error("OTLP trace exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Where traces go; [`TraceSettings::from_env`] reads the standard
/// OpenTelemetry variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSettings {
    /// The OTLP/gRPC endpoint, e.g. `http://localhost:4317`.
    pub endpoint: String,
    /// The `service.name` of this process's spans.
    pub service_name: String,
}

impl TraceSettings {
    /// From the process's environment; `None` (traces off) unless an
    /// endpoint is set. `default_service` names the service when
    /// `OTEL_SERVICE_NAME` does not.
    pub fn from_env(default_service: &str) -> Result<Option<Self>, TelemetryError> {
        Self::from_vars(|name| std::env::var(name).ok(), default_service)
    }

    /// [`Self::from_env`] over any variable lookup (tests).
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        default_service: &str,
    ) -> Result<Option<Self>, TelemetryError> {
        // The specification: an empty value is the same as unset.
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let off = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
        let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"));
        let (false, Some(endpoint)) = (off, endpoint) else {
            return Ok(None);
        };
        let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
        if let Some(protocol) = protocol.filter(|p| p != "grpc") {
            return Err(TelemetryError::Protocol(protocol));
        }
        Ok(Some(Self {
            endpoint,
            service_name: var("OTEL_SERVICE_NAME").unwrap_or_else(|| default_service.to_string()),
        }))
    }
}

/// The tracer provider, once traces are on: flushed by [`shutdown`].
static TRACES: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether this process exports traces (and so whether its Temporal
/// clients carry the SDK's OpenTelemetry plugin).
pub fn tracing_on() -> bool {
    TRACES.get().is_some()
}

/// Exports the spans still buffered and stops the exporter; call once, at
/// the end of `main`. Nothing happens with traces off.
pub async fn shutdown() {
    if let Some(provider) = TRACES.get().cloned() {
        // Off the runtime: the exporter's channel needs it to send.
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = flushed {
            eprintln!("flushing traces: {e}");
        }
    }
}

/// The current span's trace context as W3C headers (`traceparent`, and
/// `tracestate` when there is one): what an outgoing HTTP request or a
/// stored message carries. Empty with traces off.
pub fn trace_context() -> HashMap<String, String> {
    let mut carrier = HashMap::new();
    if tracing_on() {
        let context = tracing::Span::current().context();
        TraceContextPropagator::new().inject_context(&context, &mut carrier);
    }
    carrier
}

/// How the target of a span for the log only ends
/// (`target: concat!(module_path!(), "::log_only")`, so `RUST_LOG`'s
/// module directives still match it): a trace already has its counterpart
/// (the worker's `activity` span is the SDK's `RunActivity`), so
/// exporting it would only cost.
pub const LOG_ONLY: &str = "::log_only";

/// Adds `attributes` to the current OpenTelemetry span (the one a
/// [`LOG_ONLY`] span stands beside). Nothing happens with traces off.
pub fn annotate_current(attributes: impl IntoIterator<Item = opentelemetry::KeyValue>) {
    if tracing_on() {
        use opentelemetry::trace::TraceContextExt as _;
        let context = opentelemetry::Context::current();
        let span = context.span();
        for attribute in attributes {
            span.set_attribute(attribute);
        }
    }
}

/// Makes `span` a child of the W3C `traceparent` a message carried (from
/// [`trace_context`]); an absent or invalid one leaves it as it was.
pub fn follow(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent.filter(|_| tracing_on()) else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    use opentelemetry::trace::TraceContextExt as _;
    if parent.span().span_context().is_valid() {
        // Err only when the span is not recorded by the OTLP layer.
        let _ = span.set_parent(parent);
    }
}

/// Installs the global subscriber: format from the settings, filter from
/// `RUST_LOG` or else `default_filter` (e.g. `info,temporalio_sdk_core=warn`),
/// output to stdout; and traces, when the OpenTelemetry variables turn
/// them on ([`TraceSettings::from_env`]), named after the binary.
pub fn init(default_filter: &str) -> Result<(), TelemetryError> {
    let vars: LogVars = settings::load()?;
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem()?.to_str().map(str::to_string))
        .unwrap_or_else(|| "ordersaga".to_string());
    init_traced(
        vars.log_format.unwrap_or_default(),
        env_filter(default_filter),
        std::io::stdout,
        TraceSettings::from_env(&binary)?.as_ref(),
    )
}

/// `RUST_LOG`'s filter, or `default_filter` when it is unset or invalid.
pub fn env_filter(default_filter: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into())
}

/// [`init`] with everything given and traces off: tools that keep stdout
/// for results, tests that capture the lines.
pub fn init_with<W>(format: LogFormat, filter: EnvFilter, writer: W) -> Result<(), TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    init_traced(format, filter, writer, None)
}

/// [`init_with`], exporting traces as `traces` says (`None`: off).
/// `filter` applies to the log only: the traces take the shop's spans.
pub fn init_traced<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    traces: Option<&TraceSettings>,
) -> Result<(), TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::util::SubscriberInitExt;

    let log = tracing_subscriber::fmt::layer().with_writer(writer);
    let log = match format {
        LogFormat::Text => log.boxed(),
        LogFormat::Json => log.json().boxed(),
    };
    let mut layers = vec![log.with_filter(filter).boxed()];
    let provider = traces.map(exporter).transpose()?;
    if let Some(provider) = &provider {
        // Context activation (the layer's default) makes an entered span
        // the current OpenTelemetry context, which the SDK's plugin reads
        // when it starts a workflow or an activity's span.
        let shop = tracing_subscriber::filter::filter_fn(|meta| {
            meta.target().starts_with("ordersaga")
                && !meta.target().ends_with(LOG_ONLY)
                && *meta.level() <= tracing::Level::DEBUG
        });
        // Each span costs the worker CPU in proportion to its attributes:
        // the name, kind and the shop's fields say what a span is, so the
        // source location, thread and busy/idle times (eight attributes on
        // every span) stay out.
        layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("ordersaga"))
                .with_location(false)
                .with_threads(false)
                .with_tracked_inactivity(false)
                .with_target(false)
                .with_filter(shop)
                .boxed(),
        );
    }
    Registry::default().with(layers).try_init()?;
    if let Some(provider) = provider {
        opentelemetry::global::set_tracer_provider(provider.clone());
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let _ = TRACES.set(provider);
    }
    Ok(())
}

/// The tracer provider exporting to `settings.endpoint` in batches. Its
/// ids come from the SDK's [`WorkflowIdGenerator`], so a workflow's spans
/// keep their ids when the workflow replays (the plugin's requirement).
fn exporter(settings: &TraceSettings) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(settings.endpoint.clone())
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_id_generator(WorkflowIdGenerator::default())
        .with_resource(
            Resource::builder()
                .with_service_name(settings.service_name.clone())
                .build(),
        )
        .with_batch_exporter(exporter)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Option<TraceSettings>, TelemetryError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TraceSettings::from_vars(|name| vars.get(name).cloned(), "ordersaga-api")
    }

    #[test]
    fn traces_are_off_without_an_endpoint() -> Result<(), TelemetryError> {
        assert_eq!(settings(&[])?, None);
        assert_eq!(settings(&[("OTEL_SERVICE_NAME", "shop")])?, None);
        assert_eq!(settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])?, None);
        Ok(())
    }

    #[test]
    fn the_switches_turn_them_off() -> Result<(), TelemetryError> {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
        assert_eq!(settings(&[endpoint, ("OTEL_SDK_DISABLED", "TRUE")])?, None);
        assert_eq!(
            settings(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")])?,
            None
        );
        assert!(settings(&[endpoint, ("OTEL_SDK_DISABLED", "false")])?.is_some());
        Ok(())
    }

    #[test]
    fn the_traces_endpoint_wins_and_the_service_defaults_to_the_binary()
    -> Result<(), TelemetryError> {
        let both = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://all:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
        ])?;
        assert_eq!(
            both,
            Some(TraceSettings {
                endpoint: "http://traces:4317".into(),
                service_name: "ordersaga-api".into(),
            })
        );
        let named = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://all:4317"),
            ("OTEL_SERVICE_NAME", "shop-api"),
        ])?;
        assert_eq!(named.map(|s| s.service_name), Some("shop-api".into()));
        Ok(())
    }

    #[test]
    fn only_grpc_is_spoken() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        let http = settings(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]);
        assert!(matches!(http, Err(TelemetryError::Protocol(p)) if p == "http/protobuf"));
        assert!(settings(&[endpoint, ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")]).is_ok());
    }
}
