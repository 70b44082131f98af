-- Catalog and inventory: thresholds, low-stock alerts, stock receipts,
-- ratings, and the catalog's own event log. Portable SQL (SQLite + PostgreSQL).

ALTER TABLE products ADD COLUMN low_stock_threshold BIGINT NOT NULL DEFAULT 0;
-- 1 while on-hand is at or below the threshold and the crossing has been
-- alerted; cleared when stock rises above it again (re-arms the alert).
ALTER TABLE products ADD COLUMN low_stock BIGINT NOT NULL DEFAULT 0;
ALTER TABLE products ADD COLUMN rating_sum BIGINT NOT NULL DEFAULT 0;
ALTER TABLE products ADD COLUMN rating_count BIGINT NOT NULL DEFAULT 0;

CREATE TABLE stock_receipts (
    receipt_id       TEXT PRIMARY KEY,
    idempotency_key  TEXT NOT NULL UNIQUE,
    created_at       BIGINT NOT NULL
);

CREATE TABLE stock_receipt_lines (
    receipt_id  TEXT NOT NULL REFERENCES stock_receipts (receipt_id),
    line_no     BIGINT NOT NULL,
    sku         TEXT NOT NULL REFERENCES products (sku),
    quantity    BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (receipt_id, line_no)
);

CREATE TABLE low_stock_alerts (
    alert_id     TEXT PRIMARY KEY,
    sku          TEXT NOT NULL REFERENCES products (sku),
    on_hand      BIGINT NOT NULL,
    threshold    BIGINT NOT NULL,
    -- What moved stock across: 'order:<id>', 'receipt:<id>'.
    cause        TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX low_stock_alerts_created ON low_stock_alerts (created_at, alert_id);

CREATE TABLE product_ratings (
    sku          TEXT NOT NULL REFERENCES products (sku),
    customer_id  TEXT NOT NULL,
    stars        BIGINT NOT NULL CHECK (stars BETWEEN 1 AND 5),
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (sku, customer_id)
);

-- ProductCreated, StockReceiptCreated, LowStockAlertTriggered,
-- ReviewRatingSubmitted, ProductRatingUpdated, keyed so none is written twice.
CREATE TABLE catalog_events (
    event_id     TEXT PRIMARY KEY,
    sku          TEXT NOT NULL,
    event        TEXT NOT NULL,
    detail       TEXT,
    occurred_at  BIGINT NOT NULL
);
CREATE INDEX catalog_events_sku ON catalog_events (sku, occurred_at);
