-- The exact-match lookups (an order id, a shipment id, reference or track-and-trace code) are
-- indexed per shop, not per seller. A seller-wide index on a random key takes each stored
-- shipment into a random leaf of an index as large as all the seller's shipments, so a sync
-- wrote one page per shipment to each of four such indexes: a third of the SQLite writer's
-- work at 5,000 shops. Per shop, a list page's shipments land in a leaf or two. A seller-wide
-- lookup reads the seller's shops first (`shops_user_id`) and seeks each shop's index; the
-- shipment id needs no index of its own: the shop's unique key (shop_id, shipment_id) is one.
DROP INDEX shipments_user_order;
DROP INDEX shipments_user_reference;
DROP INDEX shipments_user_track;
DROP INDEX shipments_user_shipment;
CREATE INDEX shipments_shop_order ON shipments (shop_id, order_id);
CREATE INDEX shipments_shop_reference ON shipments (shop_id, shipment_reference);
CREATE INDEX shipments_shop_track ON shipments (shop_id, track_and_trace);
