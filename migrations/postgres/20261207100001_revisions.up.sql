-- Read-your-writes to brokers. Every write a broker must apply bumps the deployment's
-- generation; that number is the write's revision. The broker reports the revision of
-- the settings it has in force, and the reconciler records it here.
ALTER TABLE deployments ADD COLUMN applied_revision BIGINT NOT NULL DEFAULT 0;

-- The revision at which each broker-applied resource last changed (`authentication`,
-- `tls`, `app_key:<id>`, `domain:<name>`, ...): it is `pending` until the broker's
-- applied revision reaches it.
CREATE TABLE deployment_revisions (
    deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    resource      TEXT NOT NULL,
    revision      BIGINT NOT NULL,
    PRIMARY KEY (deployment_id, resource)
);
