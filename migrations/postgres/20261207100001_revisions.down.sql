DROP TABLE deployment_revisions;
ALTER TABLE deployments DROP COLUMN applied_revision;
