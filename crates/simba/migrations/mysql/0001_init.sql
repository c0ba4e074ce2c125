-- Timestamps are Unix seconds (UTC) so that the same queries run on every backend.
CREATE TABLE settings (
    name  VARCHAR(64) PRIMARY KEY,
    value TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE users (
    id            BIGINT PRIMARY KEY AUTO_INCREMENT,
    username      VARCHAR(150) NOT NULL UNIQUE,
    email         VARCHAR(254) NOT NULL UNIQUE,
    password_hash VARCHAR(255) NOT NULL,
    first_name    VARCHAR(150) NOT NULL DEFAULT '',
    last_name     VARCHAR(150) NOT NULL DEFAULT '',
    date_joined   BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE api_tokens (
    id           BIGINT PRIMARY KEY AUTO_INCREMENT,
    user_id      BIGINT NOT NULL,
    token_hash   CHAR(64) NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE shops (
    id                     BIGINT PRIMARY KEY AUTO_INCREMENT,
    user_id                BIGINT NOT NULL,
    name                   VARCHAR(200) NOT NULL,
    marketplace            VARCHAR(16) NOT NULL,
    client_id              VARCHAR(200) NOT NULL,
    client_secret_enc      TEXT NOT NULL,
    auto_sync              SMALLINT NOT NULL,
    sync_interval_minutes  INTEGER NOT NULL,
    last_synced_at         BIGINT,
    active_run_id          BIGINT,
    shipment_count         BIGINT NOT NULL DEFAULT 0,
    credentials_rejected_at BIGINT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    UNIQUE (user_id, marketplace, client_id),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE sync_runs (
    id                 BIGINT PRIMARY KEY AUTO_INCREMENT,
    shop_id            BIGINT NOT NULL,
    mode               VARCHAR(16) NOT NULL,
    run_trigger        VARCHAR(16) NOT NULL,
    status             VARCHAR(16) NOT NULL,
    created_at         BIGINT NOT NULL,
    started_at         BIGINT,
    finished_at        BIGINT,
    pages_fetched      BIGINT NOT NULL DEFAULT 0,
    shipments_seen     BIGINT NOT NULL DEFAULT 0,
    details_fetched    BIGINT NOT NULL DEFAULT 0,
    shipments_stored   BIGINT NOT NULL DEFAULT 0,
    details_pending    BIGINT NOT NULL DEFAULT 0,
    calls_list         BIGINT NOT NULL DEFAULT 0,
    calls_detail       BIGINT NOT NULL DEFAULT 0,
    calls_token        BIGINT NOT NULL DEFAULT 0,
    calls_rate_limited BIGINT NOT NULL DEFAULT 0,
    calls_errors       BIGINT NOT NULL DEFAULT 0,
    error              TEXT,
    checkpoint         TEXT,
    FOREIGN KEY (shop_id) REFERENCES shops (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX sync_runs_shop ON sync_runs (shop_id, id);

CREATE TABLE shipments (
    id                 BIGINT PRIMARY KEY AUTO_INCREMENT,
    shop_id            BIGINT NOT NULL,
    user_id            BIGINT NOT NULL,
    shipment_id        VARCHAR(64) NOT NULL,
    shipment_date      BIGINT NOT NULL,
    shipment_reference VARCHAR(255),
    fulfilment_method  VARCHAR(8) NOT NULL,
    order_id           VARCHAR(64),
    order_placed_at    BIGINT,
    pickup_point       SMALLINT,
    transport_id       VARCHAR(64),
    transporter_code   VARCHAR(64),
    track_and_trace    VARCHAR(255),
    shipping_label_id  VARCHAR(64),
    transport_events   TEXT,
    items              TEXT NOT NULL,
    customer           TEXT,
    raw                MEDIUMTEXT,
    detail_synced_at   BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    UNIQUE (shop_id, shipment_id),
    FOREIGN KEY (shop_id) REFERENCES shops (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX shipments_user_date ON shipments (user_id, shipment_date, id);
CREATE INDEX shipments_shop_date ON shipments (shop_id, shipment_date, id);
CREATE INDEX shipments_user_id ON shipments (user_id, id);
CREATE INDEX shipments_user_order ON shipments (user_id, order_id);
CREATE INDEX shipments_user_reference ON shipments (user_id, shipment_reference);
CREATE INDEX shipments_user_track ON shipments (user_id, track_and_trace);
CREATE INDEX shipments_user_shipment ON shipments (user_id, shipment_id);

CREATE TABLE shipment_items (
    id            BIGINT PRIMARY KEY AUTO_INCREMENT,
    shipment_pk   BIGINT NOT NULL,
    user_id       BIGINT NOT NULL,
    order_item_id VARCHAR(64) NOT NULL,
    ean           VARCHAR(32),
    FOREIGN KEY (shipment_pk) REFERENCES shipments (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX shipment_items_shipment ON shipment_items (shipment_pk);
CREATE INDEX shipment_items_ean ON shipment_items (user_id, ean);
