-- Payment webhooks already passed to their saga, by the gateway's event id,
-- so a redelivered or replayed event (same id) inside the dedup window is
-- acknowledged without signalling the saga again (a signal is a history
-- event). The API claims the id before it signals (SIGNALLING, held until
-- held_until so a request that died mid-signal does not block the event for
-- good), marks it SIGNALLED after, and deletes the claim when the signal
-- failed. Rows older than the window are pruned by later claims.
CREATE TABLE webhook_events (
    event_id     TEXT PRIMARY KEY,
    status       TEXT NOT NULL,           -- SIGNALLING | SIGNALLED
    received_at  BIGINT NOT NULL,         -- Unix ms of the claim
    held_until   BIGINT NOT NULL          -- a SIGNALLING claim is free after this, Unix ms
);
CREATE INDEX webhook_events_received ON webhook_events (received_at);
