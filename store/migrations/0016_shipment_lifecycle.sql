-- Shipments with a life (issue 17): REQUESTED -> DISPATCHED -> DELIVERED,
-- driven by the courier through each shipment's workflow on the shipping
-- queue. Each shipment names the warehouse it ships from: `main` (the
-- default warehouse) for every existing row and until stock is held per
-- warehouse; the API and workflows already address a shipment by (order,
-- warehouse). The table stays keyed by the order until an order can have
-- shipments from several warehouses; the unique index is the key to come.
ALTER TABLE shipments ADD COLUMN warehouse TEXT NOT NULL DEFAULT 'main';
ALTER TABLE shipments ADD COLUMN dispatched_at BIGINT;
ALTER TABLE shipments ADD COLUMN delivered_at BIGINT;
-- When the shipment was flagged for waiting too long for the courier
-- (ORDERSAGA_DISPATCH_ALERT_SECS); NULL: never.
ALTER TABLE shipments ADD COLUMN dispatch_overdue_at BIGINT;
CREATE UNIQUE INDEX shipments_order_warehouse ON shipments (order_id, warehouse);
CREATE INDEX shipments_status ON shipments (status, created_at);
