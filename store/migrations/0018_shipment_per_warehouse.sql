-- One shipment per warehouse of a confirmed order (issue 17): `shipments`
-- becomes keyed by (order, warehouse) and each shipment's lines name the
-- warehouse too; an order's history holds a shipment's events once per
-- shipment. Portable table rebuilds (SQLite cannot change a primary key in
-- place): every existing row is copied, shipment lines taking their
-- shipment's warehouse (`main` for all of them so far), history rows the
-- empty shipment key (the order's own events, and its `main` shipment's).
CREATE TABLE shipments_by_warehouse (
    order_id             TEXT NOT NULL,
    warehouse            TEXT NOT NULL,
    customer_id          TEXT NOT NULL,
    status               TEXT NOT NULL,       -- REQUESTED | DISPATCHED | DELIVERED
    recipient_name       TEXT NOT NULL,
    line1                TEXT NOT NULL,
    line2                TEXT NOT NULL,
    city                 TEXT NOT NULL,
    postal_code          TEXT NOT NULL,
    country              TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    dispatched_at        BIGINT,
    delivered_at         BIGINT,
    dispatch_overdue_at  BIGINT,
    PRIMARY KEY (order_id, warehouse)
);
INSERT INTO shipments_by_warehouse (order_id, warehouse, customer_id, status, recipient_name,
    line1, line2, city, postal_code, country, created_at, dispatched_at, delivered_at,
    dispatch_overdue_at)
SELECT order_id, warehouse, customer_id, status, recipient_name, line1, line2, city,
    postal_code, country, created_at, dispatched_at, delivered_at, dispatch_overdue_at
FROM shipments;

CREATE TABLE shipment_lines_by_warehouse (
    order_id   TEXT NOT NULL,
    warehouse  TEXT NOT NULL,
    line_no    BIGINT NOT NULL,
    sku        TEXT NOT NULL,
    quantity   BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, warehouse, line_no),
    FOREIGN KEY (order_id, warehouse) REFERENCES shipments_by_warehouse (order_id, warehouse)
);
INSERT INTO shipment_lines_by_warehouse (order_id, warehouse, line_no, sku, quantity)
SELECT l.order_id, s.warehouse, l.line_no, l.sku, l.quantity
FROM shipment_lines l JOIN shipments s ON s.order_id = l.order_id;

DROP TABLE shipment_lines;
DROP TABLE shipments;
ALTER TABLE shipments_by_warehouse RENAME TO shipments;
ALTER TABLE shipment_lines_by_warehouse RENAME TO shipment_lines;
CREATE INDEX shipments_created ON shipments (created_at, order_id, warehouse);
CREATE INDEX shipments_status ON shipments (status, created_at);

-- The order's status history: each domain event at most once per order,
-- a shipment's events (`ShipmentDispatched`, `ShipmentDelivered`) once per
-- shipment: `shipment` is its warehouse, empty for `main` and for every
-- other event.
CREATE TABLE order_events_by_shipment (
    order_id     TEXT NOT NULL REFERENCES orders (order_id),
    event        TEXT NOT NULL,
    shipment     TEXT NOT NULL DEFAULT '',
    detail       TEXT,
    occurred_at  BIGINT NOT NULL,
    PRIMARY KEY (order_id, event, shipment)
);
INSERT INTO order_events_by_shipment (order_id, event, shipment, detail, occurred_at)
SELECT order_id, event, '', detail, occurred_at FROM order_events;
DROP TABLE order_events;
ALTER TABLE order_events_by_shipment RENAME TO order_events;
