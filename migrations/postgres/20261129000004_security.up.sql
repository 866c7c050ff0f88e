-- Broker security a deployment owner manages through the API: deployment API keys,
-- authentication and authorization chains, and a custom server certificate. Rows go
-- with their deployment (ON DELETE CASCADE); every change also bumps the deployment's
-- generation so the reconciler delivers it to the broker.

-- Keys of the deployment's HTTP API (HTTP Basic app_id:app_secret). Only the SHA-256
-- of the secret is kept: secrets are 256-bit random.
CREATE TABLE deployment_app_keys (
    app_id        TEXT PRIMARY KEY NOT NULL,
    deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX deployment_app_keys_by_deployment ON deployment_app_keys (deployment_id, app_id);

-- The authentication and authorization chains, as the broker's security.json holds
-- them; a missing row means the broker's defaults.
CREATE TABLE deployment_auth_chains (
    deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('authentication', 'authorization')),
    chain         JSONB NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (deployment_id, kind)
);

-- A custom server certificate replacing the Skyport-issued one. The private key is
-- AES-256-GCM ciphertext under the control plane's secret key, never plaintext.
CREATE TABLE deployment_tls (
    deployment_id  TEXT PRIMARY KEY NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    tls_type       TEXT NOT NULL,
    cert_pem       TEXT NOT NULL,
    key_ciphertext TEXT NOT NULL,
    ca_pem         TEXT,
    subject        TEXT NOT NULL,
    issuer         TEXT NOT NULL,
    sans           JSONB NOT NULL,
    not_before     TIMESTAMPTZ NOT NULL,
    not_after      TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
