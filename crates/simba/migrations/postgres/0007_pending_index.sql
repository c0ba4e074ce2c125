-- A shop's pending details, newest first, straight from an index: the engine's query walked
-- the shop's shipments by date and read each row's detail_synced_at until it found a batch,
-- i.e. every shipment already detailed, on every detail step.
CREATE INDEX shipments_shop_pending_date ON shipments (shop_id, detail_synced_at, shipment_date, id);
DROP INDEX shipments_shop_pending;
