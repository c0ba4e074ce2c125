-- Buyer data protection. A shipment whose buyer's personal data was erased keeps the time it
-- was (`personal_data_erased_at`); the index finds a seller's shipments still holding
-- personal data by shipment date, so that a retention run reads only what it erases, however
-- many it erased before. `retention_days` NULL keeps personal data; `retention_changed_at`
-- and `retention_ran_at` let the job run within a minute of a change and hourly after.
ALTER TABLE shipments ADD COLUMN personal_data_erased_at BIGINT;
CREATE INDEX shipments_user_erased_date ON shipments (user_id, personal_data_erased_at, shipment_date, id);
ALTER TABLE users ADD COLUMN retention_days BIGINT;
ALTER TABLE users ADD COLUMN retention_changed_at BIGINT;
ALTER TABLE users ADD COLUMN retention_ran_at BIGINT;

-- Who read buyers' personal data, when, and which shipments or which filter.
CREATE TABLE access_log (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    at           BIGINT NOT NULL,
    actor        VARCHAR(200) NOT NULL,
    action       VARCHAR(32) NOT NULL,
    shipment_ids TEXT,
    filter       TEXT
);
CREATE INDEX access_log_user ON access_log (user_id, id);
CREATE INDEX access_log_at ON access_log (at);
