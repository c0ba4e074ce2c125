-- A cached token serves only the client id *and* secret that obtained it: tokens are keyed by
-- a keyed fingerprint of the secret as well. The tokens cached so far were keyed by client id
-- alone and cannot be attributed to a secret, so they go; each account's next call fetches one.
DROP TABLE marketplace_tokens;
CREATE TABLE marketplace_tokens (
    client_id          VARCHAR(200) NOT NULL,
    secret_fingerprint CHAR(64) NOT NULL,
    token_enc          TEXT NOT NULL,
    issued_at_ms       BIGINT NOT NULL,
    lifetime_ms        BIGINT NOT NULL,
    PRIMARY KEY (client_id, secret_fingerprint)
);
