-- Domain events for consumers outside the shop (docs/events.md): each
-- step that makes an event true inserts it here in its own transaction
-- (only while ORDERSAGA_NATS_URL is set); the worker's event relay
-- publishes the rows to NATS JetStream in `seq` order and marks them.
--
-- `seq` comes from the one `event_sequence` row, updated in the writing
-- transaction: its row lock is held until commit, so seq order is commit
-- order (PostgreSQL, where a writing transaction takes that lock first to
-- stay deadlock-free; SQLite has one writer anyway) and a relay reading in
-- seq order publishes each order's and each product's events in the order
-- they happened. Portable SQL: no serial types.
CREATE TABLE event_sequence (
    name      TEXT PRIMARY KEY,
    last_seq  BIGINT NOT NULL
);
INSERT INTO event_sequence (name, last_seq) VALUES ('events', 0);

CREATE TABLE event_outbox (
    seq           BIGINT PRIMARY KEY,
    event_id      TEXT NOT NULL UNIQUE,  -- stable UUIDv5: the Nats-Msg-Id
    event_type    TEXT NOT NULL,         -- CloudEvents type, e.g. shop.order.placed.v1
    source        TEXT NOT NULL,         -- CloudEvents source
    subject       TEXT NOT NULL,         -- CloudEvents subject: order id or sku
    nats_subject  TEXT NOT NULL,         -- shop.orders.<order_id>.<Event> | shop.catalog.<sku>.<Event>
    data          TEXT NOT NULL,         -- JSON, schema v1
    occurred_at   BIGINT NOT NULL,       -- Unix ms
    published_at  BIGINT                 -- when the stream acknowledged it; NULL: not yet
);
CREATE INDEX event_outbox_unpublished ON event_outbox (seq) WHERE published_at IS NULL;
CREATE INDEX event_outbox_published ON event_outbox (published_at) WHERE published_at IS NOT NULL;

-- Which relay publishes: one at a time, so the stream gets each subject's
-- events in order. A crashed holder's lease runs out and another takes it.
CREATE TABLE event_relay_lease (
    name         TEXT PRIMARY KEY,
    holder       TEXT,
    lease_until  BIGINT NOT NULL
);
INSERT INTO event_relay_lease (name, holder, lease_until) VALUES ('relay', NULL, 0);
