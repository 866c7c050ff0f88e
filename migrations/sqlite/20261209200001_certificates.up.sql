-- Each deployment's Skyport-issued server certificate, kept so every replica serves and
-- renews the same one. The leader renews it 30 days before `not_after`; the renewal bumps
-- the deployment's generation, so the running broker is handed the new files and reloads
-- them without a restart. The private key is AES-256-GCM ciphertext under the control
-- plane's secret key.
CREATE TABLE deployment_certificates (
    deployment_id  TEXT PRIMARY KEY NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    -- The names it was issued for (JSON array): new names mean a new certificate.
    names          TEXT NOT NULL,
    cert_pem       TEXT NOT NULL,
    key_ciphertext TEXT NOT NULL,
    serial         TEXT NOT NULL,
    not_after      TEXT NOT NULL,
    issued_at      TEXT NOT NULL
);
CREATE INDEX deployment_certificates_due ON deployment_certificates (not_after);

-- Notices already given about a certificate nearing its expiry (`certificate.expiring`),
-- one per certificate: a certificate is named by its resource and its expiry, so a new
-- upload gets its own notice.
CREATE TABLE certificate_notices (
    deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    resource      TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (deployment_id, resource, expires_at)
);
