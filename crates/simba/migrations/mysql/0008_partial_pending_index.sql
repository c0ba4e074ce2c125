-- MySQL and MariaDB have no partial indexes: shipments_shop_pending_date stays.
DO 0;
