-- The reconciler's findings (issue 11): inconsistencies between the shop
-- database, Temporal, the gateway and the outbox that a ReconcileOrders run
-- could not repair. OPEN until a later run no longer sees them (RESOLVED).
-- Orders with an OPEN finding are in the needs-attention list.
CREATE TABLE reconciler_findings (
    kind          TEXT NOT NULL,      -- FindingKind, e.g. PENDING_WORKFLOW_CLOSED
    subject       TEXT NOT NULL,      -- the order id, or the outbox message key
    order_id      TEXT,               -- the order concerned, if any
    detail        TEXT NOT NULL,      -- what the last run saw
    status        TEXT NOT NULL,      -- OPEN | RESOLVED
    first_seen_at BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    resolved_at   BIGINT,
    PRIMARY KEY (kind, subject)
);
CREATE INDEX reconciler_findings_open ON reconciler_findings (status, order_id);
