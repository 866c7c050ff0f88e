-- A deployment's persistent-session settings (v3 session expiry, v5 expiry cap, offline
-- queue limit), as the broker's security.json holds them; no row means the defaults.
CREATE TABLE deployment_session_settings (
    deployment_id TEXT PRIMARY KEY NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    settings      TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
