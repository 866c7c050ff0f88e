-- Answers to POSTs sent with an Idempotency-Key, per caller (an API key, a person or
-- the admin): a retry with the same key and body gets the first answer again for 24 h.
-- A row with a NULL status is a request still in progress. The stored answer is
-- encrypted with the secret key (it can hold a secret shown once, like a new API key's).
CREATE TABLE idempotency_keys (
    principal    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER,
    response     TEXT,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- The most deployments a project may have; NULL is the control plane's default.
ALTER TABLE projects ADD COLUMN max_deployments INTEGER;
