-- Push notifications from the marketplace. A shop opts in with `push_enabled`; its
-- subscription's state lives in `push_subscriptions`, whose row outlives the shop until the
-- marketplace's subscription is deleted (`wanted` = 0; the credentials are copied into the row
-- then, so that the deletion can still be made). `hook_token` is the opaque part of the URL the
-- marketplace posts to. Times are Unix seconds.
ALTER TABLE shops ADD COLUMN push_enabled SMALLINT NOT NULL DEFAULT 0;

CREATE TABLE push_subscriptions (
    shop_id           BIGINT PRIMARY KEY,
    user_id           BIGINT NOT NULL,
    hook_token        VARCHAR(64) NOT NULL,
    wanted            SMALLINT NOT NULL,
    status            VARCHAR(16) NOT NULL,
    subscription_id   VARCHAR(64),
    process_id        VARCHAR(64),
    client_id         VARCHAR(255),
    client_secret_enc TEXT,
    disabled_at       BIGINT,
    last_event_at     BIGINT,
    events_received   BIGINT NOT NULL DEFAULT 0,
    events_rejected   BIGINT NOT NULL DEFAULT 0,
    next_check_at     BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX push_subscriptions_token ON push_subscriptions (hook_token);
CREATE INDEX push_subscriptions_due ON push_subscriptions (next_check_at);

-- Notifications received: waiting to be acted on until `done`, then kept a day so that
-- `digest` (SHA-256 of the body) still makes a redelivery a duplicate.
CREATE TABLE push_events (
    id          BIGINT PRIMARY KEY AUTO_INCREMENT,
    shop_id     BIGINT NOT NULL,
    shipment_id VARCHAR(64) NOT NULL,
    digest      CHAR(64) NOT NULL,
    received_at BIGINT NOT NULL,
    done        SMALLINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX push_events_digest ON push_events (shop_id, digest);
CREATE INDEX push_events_waiting ON push_events (done, shop_id, id);
