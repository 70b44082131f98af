-- The transactional outbox: messages for the notifications and shipping
-- services, inserted in the same transaction as the saga step (or stock
-- receipt) that caused them, so a committed step always has its messages
-- and a rolled-back one has none. Each service's relay claims its topic's
-- rows in batches (a lease, so relays on several workers never take the
-- same row at once), delivers them and marks them DONE. Keyed by the
-- message's idempotency key: a retried step inserts nothing twice.
CREATE TABLE outbox (
    message_key   TEXT PRIMARY KEY,      -- e.g. notification-order-confirmed-<order>, shipping-<order>
    topic         TEXT NOT NULL,         -- email | shipment
    payload       TEXT NOT NULL,         -- JSON of the domain's Outgoing message
    status        TEXT NOT NULL,         -- PENDING | DONE | FAILED
    attempts      BIGINT NOT NULL DEFAULT 0,
    available_at  BIGINT NOT NULL,       -- not before (retry backoff), Unix ms
    claimed_by    TEXT,                  -- the relay slot holding it
    lease_until   BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX outbox_pending ON outbox (topic, status, available_at);
