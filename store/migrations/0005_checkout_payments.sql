-- Checkout payments (issue 3): the gateway's order id and the buyer's
-- approval link, stored with the PENDING payment so the API and the
-- "order received" email can show where to pay. NULL for simulated payments.
ALTER TABLE payments ADD COLUMN gateway_order_id TEXT;
ALTER TABLE payments ADD COLUMN approval_url TEXT;
