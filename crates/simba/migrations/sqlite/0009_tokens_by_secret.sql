-- A cached token serves only the client id *and* secret that obtained it: tokens are keyed by
-- a keyed fingerprint of the secret as well. The tokens cached so far were keyed by client id
-- alone and cannot be attributed to a secret, so they go; each account's next call fetches one.
DROP TABLE marketplace_tokens;
CREATE TABLE marketplace_tokens (
    client_id          VARCHAR(200) NOT NULL,
    secret_fingerprint VARCHAR(64) NOT NULL,
    token_enc          TEXT NOT NULL,
    issued_at_ms       BIGINT NOT NULL,
    lifetime_ms        BIGINT NOT NULL,
    PRIMARY KEY (client_id, secret_fingerprint)
);

-- Token requests the marketplace refused, counted by seller. bol blocks an address that asks
-- for tokens too often, which would stop every seller's syncs: a seller's credentials that hold
-- no token may ask only so often (see `store::marketplace`). Rows older than the window are
-- pruned.
CREATE TABLE credential_rejections (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     BIGINT NOT NULL,
    client_id   VARCHAR(200) NOT NULL,
    rejected_at BIGINT NOT NULL
);
CREATE INDEX credential_rejections_user ON credential_rejections (user_id, rejected_at);
