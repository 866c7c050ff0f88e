CREATE TABLE projects (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    project_id   TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT
);
CREATE INDEX api_keys_project ON api_keys (project_id);

CREATE TABLE deployments (
    id                  TEXT PRIMARY KEY NOT NULL,
    project_id          TEXT NOT NULL REFERENCES projects (id),
    name                TEXT NOT NULL,
    plan                TEXT NOT NULL,
    max_sessions        BIGINT NOT NULL,
    max_tps             BIGINT NOT NULL,
    version             TEXT NOT NULL,
    desired_state       TEXT NOT NULL,
    status              TEXT NOT NULL,
    status_reason       TEXT,
    generation          BIGINT NOT NULL,
    observed_generation BIGINT NOT NULL,
    endpoints           TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE certificate_authority (
    id         INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    cert_pem   TEXT NOT NULL,
    key_pem    TEXT NOT NULL,
    created_at TEXT NOT NULL
);
