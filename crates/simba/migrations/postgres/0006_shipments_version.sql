-- Bumped by every transaction that changes the seller's shipments, so that a list page served
-- from memory is known to be current with one primary-key read.
ALTER TABLE users ADD COLUMN shipments_version BIGINT NOT NULL DEFAULT 0;
