//! The event relay: publishes the event outbox to NATS JetStream.
//!
//! One relay publishes at a time (a lease in the shop database, so every
//! worker can run one and a dead one's successor takes over). The holder
//! renews the lease once half of it has run, not every round, and the
//! others ask for it every sixteenth of a lease, not every poll: under
//! load the lease costs a statement a second, not one per relay and poll.
//! It reads unpublished events in commit order, publishes a batch on one
//! connection with each event's id as `Nats-Msg-Id`, awaits the stream's
//! acknowledgements in order and marks the acknowledged prefix published.
//! Whatever was not acknowledged (NATS down, a crash before marking) is
//! published again later; the stream drops the repeats within its
//! duplicate window, so each event is stored once and each subject's
//! events stay in order. The saga never waits for any of this.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use ordersaga_store::{Store, StoredEvent, now_ms};

use crate::EventsError;
use crate::cloud::encode;
use crate::nats::{connect, ensure_stream};
use crate::settings::{NatsSettings, RelaySettings, StreamSettings};

/// How long to wait before trying again after NATS or the database failed.
const BACKOFF: Duration = Duration::from_secs(1);

/// How long the stream gets to acknowledge a publish.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The relay of one process; see the [module docs](self).
#[derive(Debug)]
pub struct Relay {
    store: Store,
    nats: NatsSettings,
    stream: StreamSettings,
    settings: RelaySettings,
    holder: String,
}

/// What one round did.
enum Round {
    /// Published this many (and maybe more wait).
    Published(usize),
    /// Nothing to do.
    Idle,
    /// Another relay holds the lease.
    Standby,
}

impl Relay {
    /// A relay over `store`'s event outbox.
    pub fn new(
        store: Store,
        nats: NatsSettings,
        stream: StreamSettings,
        settings: RelaySettings,
    ) -> Self {
        Self {
            store,
            nats,
            stream,
            settings,
            holder: format!("relay-{}", uuid::Uuid::new_v4()),
        }
    }

    /// Publishes until `shutdown` resolves, then lets the lease go. NATS
    /// being down (at start or later) is waited out, never an error.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), EventsError> {
        tokio::pin!(shutdown);
        let client = connect(&self.nats, "ordersaga-event-relay", false).await?;
        let js = jetstream::ContextBuilder::new()
            .timeout(ACK_TIMEOUT)
            .build(client);
        let mut stream_ready = false;
        let mut last_prune = 0;
        // Until when this relay holds the lease, as it last wrote it (0:
        // not held).
        let mut held_until = 0;
        loop {
            let round = async {
                if !stream_ready {
                    ensure_stream(&js, &self.stream).await?;
                    tracing::info!(stream = %self.stream.name, "event stream ready");
                    stream_ready = true;
                }
                self.round(&js, &mut held_until).await
            };
            let pause = tokio::select! {
                () = &mut shutdown => break,
                r = round => match r {
                    // A full batch: more wait. A partial one emptied the
                    // outbox, so wait as an empty one does: under load a
                    // round then takes many events rather than one each.
                    Ok(Round::Published(n)) if n >= self.settings.batch as usize => Duration::ZERO,
                    Ok(Round::Standby) => self.settings.poll.max(self.settings.lease / 16),
                    Ok(_) => self.settings.poll,
                    Err(e) => {
                        tracing::warn!(error = %e, "event relay: will try again");
                        BACKOFF
                    }
                },
            };
            if now_ms() - last_prune > 60_000 {
                last_prune = now_ms();
                let keep = i64::try_from(self.settings.keep.as_millis()).unwrap_or(i64::MAX);
                if let Err(e) = self.store.event_outbox().prune(now_ms() - keep).await {
                    tracing::warn!(error = %e, "event relay: pruning published events failed");
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        self.store
            .event_outbox()
            .release_lease(&self.holder)
            .await?;
        Ok(())
    }

    /// Takes or renews the lease when half of it has run (`held_until`
    /// is when this relay's lease ends, 0 when it holds none) and
    /// publishes one batch.
    async fn round(
        &self,
        js: &jetstream::Context,
        held_until: &mut i64,
    ) -> Result<Round, EventsError> {
        let outbox = self.store.event_outbox();
        let lease = i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        if renews(*held_until, now, lease) {
            if !outbox
                .take_lease(&self.holder, now.saturating_add(lease))
                .await?
            {
                *held_until = 0;
                return Ok(Round::Standby);
            }
            *held_until = now.saturating_add(lease);
        }
        let pending = outbox.pending(self.settings.batch).await?;
        if pending.is_empty() {
            return Ok(Round::Idle);
        }
        let (done, failure) = publish_in_order(js, &pending).await;
        let last = done.checked_sub(1).and_then(|i| pending.get(i));
        if let (Some(first), Some(last)) = (pending.first(), last) {
            outbox.published(first.seq..=last.seq).await?;
        }
        match failure {
            Some(e) if done == 0 => Err(e),
            Some(e) => {
                tracing::warn!(error = %e, "event relay: part of a batch waits");
                Ok(Round::Published(done))
            }
            None => Ok(Round::Published(done)),
        }
    }
}

/// Whether a relay whose lease (of `lease` ms) runs until `held_until`
/// (0: it holds none) asks for it at `now`: when it holds none, or half of
/// it has run.
fn renews(held_until: i64, now: i64, lease: i64) -> bool {
    held_until.saturating_sub(now) <= lease / 2
}

/// Publishes `events` in order and returns the length of the acknowledged
/// prefix, and why it stopped short, if it did. An event that cannot be
/// encoded (a row no writer of this version makes) counts as done, with
/// an error logged, so it cannot stop the stream.
async fn publish_in_order(
    js: &jetstream::Context,
    events: &[StoredEvent],
) -> (usize, Option<EventsError>) {
    let mut sent = Vec::with_capacity(events.len());
    let mut failure = None;
    for e in events {
        let payload = match encode(e) {
            Ok(p) => p,
            Err(err) => {
                tracing::error!(seq = e.seq, event_id = %e.event_id, error = %err,
                    "event relay: skipping an event that cannot be encoded");
                sent.push(None);
                continue;
            }
        };
        let message = PublishMessage::build()
            .message_id(&e.event_id)
            .payload(payload.into());
        match js.send_publish(e.nats_subject.clone(), message).await {
            Ok(ack) => sent.push(Some(ack)),
            Err(err) => {
                failure = Some(EventsError::Publish(err.to_string()));
                break;
            }
        }
    }
    let mut done = 0;
    for ack in sent {
        if let Some(ack) = ack
            && let Err(err) = ack.await
        {
            failure = Some(EventsError::Publish(err.to_string()));
            break;
        }
        done += 1;
    }
    (done, failure)
}

#[cfg(test)]
mod tests {
    use super::renews;

    #[test]
    fn the_lease_is_renewed_once_half_of_it_has_run_not_every_round() {
        let (now, lease) = (1_000_000, 15_000);
        assert!(renews(0, now, lease), "held by none: ask");
        assert!(!renews(now + lease, now, lease), "just taken");
        assert!(!renews(now + lease / 2 + 1, now, lease), "under half run");
        assert!(renews(now + lease / 2, now, lease), "half run");
        assert!(renews(now - 1, now, lease), "run out");
    }
}
