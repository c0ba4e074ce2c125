-- Named leases for work exactly one process may do at a time, such as scheduling.
CREATE TABLE leases (
    name       VARCHAR(64) PRIMARY KEY,
    owner      VARCHAR(64) NOT NULL,
    until_ms   BIGINT NOT NULL
);
