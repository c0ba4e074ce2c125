-- Only the shipments still waiting for their detail: storing a detail then deletes the row's
-- entry instead of moving it among the shop's detailed ones, and the index stays as small as
-- the backlog instead of growing with the shop.
CREATE INDEX shipments_shop_pending_only ON shipments (shop_id, shipment_date, id) WHERE detail_synced_at IS NULL;
DROP INDEX shipments_shop_pending_date;
