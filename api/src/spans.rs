//! One span per request, gRPC ([`grpc`], [`grpc_answered`]) and HTTP
//! ([`http`]), with
//! `order_id` and `workflow_id` left empty: the use case fills them in
//! ([`record_order`]) as soon as it knows the order (from the path, the
//! idempotency key or a webhook's transaction), so every line logged while
//! answering, the error log included, carries them and `grep <order_id>`
//! follows an order from the API into the worker's log.
//!
//! With traces on (`ordersaga_runtime::telemetry`) each request span is the
//! root of a trace, named after its method (`OrderService/PlaceOrder`,
//! `POST /v1/orders`): a `PlaceOrder`'s trace then follows its workflow
//! through Temporal to every activity on any worker.

use std::future::Future;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use ordersaga_domain::OrderId;
use tracing::Instrument;
use tracing::field::Empty;

/// The span of one gRPC call (tonic's `trace_fn`).
pub fn grpc<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let method = request.uri().path();
    tracing::info_span!(
        "grpc",
        otel.name = method.rsplit('.').next().unwrap_or(method),
        otel.kind = "server",
        method = %method,
        order_id = Empty,
        workflow_id = Empty,
    )
}

/// Logs a gRPC call's answer (at `debug`), inside its span: wraps the
/// future of the call (`tower::util::MapFutureLayer`).
pub async fn grpc_answered<B, E>(
    call: impl Future<Output = Result<axum::http::Response<B>, E>>,
) -> Result<axum::http::Response<B>, E> {
    let started = Instant::now();
    let response = call.await;
    tracing::debug!(
        ok = response.is_ok(),
        elapsed_ms = started.elapsed().as_millis(),
        "answered"
    );
    response
}

/// Runs one HTTP request in its span and logs its answer (at `debug`).
pub async fn http(request: Request, next: Next) -> Response {
    // The route, not the path: an order's id is no span name.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("", MatchedPath::as_str);
    let span = tracing::info_span!(
        "http",
        otel.name = %format_args!("{} {route}", request.method()),
        otel.kind = "server",
        method = %request.method(),
        path = %request.uri().path(),
        order_id = Empty,
        workflow_id = Empty,
    );
    async move {
        let started = Instant::now();
        let response = next.run(request).await;
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis(),
            "answered"
        );
        response
    }
    .instrument(span)
    .await
}

/// Names the order in the current request's span; outside one (a test
/// calling the service directly), nothing happens.
pub fn record_order(order_id: &OrderId) {
    let span = tracing::Span::current();
    span.record("order_id", tracing::field::display(order_id));
    span.record("workflow_id", order_id.workflow_id());
}
