-- Networking add-ons of a deployment: custom domains (served by SNI once their DNS
-- record is verified), a NAT gateway (fixed egress addresses) and an internal endpoint
-- (a private entry point for peered networks). Rows go with their deployment.

-- Custom domains. The name is the primary key: a domain belongs to at most one
-- deployment across all projects. Every domain has a certificate from the start, the
-- owner's or one issued by Skyport's CA; its private key is AES-256-GCM ciphertext.
CREATE TABLE deployment_domains (
    domain          TEXT PRIMARY KEY NOT NULL,
    deployment_id   TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    status          TEXT NOT NULL CHECK (status IN ('pending_dns', 'active')),
    cert_source     TEXT NOT NULL CHECK (cert_source IN ('uploaded', 'skyport')),
    cert_pem        TEXT NOT NULL,
    key_ciphertext  TEXT NOT NULL,
    cert_expires_at TIMESTAMPTZ NOT NULL,
    -- The last DNS answer seen, shown to the owner while the record is missing or wrong.
    observed        JSONB,
    checks          BIGINT NOT NULL DEFAULT 0,
    last_checked_at TIMESTAMPTZ,
    next_check_at   TIMESTAMPTZ,
    verified_at     TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX deployment_domains_by_deployment ON deployment_domains (deployment_id, domain);
CREATE INDEX deployment_domains_due ON deployment_domains (status, next_check_at);

-- NAT gateway: the egress addresses are fixed when it is created.
CREATE TABLE deployment_nat_gateways (
    deployment_id    TEXT PRIMARY KEY NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    egress_addresses JSONB NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);

-- Internal endpoint: the private address (none until the platform assigns one) and the
-- client ranges it admits.
CREATE TABLE deployment_internal_endpoints (
    deployment_id TEXT PRIMARY KEY NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    address       TEXT,
    allowed_cidrs JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
