-- The database is the arbiter of an order's fate (issue 11, defect 0): a
-- step that finds its order already FAILED answers with the stored reason,
-- and the saga ends with it. The reason is kept whole (JSON of the domain's
-- FailureReason) next to its code and words; NULL for orders failed before.
ALTER TABLE orders ADD COLUMN failure_detail TEXT;
