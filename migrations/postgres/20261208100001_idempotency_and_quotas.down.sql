ALTER TABLE projects DROP COLUMN max_deployments;
DROP TABLE idempotency_keys;
