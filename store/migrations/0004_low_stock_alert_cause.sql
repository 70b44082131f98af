-- ProcessInventory reads back the alerts its deduction raised, on every
-- order: look them up by cause, not by scanning all alerts.
CREATE INDEX low_stock_alerts_cause ON low_stock_alerts (cause);
