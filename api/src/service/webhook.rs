//! `POST /v1/payments/webhook`'s use case: verify the gateway's signed
//! event, find its order, and signal the saga once per event id.
//!
//! Deduplication lives here, not in the saga: a signal is a history event
//! even when the saga ignores it, so a redelivered or replayed event must
//! not reach it. The event ids signalled within the dedup window are kept
//! in the store ([`ordersaga_store::WebhookEvents`]), so every API process
//! sees them and a restart forgets none.

use std::time::Duration;

use ordersaga_activities::gateway::webhook::{self, PaymentEvent, PaymentEventKind};
use ordersaga_domain::{GatewayEvent, GatewayEventKind, TransactionId};
use ordersaga_store::WebhookClaim;
use ordersaga_workflows::OrderWorkflow;
use temporalio_client::WorkflowSignalOptions;
use temporalio_client::errors::WorkflowInteractionError;

use super::OrderService;
use crate::error::{ApiError, invalid};

/// What `POST /v1/payments/webhook` did with a verified event. Every
/// outcome is a 2xx, so the gateway stops redelivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookAck {
    /// Signalled to the order's saga.
    Delivered,
    /// Nothing to do: an event type the saga does not use, a payment we do
    /// not know, or an order that has already ended.
    Ignored,
    /// The same event (by id) was signalled within the dedup window: not
    /// signalled again, so a redelivery or replay adds nothing to the
    /// saga's history.
    Duplicate,
}

/// How long an event id is remembered as signalled: an identical request
/// verifies for twice the tolerance (its timestamp may be that far either
/// side of the clock), so a replay of it is always caught.
const DEDUP_WINDOW: Duration = Duration::from_secs(2 * webhook::DEFAULT_TOLERANCE.as_secs());
/// How long one request holds an event id while it signals; a request that
/// died mid-signal blocks the gateway's redelivery no longer than this.
const SIGNAL_HOLD: Duration = Duration::from_secs(30);
/// Longest event id taken (PayPal's are about 40 characters).
pub const MAX_EVENT_ID: usize = 128;

impl OrderService {
    /// A gateway webhook: verified (HMAC over timestamp and raw body, within
    /// the tolerance) before anything is read from it, then signalled to the
    /// order's saga. Bad or stale: UNAUTHENTICATED; more signature values
    /// than [`webhook::MAX_SIGNATURES`]: INVALID_ARGUMENT, none checked;
    /// nothing changes either way. An event id signalled within the dedup
    /// window is answered `duplicate` and not signalled again; one that
    /// another request is signalling right now is answered
    /// FAILED_PRECONDITION (409), so the gateway retries it.
    pub async fn payment_webhook(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<WebhookAck, ApiError> {
        let secret = self
            .payment
            .webhook_secret
            .as_ref()
            .ok_or_else(|| ApiError::Unauthenticated("webhooks are not configured".into()))?;
        webhook::verify(
            secret.expose().as_bytes(),
            timestamp.unwrap_or_default(),
            body,
            signature.unwrap_or_default(),
            std::time::SystemTime::now(),
            webhook::DEFAULT_TOLERANCE,
        )
        .map_err(|e| match e {
            webhook::WebhookError::TooManySignatures { .. } => invalid(e.to_string()),
            _ => ApiError::Unauthenticated(e.to_string()),
        })?;
        let event = PaymentEvent::parse(body).map_err(|e| invalid(e.to_string()))?;
        if event.event_id.is_empty() || event.event_id.len() > MAX_EVENT_ID {
            return Err(invalid(format!(
                "webhook event id must have 1 to {MAX_EVENT_ID} characters"
            )));
        }
        let kind = match event.kind {
            PaymentEventKind::OrderApproved => GatewayEventKind::Approved,
            PaymentEventKind::OrderVoided => GatewayEventKind::Voided,
            PaymentEventKind::CaptureCompleted => GatewayEventKind::Captured,
            PaymentEventKind::CaptureDenied => GatewayEventKind::CaptureDenied,
            PaymentEventKind::CaptureRefunded => GatewayEventKind::Refunded,
            PaymentEventKind::Other => return Ok(WebhookAck::Ignored),
        };
        let Some(transaction_id) = event
            .custom_id
            .as_deref()
            .and_then(|c| TransactionId::parse(c).ok())
        else {
            tracing::info!(event_id = %event.event_id, "webhook without our transaction id: ignored");
            return Ok(WebhookAck::Ignored);
        };
        let Some(order_id) = self
            .store
            .orders()
            .paid_by(&transaction_id)
            .await
            .map_err(ApiError::internal)?
        else {
            tracing::info!(event_id = %event.event_id, %transaction_id, "webhook for an unknown payment: ignored");
            return Ok(WebhookAck::Ignored);
        };
        crate::spans::record_order(&order_id);
        let events = self.store.webhook_events();
        let claim = events
            .claim(&event.event_id, SIGNAL_HOLD, DEDUP_WINDOW)
            .await
            .map_err(ApiError::internal)?;
        match claim {
            WebhookClaim::First => {}
            WebhookClaim::Duplicate => {
                tracing::info!(%order_id, event_id = %event.event_id, "webhook already signalled: duplicate");
                return Ok(WebhookAck::Duplicate);
            }
            WebhookClaim::InFlight => {
                return Err(ApiError::FailedPrecondition(format!(
                    "webhook event {} is being delivered; retry later",
                    event.event_id
                )));
            }
        }
        let handle = self
            .client
            .get_workflow_handle::<OrderWorkflow>(order_id.workflow_id());
        let signal = GatewayEvent {
            event_id: event.event_id.clone(),
            kind,
        };
        let ack = match handle
            .signal(
                OrderWorkflow::payment_event,
                signal,
                WorkflowSignalOptions::default(),
            )
            .await
        {
            Ok(()) => {
                tracing::info!(%order_id, event_id = %event.event_id, event_type = %event.event_type, "webhook signalled");
                WebhookAck::Delivered
            }
            // The order has ended: nothing left to decide.
            Err(WorkflowInteractionError::NotFound(_)) => WebhookAck::Ignored,
            Err(e) => {
                // Forget the claim, so the gateway's redelivery is signalled.
                if let Err(release) = events.release(&event.event_id).await {
                    tracing::warn!(event_id = %event.event_id, error = %release, "webhook claim not released; it lapses after its hold");
                }
                return Err(ApiError::internal(e));
            }
        };
        // The saga has it, so the answer stands even if this write fails (a
        // later copy is then signalled once more after the hold; the saga
        // ignores it).
        if let Err(e) = events.signalled(&event.event_id).await {
            tracing::warn!(event_id = %event.event_id, error = %e, "webhook not marked signalled");
        }
        Ok(ack)
    }
}
