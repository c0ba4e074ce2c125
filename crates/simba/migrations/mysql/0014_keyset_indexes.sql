-- Cursor pagination seeks to a row's position in its list's index and reads on from there.
-- A shop's shipments by id, and a seller's shops by id, had no index in that order: each page
-- sorted the whole shop (or all the seller's shops) first.
CREATE INDEX shipments_shop_id ON shipments (shop_id, id);
CREATE INDEX shops_user_id ON shops (user_id, id);
