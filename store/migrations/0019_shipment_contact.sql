-- A shipment's workflow starts when the courier picks the parcel up (issue
-- 15), from the shipment's row: the row now keeps where the customer's
-- dispatch and delivery emails go, as the shipment's request did. NULL for
-- shipments requested before, whose workflows were started at confirmation
-- with the address in their input.
ALTER TABLE shipments ADD COLUMN customer_email TEXT;
