//! The webhook-events repository: which payment webhooks (by the
//! gateway's event id) were already passed to their saga, so a redelivered
//! or replayed event is acknowledged without a second signal.
//!
//! The API [`WebhookEvents::claim`]s an event id before it signals, then
//! marks it [`WebhookEvents::signalled`], or [`WebhookEvents::release`]s it
//! when the signal failed so the gateway's redelivery is signalled. A claim
//! whose request died mid-signal is free again once its hold has passed.
//! Ids are kept for the dedup window only; later claims prune older rows.

use std::time::Duration;

use sqlx::Row;

use crate::db::now_ms;
use crate::{Result, Store};

ordersaga_domain::text_enum!(
    /// Where an event's delivery to its saga is.
    WebhookEventStatus {
        /// A request is signalling it now.
        Signalling => "SIGNALLING",
        /// Signalled (or found nothing left to signal).
        Signalled => "SIGNALLED",
    }
);

/// What [`WebhookEvents::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookClaim {
    /// New inside the window (or its earlier claim lapsed): signal it.
    First,
    /// Already signalled inside the window: acknowledge, signal nothing.
    Duplicate,
    /// Another request is signalling it right now: let the gateway retry.
    InFlight,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The webhook-events repository; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct WebhookEvents<'a> {
    store: &'a Store,
}

impl<'a> WebhookEvents<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Claims `event_id` for signalling, holding it for `hold`, unless it
    /// was signalled (or is held) within the last `window`. Racing claims
    /// are settled by the primary key: one wins, the others see its row.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "webhook_events.claim", otel.kind = "client"))]
    pub async fn claim(
        self,
        event_id: &str,
        hold: Duration,
        window: Duration,
    ) -> Result<WebhookClaim> {
        let pool = &self.store.writer;
        let now = now_ms();
        let expired = now.saturating_sub(millis(window));
        sqlx::query("DELETE FROM webhook_events WHERE received_at < $1")
            .bind(expired)
            .execute(pool)
            .await?;
        // Taken over when the earlier claim lapsed mid-signal or is older
        // than the window (not pruned yet).
        let won = sqlx::query(
            "INSERT INTO webhook_events (event_id, status, received_at, held_until) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (event_id) DO UPDATE SET status = $2, received_at = $3, held_until = $4 \
             WHERE (webhook_events.status = $2 AND webhook_events.held_until <= $3) \
             OR webhook_events.received_at < $5 \
             RETURNING event_id",
        )
        .bind(event_id)
        .bind(WebhookEventStatus::Signalling.as_str())
        .bind(now)
        .bind(now.saturating_add(millis(hold)))
        .bind(expired)
        .fetch_optional(pool)
        .await?;
        if won.is_some() {
            return Ok(WebhookClaim::First);
        }
        let status = sqlx::query("SELECT status FROM webhook_events WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(pool)
            .await?
            .map(|row| row.try_get::<String, _>("status"))
            .transpose()?;
        Ok(match status.as_deref() {
            Some(s) if s == WebhookEventStatus::Signalled.as_str() => WebhookClaim::Duplicate,
            // Held by another request, or released by it just now.
            _ => WebhookClaim::InFlight,
        })
    }

    /// The event reached its saga (or there was nothing left to tell it):
    /// later copies inside the window are duplicates.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "webhook_events.signalled", otel.kind = "client"))]
    pub async fn signalled(self, event_id: &str) -> Result<()> {
        sqlx::query("UPDATE webhook_events SET status = $1 WHERE event_id = $2")
            .bind(WebhookEventStatus::Signalled.as_str())
            .bind(event_id)
            .execute(&self.store.writer)
            .await?;
        Ok(())
    }

    /// The signal failed: forget the claim so a redelivery is signalled.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "webhook_events.release", otel.kind = "client"))]
    pub async fn release(self, event_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM webhook_events WHERE event_id = $1 AND status = $2")
            .bind(event_id)
            .bind(WebhookEventStatus::Signalling.as_str())
            .execute(&self.store.writer)
            .await?;
        Ok(())
    }
}
