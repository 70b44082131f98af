//! Webhook delivery: each event is signed (see
//! `ordersaga_webhook_signature`) and POSTed to the configured
//! URL, retried with exponential backoff on anything but a 2xx, up to a
//! bounded number of attempts. Every attempt is signed afresh, so a retry
//! an hour later is not stale.
//!
//! The test controls act here: an event may be dropped (a lost webhook),
//! delivered several times (duplicates; copies race each other), or held and
//! later released in reverse (out of order). Deliveries are not persisted: a
//! sandbox restart loses those in flight, as a real gateway outage would, and
//! the shop's reconciliation poll has to cope.

use std::time::{Duration, SystemTime};

use ordersaga_webhook_signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, unix_seconds};
use serde::Deserialize;

/// A signed-on-send webhook event.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// The event id (shared by duplicates).
    pub id: String,
    /// The JSON body.
    pub body: String,
}

/// How deliveries are made.
#[derive(Debug, Clone)]
pub(crate) struct Deliverer {
    http: reqwest::Client,
    secret: String,
    attempts: u32,
    backoff: Duration,
}

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl Deliverer {
    pub(crate) fn new(
        secret: String,
        attempts: u32,
        backoff: Duration,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            secret,
            attempts: attempts.max(1),
            backoff,
        })
    }

    /// Delivers `copies` copies of `event` to `url`, each on its own task.
    pub(crate) fn send(&self, url: &str, event: &Event, copies: u32) {
        for _ in 0..copies.max(1) {
            let (this, url, event) = (self.clone(), url.to_string(), event.clone());
            tokio::spawn(async move { this.deliver(&url, &event).await });
        }
    }

    /// Delivers `events` one after another, in the given order, on one task:
    /// the way to make "out of order" deterministic.
    pub(crate) fn send_in_order(&self, url: &str, events: Vec<Event>) {
        let (this, url) = (self.clone(), url.to_string());
        tokio::spawn(async move {
            for event in &events {
                this.deliver(&url, event).await;
            }
        });
    }

    async fn deliver(&self, url: &str, event: &Event) {
        let mut wait = self.backoff;
        for attempt in 1..=self.attempts {
            let timestamp = unix_seconds(SystemTime::now());
            let signature = sign(self.secret.as_bytes(), timestamp, event.body.as_bytes());
            let result = self
                .http
                .post(url)
                .header("Content-Type", "application/json")
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(SIGNATURE_HEADER, signature)
                .body(event.body.clone())
                .send()
                .await;
            match result {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => {
                    tracing::debug!(event = %event.id, attempt, status = %r.status(), "webhook refused");
                }
                Err(e) => tracing::debug!(event = %event.id, attempt, error = %e, "webhook failed"),
            }
            if attempt < self.attempts {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_BACKOFF);
            }
        }
        tracing::warn!(event = %event.id, url, attempts = self.attempts, "webhook given up");
    }
}

/// Body of `POST /sandbox/webhooks/release`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Release {
    /// `reverse` (default: newest first, i.e. out of order) or `fifo`.
    #[serde(default)]
    pub order: ReleaseOrder,
}

/// In which order held webhooks are released.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ReleaseOrder {
    /// Newest first.
    #[default]
    Reverse,
    /// Oldest first.
    Fifo,
}
