//! One span per activity execution, opened where the SDK dispatches
//! activities (an inbound interceptor) rather than by an attribute on each:
//! it carries the activity type, the workflow id and, when the workflow
//! belongs to one order (`order-{id}`, `shipping-{id}`), `order_id`, so
//! `grep <order_id>` follows an order through the worker's log. The
//! outbox relay, whose one activity serves many orders, opens a span per
//! message instead (`ordersaga_activities::relay`).
//!
//! With traces on, the SDK's OpenTelemetry interceptor (registered by the
//! client's plugin) runs outside this one: it opens the activity's
//! `RunActivity:<type>` span from the trace context in the activity's
//! Temporal headers and keeps it current while the activity runs, so the
//! activity's own spans (gateway calls, SMTP, database) join the order's
//! trace as its children. This span is the log's only
//! ([`telemetry::LOG_ONLY`]): in the trace its fields go on `RunActivity`,
//! one span per activity where there were two.

use std::sync::Arc;

use opentelemetry::KeyValue;
use ordersaga_domain::names::{ORDER_WORKFLOW_ID_PREFIX, SHIPPING_WORKFLOW_ID_PREFIX};
use ordersaga_runtime::telemetry;
use temporalio_sdk::SimplePlugin;
use temporalio_sdk::interceptors::{
    ActivityInboundInterceptor, ExecuteActivityInput, ExecuteActivityOutput, Next,
};
use tracing::Instrument;

/// The interceptor; register it on every worker through [`Self::plugin`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ActivitySpans;

impl ActivitySpans {
    /// The interceptor as a worker plugin: the SDK applies a worker's own
    /// plugins after its client's, so this runs inside the OpenTelemetry
    /// interceptor of a traced client.
    pub fn plugin() -> SimplePlugin {
        SimplePlugin::builder("ordersaga-activity-spans")
            .activity_inbound_interceptors(vec![
                Arc::new(ActivitySpans) as Arc<dyn ActivityInboundInterceptor>
            ])
            .build()
    }
}

/// The order a workflow id belongs to, if it is an order's own workflow.
pub fn order_of(workflow_id: &str) -> Option<&str> {
    [ORDER_WORKFLOW_ID_PREFIX, SHIPPING_WORKFLOW_ID_PREFIX]
        .into_iter()
        .find_map(|prefix| workflow_id.strip_prefix(prefix))
}

impl ActivityInboundInterceptor for ActivitySpans {
    fn execute_activity<'a>(
        &'a self,
        input: ExecuteActivityInput,
        next: Next<'a, ExecuteActivityInput, ExecuteActivityOutput<'a>>,
    ) -> ExecuteActivityOutput<'a> {
        // Opened when first polled, inside the outer interceptor's context.
        Box::pin(async move {
            let info = input.activity_info();
            let workflow_id = info.workflow_id.as_deref().unwrap_or_default();
            let span = tracing::info_span!(
                target: concat!(module_path!(), "::log_only"),
                "activity",
                activity_type = %info.activity_type,
                attempt = info.attempt,
                workflow_id,
                order_id = tracing::field::Empty,
            );
            let order_id = order_of(workflow_id);
            if let Some(order_id) = order_id {
                span.record("order_id", order_id);
            }
            telemetry::annotate_current(
                std::iter::once(KeyValue::new("attempt", i64::from(info.attempt)))
                    .chain(order_id.map(|id| KeyValue::new("order_id", id.to_string()))),
            );
            next.run(input).instrument(span).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_shipping_workflows_name_their_order() {
        let id = "0b6ad1a8-32f5-4a47-9c0b-2f8c3c1d2e3f";
        assert_eq!(order_of(&format!("order-{id}")), Some(id));
        assert_eq!(order_of(&format!("shipping-{id}")), Some(id));
        assert_eq!(order_of("outbox-relay-email"), None);
        assert_eq!(order_of(""), None);
    }
}
