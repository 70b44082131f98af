//! An OTLP/gRPC trace receiver: what the shop's exporter
//! (`ordersaga_runtime::telemetry`, OTLP over gRPC only) sends to a
//! collector, received in this process. The trace test keeps every span
//! and reads the tree back ([`Receiver::keeping`]); the bench's
//! `ordersaga-otlp-sink` only counts them ([`Receiver::counting`]), so a
//! long run does not hold every span in memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use serde::Serialize;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// One received span, flattened.
#[derive(Debug, Clone)]
pub struct Received {
    /// The `service.name` of the resource that sent it.
    pub service: String,
    /// The trace's 16-byte id.
    pub trace_id: Vec<u8>,
    /// The span's 8-byte id.
    pub span_id: Vec<u8>,
    /// Empty for a root span.
    pub parent: Vec<u8>,
    /// The span's name.
    pub name: String,
    /// String and integer attributes, integers as text.
    pub attributes: HashMap<String, String>,
}

/// What a receiver has been sent so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Export calls answered.
    pub requests: u64,
    /// Spans received.
    pub spans: u64,
    /// Distinct trace ids among them.
    pub traces: u64,
    /// Spans per `service.name`.
    pub services: BTreeMap<String, u64>,
    /// Spans per span name (e.g. `orders.place`: one store call).
    pub names: BTreeMap<String, u64>,
}

#[derive(Default)]
struct State {
    keep: bool,
    kept: Vec<Received>,
    trace_ids: HashSet<Vec<u8>>,
    counts: Counts,
}

/// The trace service: counts what it is sent and, when keeping, keeps it.
/// Clones share the state.
#[derive(Clone, Default)]
pub struct Receiver(Arc<Mutex<State>>);

/// A resource's or a span's string and integer attributes.
pub fn text(attributes: &[KeyValue]) -> HashMap<String, String> {
    attributes
        .iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some((kv.key.clone(), s.clone())),
            AnyValue::IntValue(i) => Some((kv.key.clone(), i.to_string())),
            _ => None,
        })
        .collect()
}

impl Receiver {
    /// A receiver that keeps every span ([`Self::spans`]).
    pub fn keeping() -> Self {
        let receiver = Self::default();
        receiver.state().keep = true;
        receiver
    }

    /// A receiver that only counts.
    pub fn counting() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent under a panic elsewhere: every update
        // is a push or an increment.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every span kept so far (none unless [`Self::keeping`]).
    pub fn spans(&self) -> Vec<Received> {
        self.state().kept.clone()
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.state().counts.clone()
    }

    /// Takes one export request in, as the gRPC service does.
    pub fn receive(&self, request: ExportTraceServiceRequest) {
        let mut state = self.state();
        state.counts.requests += 1;
        for resource_spans in request.resource_spans {
            let resource = resource_spans
                .resource
                .map(|r| text(&r.attributes))
                .unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for span in resource_spans
                .scope_spans
                .into_iter()
                .flat_map(|scope| scope.spans)
            {
                state.counts.spans += 1;
                *state.counts.services.entry(service.clone()).or_default() += 1;
                *state.counts.names.entry(span.name.clone()).or_default() += 1;
                if !state.trace_ids.contains(&span.trace_id) {
                    state.trace_ids.insert(span.trace_id.clone());
                    state.counts.traces += 1;
                }
                if state.keep {
                    state.kept.push(Received {
                        service: service.clone(),
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent: span.parent_span_id,
                        name: span.name,
                        attributes: text(&span.attributes),
                    });
                }
            }
        }
    }

    /// Answers OTLP/gRPC trace exports on `listener` until `shutdown`
    /// completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(self))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
            .await
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.receive(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::AnyValue as Any;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;

    fn request(service: &str, spans: &[(u8, u8, u8)]) -> ExportTraceServiceRequest {
        let resource = Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(Any {
                    value: Some(AnyValue::StringValue(service.into())),
                }),
                ..KeyValue::default()
            }],
            ..Resource::default()
        };
        let spans = spans
            .iter()
            .map(|&(trace, span, parent)| Span {
                trace_id: vec![trace; 16],
                span_id: vec![span; 8],
                parent_span_id: if parent == 0 {
                    Vec::new()
                } else {
                    vec![parent; 8]
                },
                name: format!("span {span}"),
                ..Span::default()
            })
            .collect();
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    #[test]
    fn it_counts_spans_traces_and_services_across_requests() {
        let receiver = Receiver::counting();
        receiver.receive(request("api", &[(1, 1, 0), (2, 2, 0)]));
        receiver.receive(request("worker", &[(1, 3, 1), (1, 4, 3), (3, 5, 0)]));
        receiver.receive(ExportTraceServiceRequest::default());
        let counts = receiver.counts();
        assert_eq!(counts.requests, 3);
        assert_eq!(counts.spans, 5);
        assert_eq!(counts.traces, 3, "trace 1 spans both services");
        assert_eq!(
            counts.services,
            BTreeMap::from([("api".into(), 2), ("worker".into(), 3)])
        );
        assert_eq!(counts.names.get("span 3"), Some(&1));
        assert_eq!(counts.names.len(), 5);
        assert!(
            receiver.spans().is_empty(),
            "a counting receiver keeps none"
        );
    }

    #[test]
    fn a_keeping_receiver_keeps_the_tree() {
        let receiver = Receiver::keeping();
        receiver.receive(request("worker", &[(1, 3, 1)]));
        let spans = receiver.spans();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].service, "worker");
        assert_eq!(spans[0].parent, vec![1; 8]);
        assert_eq!(spans[0].name, "span 3");
    }
}
