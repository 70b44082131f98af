-- Partial availability (issue 17, saga patch partial-availability-v1): the
-- amended order proposed to the customer when some lines of a paid order
-- cannot be served. One row per amended order, written with the order's
-- move to ACTION_REQUIRED and the held (deducted) stock of the served lines
-- in `ProcessInventoryAmendable`'s transaction, so a retried step finds
-- it. The missing lines are `order_lines` named in `missing_skus` (JSON
-- array of skus): a product is served whole or not at all.
-- PROPOSED -> ACCEPTED (the missing lines refunded: `refunded_minor`)
-- or DECLINED (cancelled, or the deadline passed: the order FAILED).
CREATE TABLE order_amendments (
    order_id        TEXT PRIMARY KEY REFERENCES orders (order_id),
    status          TEXT NOT NULL,        -- PROPOSED | ACCEPTED | DECLINED
    missing_skus    TEXT NOT NULL,        -- JSON array of skus
    refund_minor    BIGINT NOT NULL CHECK (refund_minor > 0),
    currency        TEXT NOT NULL,
    deadline_secs   BIGINT NOT NULL,
    deadline_at     BIGINT NOT NULL,      -- Unix ms
    refunded_minor  BIGINT,               -- ACCEPTED: what the gateway gave back
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
