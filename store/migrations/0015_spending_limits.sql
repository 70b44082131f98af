-- The spending limit against fraud (issue 17). One row per customer that
-- has a limit or has reserved spending: limit_minor/currency NULL means no
-- limit (the default, and what removing one leaves). The row is also the
-- customer's lock: `ReserveSpending` takes it before it sums the
-- reservations, so two orders racing the limit are decided one after the
-- other (PostgreSQL row lock; SQLite has one writer).
CREATE TABLE spending_limits (
    customer_id  TEXT PRIMARY KEY,
    limit_minor  BIGINT CHECK (limit_minor >= 0),
    currency     TEXT,
    updated_by   TEXT,
    updated_at   BIGINT NOT NULL
);

-- One row per order that passed through `ReserveSpending` (saga patch
-- spending-limit-v1), keyed by the order so a retried step decides once.
-- RESERVED counts against the customer's limit (in flight or confirmed);
-- RELEASED (the order failed: its compensation) and REFUSED (over the
-- limit; the limit and what was spent are kept so a retry answers the
-- same) do not.
CREATE TABLE spending_reservations (
    order_id      TEXT PRIMARY KEY REFERENCES orders (order_id),
    customer_id   TEXT NOT NULL,
    amount_minor  BIGINT NOT NULL,
    currency      TEXT NOT NULL,
    status        TEXT NOT NULL,         -- RESERVED | RELEASED | REFUSED
    limit_minor   BIGINT,                -- REFUSED: the limit then
    limit_currency TEXT,                 -- REFUSED: its currency
    spent_minor   BIGINT,                -- REFUSED: what counted then
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX spending_reservations_customer ON spending_reservations (customer_id, status, currency);
