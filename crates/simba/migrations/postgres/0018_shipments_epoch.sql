-- Bumped only by the changes a client must see at once (a run's end, a push, an erasure, a
-- shop's deletion), not by each step of a run: a list page read during a run may be served
-- again for a moment after the run's next step (SIMBA_PAGE_CACHE_STALE_MS), never after these.
ALTER TABLE users ADD COLUMN shipments_epoch BIGINT NOT NULL DEFAULT 0;
