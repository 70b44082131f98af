-- The notifications and shipping services' own tables. Neither references
-- the orders table: each service could move to its own database.

-- One row per email: (subject, stage) where subject is the order id for
-- customer emails and the alert id for merchant alerts. Written PENDING
-- before the first send, SENT once the relay accepted it; a retried or
-- replayed step that finds SENT sends nothing.
CREATE TABLE notifications (
    subject_id   TEXT NOT NULL,
    stage        TEXT NOT NULL,          -- ORDER_RECEIVED | ORDER_CONFIRMED | ORDER_FAILED | LOW_STOCK_ALERT
    recipient    TEXT NOT NULL,
    subject      TEXT NOT NULL,
    message_id   TEXT NOT NULL UNIQUE,   -- deterministic: <{stage}.{subject_id}@ordersaga>
    status       TEXT NOT NULL,          -- PENDING | SENT | FAILED
    attempts     BIGINT NOT NULL,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    sent_at      BIGINT,
    PRIMARY KEY (subject_id, stage)
);
CREATE INDEX notifications_status ON notifications (status, created_at);

-- One shipping request per confirmed order, keyed by the order id.
CREATE TABLE shipments (
    order_id        TEXT PRIMARY KEY,
    customer_id     TEXT NOT NULL,
    status          TEXT NOT NULL,       -- REQUESTED
    recipient_name  TEXT NOT NULL,
    line1           TEXT NOT NULL,
    line2           TEXT NOT NULL,
    city            TEXT NOT NULL,
    postal_code     TEXT NOT NULL,
    country         TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX shipments_created ON shipments (created_at, order_id);

CREATE TABLE shipment_lines (
    order_id  TEXT NOT NULL REFERENCES shipments (order_id),
    line_no   BIGINT NOT NULL,
    sku       TEXT NOT NULL,
    quantity  BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, line_no)
);
