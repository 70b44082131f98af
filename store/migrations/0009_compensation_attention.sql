-- Compensations parked for an operator (issue 11, defect 1): a refund the
-- gateway refused for good, or any other undo step that cannot finish on
-- its own. The order still ends FAILED; the row stays OPEN until an
-- operator's retry succeeds (RESOLVED) or an operator closes it with a
-- reason (CLOSED). GET /v1/orders?needs_attention=true lists orders with
-- an OPEN row. A refused refund also leaves the payment REFUND_FAILED
-- (payments.status is free text: no schema change for the new status).
CREATE TABLE compensation_attention (
    order_id       TEXT NOT NULL REFERENCES orders (order_id),
    compensation   TEXT NOT NULL,      -- RefundPayment | VoidPayment | ReleaseInventory
    status         TEXT NOT NULL,      -- OPEN | RESOLVED | CLOSED
    reason         TEXT NOT NULL,      -- the last refusal, in the refusing side's words
    parked_at      BIGINT NOT NULL,
    resolved_at    BIGINT,
    closed_by      TEXT,
    close_reason   TEXT,
    PRIMARY KEY (order_id, compensation)
);
CREATE INDEX compensation_attention_status ON compensation_attention (status, order_id);
