-- The sync engine: a lease per shop (one driver at a time), marketplace tokens and rate
-- budgets shared by every worker, and what the scheduler and the run queue look up.
ALTER TABLE shops ADD COLUMN lease_owner VARCHAR(64);
ALTER TABLE shops ADD COLUMN lease_until BIGINT;
ALTER TABLE shops ADD COLUMN last_run_at BIGINT;
CREATE INDEX sync_runs_status ON sync_runs (status, id);
CREATE INDEX shipments_shop_pending ON shipments (shop_id, detail_synced_at);

CREATE TABLE marketplace_tokens (
    client_id    VARCHAR(200) PRIMARY KEY,
    token_enc    TEXT NOT NULL,
    issued_at_ms BIGINT NOT NULL,
    lifetime_ms  BIGINT NOT NULL
);

CREATE TABLE rate_budgets (
    client_id  VARCHAR(200) PRIMARY KEY,
    snapshot   TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
