-- Filtering by fulfilment method (the dashboard's and the API's most common filter) counts
-- and pages from an index instead of reading every shipment of the shop or seller.
CREATE INDEX shipments_shop_method_date ON shipments (shop_id, fulfilment_method, shipment_date, id);
CREATE INDEX shipments_user_method_date ON shipments (user_id, fulfilment_method, shipment_date, id);
