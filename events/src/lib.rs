//! The shop's domain events as a durable stream (docs/events.md).
//!
//! The steps write each event to the event outbox in their own transaction
//! (the store does, when told to publish); this crate owns everything past
//! that: the [`relay`] that publishes the outbox to NATS JetStream, the
//! stream's set-up ([`nats`]), the CloudEvents envelope ([`cloud`]), the
//! settings ([`settings`]), reading the stream back ([`read`]: `tail`,
//! `replay`) and the sales-per-SKU-per-day [`projection`], the worked
//! example of a consumer that needs no change to the saga. The
//! `ordersaga-events` binary is the command line over them.

pub mod cloud;
pub mod nats;
pub mod projection;
pub mod read;
pub mod relay;
pub mod settings;

use std::path::PathBuf;

pub use relay::Relay;
pub use settings::{EventSettings, NatsSettings, RelaySettings, StreamSettings};

/// What can go wrong with events.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// NATS could not be reached (CLI) or the options were refused.
    #[error("connecting to NATS: {0}")]
    Connect(String),
    /// The credentials file could not be read.
    #[error("NATS credentials file {}", .0.display())]
    Credentials(PathBuf, #[source] std::io::Error),
    /// The stream could not be created, updated or found.
    #[error("stream {0}: {1}")]
    Stream(String, String),
    /// A consumer could not be created or read from.
    #[error("consumer {0}: {1}")]
    Consumer(String, String),
    /// Publishing failed or was not acknowledged in time.
    #[error("publishing: {0}")]
    Publish(String),
    /// An event that is not a well-formed CloudEvent of ours.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// The projection's database failed.
    #[error("projection database: {0}")]
    Projection(String),
    /// The shop database failed (the relay's outbox).
    #[error(transparent)]
    Store(#[from] ordersaga_store::StoreError),
}
