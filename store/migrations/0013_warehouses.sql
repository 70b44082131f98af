-- Stock per warehouse. Until now the shop had one stock pool: it becomes
-- the `main` warehouse's, so every ledger row keeps its meaning (the new
-- column says `main` for all of them) and products.on_hand stays what it
-- is, now the sum of the product's warehouse_stock rows.

-- A warehouse is opened by the first stock receipt that names it.
CREATE TABLE warehouses (
    warehouse_id  TEXT PRIMARY KEY,
    -- The allocation policy's fixed warehouse order: the order warehouses
    -- were opened in (ties, from concurrent openings, by id).
    sort_order    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);
INSERT INTO warehouses (warehouse_id, sort_order, created_at) VALUES ('main', 0, 0);

-- Units on hand per (warehouse, product); CHECK makes overselling a
-- warehouse impossible, as products.on_hand's does for the total.
CREATE TABLE warehouse_stock (
    warehouse_id  TEXT NOT NULL REFERENCES warehouses (warehouse_id),
    sku           TEXT NOT NULL REFERENCES products (sku),
    on_hand       BIGINT NOT NULL CHECK (on_hand >= 0),
    PRIMARY KEY (warehouse_id, sku)
);
INSERT INTO warehouse_stock (warehouse_id, sku, on_hand)
SELECT 'main', sku, on_hand FROM products WHERE on_hand > 0;

-- Which warehouse each ledger entry and receipt moved stock in.
ALTER TABLE stock_movements ADD COLUMN warehouse_id TEXT NOT NULL DEFAULT 'main';
ALTER TABLE stock_receipts ADD COLUMN warehouse_id TEXT NOT NULL DEFAULT 'main';

-- Where each order's deduction came from, so its release puts every unit
-- back into the warehouse it was taken from. A deduction made before
-- warehouses (and not released yet) took its units from main.
CREATE TABLE inventory_allocations (
    order_id      TEXT NOT NULL REFERENCES orders (order_id),
    warehouse_id  TEXT NOT NULL REFERENCES warehouses (warehouse_id),
    sku           TEXT NOT NULL,
    quantity      BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, warehouse_id, sku)
);
INSERT INTO inventory_allocations (order_id, warehouse_id, sku, quantity)
SELECT d.order_id, 'main', l.sku, SUM(l.quantity)
FROM inventory_deductions d JOIN order_lines l ON l.order_id = d.order_id
WHERE d.status = 'DEDUCTED'
GROUP BY d.order_id, l.sku;
