//! Reading the stream back: `replay` (from the start or a time, until
//! caught up) and `tail` (live), through ephemeral ordered consumers that
//! leave nothing behind on the server.

use async_nats::jetstream::{self, consumer};
use chrono::{DateTime, Utc};
use cloudevents::Event;
use futures::StreamExt;

use crate::EventsError;
use crate::cloud::decode;

/// Where a replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// The stream's first event.
    Start,
    /// The first event stored at or after this time.
    Time(DateTime<Utc>),
}

impl Since {
    /// `start`, an RFC 3339 time (`2026-12-02T08:00:00Z`) or a duration
    /// back from now (`15m`, `2h`, `1day`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "start" {
            return Ok(Self::Start);
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Ok(Self::Time(t.with_timezone(&Utc)));
        }
        let ago = humantime::parse_duration(text).map_err(|_| {
            format!("--since: expected start, an RFC 3339 time or a duration, got {text:?}")
        })?;
        let ago = chrono::Duration::from_std(ago).map_err(|e| e.to_string())?;
        Ok(Self::Time(Utc::now() - ago))
    }
}

/// One event as read back, with where the stream keeps it.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    /// The stream's sequence number.
    pub stream_sequence: u64,
    /// The NATS subject it was published on.
    pub nats_subject: String,
    /// The event.
    pub event: Event,
}

async fn ordered(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
    deliver_policy: consumer::DeliverPolicy,
) -> Result<consumer::Consumer<consumer::pull::OrderedConfig>, EventsError> {
    js.get_stream(stream)
        .await
        .map_err(|e| EventsError::Stream(stream.to_string(), e.to_string()))?
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: filter.to_string(),
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| EventsError::Consumer(String::new(), e.to_string()))
}

fn consumer_error(e: impl std::fmt::Display) -> EventsError {
    EventsError::Consumer(String::new(), e.to_string())
}

/// Hands every event on `filter` (e.g. `shop.>`) from `since` to `each`,
/// in stream order, and returns how many there were once caught up.
pub async fn replay(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
    since: Since,
    mut each: impl FnMut(StreamEvent),
) -> Result<u64, EventsError> {
    let deliver_policy = match since {
        Since::Start => consumer::DeliverPolicy::All,
        Since::Time(start_time) => consumer::DeliverPolicy::ByStartTime { start_time },
    };
    let mut consumer = ordered(js, stream, filter, deliver_policy).await?;
    if consumer.info().await.map_err(consumer_error)?.num_pending == 0 {
        return Ok(0);
    }
    let mut messages = consumer.messages().await.map_err(consumer_error)?;
    let mut count = 0;
    while let Some(message) = messages.next().await {
        let message = message.map_err(consumer_error)?;
        let info = message.info().map_err(consumer_error)?;
        let (sequence, pending) = (info.stream_sequence, info.pending);
        each(StreamEvent {
            stream_sequence: sequence,
            nats_subject: message.subject.to_string(),
            event: decode(&message.payload)?,
        });
        count += 1;
        if pending == 0 {
            break;
        }
    }
    Ok(count)
}

/// Hands every new event on `filter` to `each` as it arrives, until the
/// future is dropped.
pub async fn tail(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
    mut each: impl FnMut(StreamEvent),
) -> Result<(), EventsError> {
    let consumer = ordered(js, stream, filter, consumer::DeliverPolicy::New).await?;
    let mut messages = consumer.messages().await.map_err(consumer_error)?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(consumer_error)?;
        let sequence = message.info().map_err(consumer_error)?.stream_sequence;
        match decode(&message.payload) {
            Ok(event) => each(StreamEvent {
                stream_sequence: sequence,
                nats_subject: message.subject.to_string(),
                event,
            }),
            Err(e) => tracing::warn!(sequence, error = %e, "not a CloudEvent"),
        }
    }
    Ok(())
}
