-- The change feed: every change a seller's consumers should see gives the shipment the next
-- number of its seller's sequence (`users.change_seq`, advanced under the seller row's lock in
-- the transaction that makes the change), so that a consumer reads what changed after the last
-- number it saw from an index. Rows stored before the feed take their id: ids grow, and are
-- unique per seller because they are unique.
ALTER TABLE shipments ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
UPDATE shipments SET change_seq = id;
UPDATE users SET change_seq = COALESCE((SELECT MAX(s.id) FROM shipments s WHERE s.user_id = users.id), 0);
CREATE UNIQUE INDEX shipments_user_change ON shipments (user_id, change_seq);
CREATE INDEX shipments_shop_change ON shipments (shop_id, change_seq);
