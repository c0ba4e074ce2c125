-- When a shop's next automatic sync is due (Unix seconds), NULL when none is: automatic sync
-- off or credentials refused. Indexed, so that the scheduler reads only the shops that are due
-- instead of computing `last_run_at + interval` for every shop. Shops never synced start due;
-- the scheduler spreads every shop overdue by more than a pass over its interval.
ALTER TABLE shops ADD COLUMN next_sync_at BIGINT;
UPDATE shops SET next_sync_at = COALESCE(last_run_at + sync_interval_minutes * 60, 0)
    WHERE auto_sync = 1 AND credentials_rejected_at IS NULL;
CREATE INDEX shops_next_sync ON shops (next_sync_at);
