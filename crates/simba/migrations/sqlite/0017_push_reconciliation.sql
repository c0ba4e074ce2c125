-- The push safety net's reconciliation: when it is next due for an active subscription (NULL
-- until the subscription first becomes active), when it last ran, and what it found (JSON:
-- per fulfilment method, the marketplace's count over its 3-month window, the local count over
-- the same dates, and the first page's shipments missing locally). Times are Unix seconds.
ALTER TABLE push_subscriptions ADD COLUMN reconcile_at BIGINT;
ALTER TABLE push_subscriptions ADD COLUMN reconciled_at BIGINT;
ALTER TABLE push_subscriptions ADD COLUMN reconciliation TEXT;
CREATE INDEX push_subscriptions_reconcile ON push_subscriptions (reconcile_at);
