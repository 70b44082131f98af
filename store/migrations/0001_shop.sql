-- The shop's own data. Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Times are Unix epoch milliseconds; money is integer minor units + currency.

CREATE TABLE products (
    sku          TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    price_minor  BIGINT NOT NULL CHECK (price_minor >= 0),
    currency     TEXT NOT NULL,
    -- On hand = sum of this product's stock_movements; kept here so a
    -- deduction is one guarded UPDATE. CHECK makes overselling impossible.
    on_hand      BIGINT NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    created_at   BIGINT NOT NULL
);

-- The stock ledger: every change of on-hand, keyed so a retried step
-- writes nothing twice (e.g. '<order_id>/deduct/<sku>').
CREATE TABLE stock_movements (
    movement_id  TEXT PRIMARY KEY,
    sku          TEXT NOT NULL REFERENCES products (sku),
    delta        BIGINT NOT NULL,
    reason       TEXT NOT NULL,
    order_id     TEXT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX stock_movements_sku ON stock_movements (sku);

CREATE TABLE orders (
    order_id        TEXT PRIMARY KEY,
    customer_id     TEXT NOT NULL,
    transaction_id  TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL,
    total_minor     BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    failure_code    TEXT,
    failure_reason  TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX orders_customer ON orders (customer_id, created_at, order_id);
CREATE INDEX orders_status ON orders (status, created_at, order_id);
CREATE INDEX orders_created ON orders (created_at, order_id);

CREATE TABLE order_lines (
    order_id          TEXT NOT NULL REFERENCES orders (order_id),
    line_no           BIGINT NOT NULL,
    sku               TEXT NOT NULL,
    quantity          BIGINT NOT NULL CHECK (quantity > 0),
    unit_price_minor  BIGINT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE payments (
    transaction_id  TEXT PRIMARY KEY,
    order_id        TEXT NOT NULL UNIQUE REFERENCES orders (order_id),
    amount_minor    BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    status          TEXT NOT NULL,
    decline_reason  TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- One row per order: the outcome of ProcessInventory, so a retry answers
-- the same and the compensation knows whether there is anything to undo.
CREATE TABLE inventory_deductions (
    order_id    TEXT PRIMARY KEY REFERENCES orders (order_id),
    status      TEXT NOT NULL,          -- DEDUCTED | SHORT | RELEASED
    short_sku   TEXT,
    requested   BIGINT,
    available   BIGINT,
    created_at  BIGINT NOT NULL
);

-- The order's status history: each domain event at most once per order.
CREATE TABLE order_events (
    order_id     TEXT NOT NULL REFERENCES orders (order_id),
    event        TEXT NOT NULL,
    detail       TEXT,
    occurred_at  BIGINT NOT NULL,
    PRIMARY KEY (order_id, event)
);

-- The simulated payment gateway's own books (stands in for the gateway
-- until the payments sandbox exists). Keyed by transactionId like a real
-- gateway's idempotency key; counters let tests prove "at most one capture".
CREATE TABLE simulated_gateway (
    transaction_id   TEXT PRIMARY KEY,
    amount_minor     BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    status           TEXT NOT NULL,     -- CAPTURED | DECLINED | REFUNDED
    decline_reason   TEXT,
    charge_requests  BIGINT NOT NULL,
    captures         BIGINT NOT NULL,
    refunds          BIGINT NOT NULL
);
