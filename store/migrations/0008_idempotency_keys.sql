-- Idempotency keys of PlaceOrder, recorded before the saga starts: the key
-- belongs to the first request that claims it (INSERT .. ON CONFLICT DO
-- NOTHING), and a later request with the same key is a replay only if its
-- fingerprint (a hash of the canonical request) is the same; anything else
-- is refused. The order row is written by the saga's first step, which may
-- not have run yet (no worker), so it cannot be the arbiter.
CREATE TABLE idempotency_keys (
    customer_id   TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,          -- hex SHA-256 of the canonical request
    order_id      TEXT NOT NULL,
    total_minor   BIGINT NOT NULL,        -- the first request's total, answered on replays
    currency      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (customer_id, idem_key)
);
