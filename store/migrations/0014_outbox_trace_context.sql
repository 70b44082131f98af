-- The W3C traceparent of the step that wrote an outbox message (NULL with
-- traces off): the relay that delivers it continues the order's trace, so
-- an order's emails and shipping request are spans of its one trace.
ALTER TABLE outbox ADD COLUMN trace_context TEXT;
