-- Outbound webhooks. Endpoints belong to a seller; events are rendered once and fanned out to
-- one delivery per subscribed endpoint. Times are Unix seconds except the delivery's
-- `next_attempt_at_ms` (retries in tests are shorter than a second). Everything cascades from
-- the seller; an endpoint's deliveries go with it.
CREATE TABLE webhook_endpoints (
    id            BIGINT PRIMARY KEY AUTO_INCREMENT,
    user_id       BIGINT NOT NULL,
    url           VARCHAR(2048) NOT NULL,
    description   VARCHAR(500) NOT NULL DEFAULT '',
    events        VARCHAR(255) NOT NULL,
    secret_enc    TEXT NOT NULL,
    active        SMALLINT NOT NULL,
    failing_since BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX webhook_endpoints_user ON webhook_endpoints (user_id, id);

-- Changes waiting to become events, written in the transaction of the change itself: a run
-- that ended, a shop whose credentials were refused (`subject_id` names them).
CREATE TABLE webhook_outbox (
    id         BIGINT PRIMARY KEY AUTO_INCREMENT,
    user_id    BIGINT NOT NULL,
    event_type VARCHAR(40) NOT NULL,
    subject_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Shipments changed since their last `shipments.changed` event: one row per shipment however
-- often it changes, turned into events of up to 100 by the dispatcher.
CREATE TABLE webhook_shipment_changes (
    shipment_pk BIGINT PRIMARY KEY,
    shop_id     BIGINT NOT NULL,
    user_id     BIGINT NOT NULL,
    changed_at  BIGINT NOT NULL,
    FOREIGN KEY (shipment_pk) REFERENCES shipments (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX webhook_shipment_changes_shop ON webhook_shipment_changes (shop_id, shipment_pk);

CREATE TABLE webhook_events (
    id         BIGINT PRIMARY KEY AUTO_INCREMENT,
    user_id    BIGINT NOT NULL,
    event_uid  VARCHAR(40) NOT NULL UNIQUE,
    event_type VARCHAR(40) NOT NULL,
    -- MEDIUMTEXT: an event of 100 shipments outgrows TEXT's 64 KB.
    payload    MEDIUMTEXT NOT NULL,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE webhook_deliveries (
    id                 BIGINT PRIMARY KEY AUTO_INCREMENT,
    endpoint_id        BIGINT NOT NULL,
    event_id           BIGINT NOT NULL,
    status             VARCHAR(16) NOT NULL,
    attempts           BIGINT NOT NULL DEFAULT 0,
    last_status_code   BIGINT,
    last_error         VARCHAR(200),
    next_attempt_at_ms BIGINT,
    claim_token        VARCHAR(32),
    created_at         BIGINT NOT NULL,
    delivered_at       BIGINT,
    FOREIGN KEY (endpoint_id) REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    FOREIGN KEY (event_id) REFERENCES webhook_events (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
-- An event's deliveries, for the cascade when it goes and the log's pruning; the prune reads
-- old ended deliveries by their creation.
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);
CREATE INDEX webhook_events_created ON webhook_events (created_at);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at_ms);
