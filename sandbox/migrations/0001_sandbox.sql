-- The payments sandbox's books. Times are RFC 3339 strings, as PayPal shows
-- them; amounts are the decimal strings the orders were created with.

CREATE TABLE orders (
    id            TEXT PRIMARY KEY,
    status        TEXT NOT NULL,   -- CREATED, APPROVED, VOIDED, COMPLETED
    custom_id     TEXT,            -- the shop's transactionId
    invoice_id    TEXT,
    description   TEXT,
    currency      TEXT NOT NULL,
    value         TEXT NOT NULL,
    return_url    TEXT,
    cancel_url    TEXT,
    behavior      TEXT NOT NULL,   -- manual, approve, decline, cancel
    payer_email   TEXT,
    create_time   TEXT NOT NULL,
    update_time   TEXT NOT NULL
);
CREATE INDEX orders_custom_id ON orders (custom_id);

-- At most one capture per order, at most one refund per capture: the
-- UNIQUE constraints are the last line of "money moves at most once".
CREATE TABLE captures (
    id           TEXT PRIMARY KEY,
    order_id     TEXT NOT NULL UNIQUE REFERENCES orders (id),
    status       TEXT NOT NULL,    -- COMPLETED, DECLINED, REFUNDED
    create_time  TEXT NOT NULL
);

CREATE TABLE refunds (
    id           TEXT PRIMARY KEY,
    capture_id   TEXT NOT NULL UNIQUE REFERENCES captures (id),
    create_time  TEXT NOT NULL
);

-- Answers of mutating calls by PayPal-Request-Id, replayed on a retry.
-- `scope` names the call and its target, e.g. 'capture:5O19...'.
CREATE TABLE idempotency (
    scope        TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    status_code  INTEGER NOT NULL,
    body         TEXT NOT NULL,
    PRIMARY KEY (scope, request_id)
);

-- Per transactionId, what tests assert on ("at most one capture").
CREATE TABLE transactions (
    transaction_id    TEXT PRIMARY KEY,
    orders            BIGINT NOT NULL DEFAULT 0,
    capture_requests  BIGINT NOT NULL DEFAULT 0,
    captures          BIGINT NOT NULL DEFAULT 0,
    refund_requests   BIGINT NOT NULL DEFAULT 0,
    refunds           BIGINT NOT NULL DEFAULT 0
);
