-- When a run's message was last confirmed by the broker (Unix milliseconds), so that the
-- scheduler re-publishes runs whose message never reached it.
ALTER TABLE sync_runs ADD COLUMN dispatched_at_ms BIGINT;
