-- Partial refunds, as PayPal makes them: a capture may have several
-- refunds, each of an amount, as long as they add up to at most the
-- capture. Every refund so far gave back the whole order's amount.
CREATE TABLE refunds_by_amount (
    id           TEXT PRIMARY KEY,
    capture_id   TEXT NOT NULL REFERENCES captures (id),
    value        TEXT NOT NULL,    -- decimal string in the order's currency
    create_time  TEXT NOT NULL
);
INSERT INTO refunds_by_amount (id, capture_id, value, create_time)
SELECT r.id, r.capture_id, o.value, r.create_time
FROM refunds r JOIN captures c ON c.id = r.capture_id JOIN orders o ON o.id = c.order_id;
DROP TABLE refunds;
ALTER TABLE refunds_by_amount RENAME TO refunds;
CREATE INDEX refunds_capture ON refunds (capture_id, create_time);
