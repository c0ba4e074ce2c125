-- Failed logins and wrong old passwords, one row per attempt and subject, shared by every
-- process and kept across restarts. `subject` is a keyed hash (of an account, a login name as
-- typed or a client address), never the value itself; rows older than the throttle's
-- window are pruned. An attempt is recorded before its password is checked and `attempt`
-- names its rows, so that it can be taken back when the password was right.
CREATE TABLE login_failures (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    subject    VARCHAR(64) NOT NULL,
    attempt    VARCHAR(32) NOT NULL,
    failed_at  BIGINT NOT NULL
);
CREATE INDEX login_failures_subject ON login_failures (subject, failed_at);
CREATE INDEX login_failures_age ON login_failures (failed_at);

-- `dashboard` tokens are session cookies and expire (idle and absolute); `api` tokens, as
-- DRF's, live until revoked.
ALTER TABLE api_tokens ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'api';
