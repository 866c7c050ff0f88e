-- Deployment event log. No foreign key: events outlive their deployment for the
-- retention period, and are purged by age.
CREATE TABLE deployment_events (
    id            TEXT PRIMARY KEY NOT NULL,
    deployment_id TEXT NOT NULL,
    project_id    TEXT NOT NULL,
    type          TEXT NOT NULL,
    actor         TEXT NOT NULL,
    details       TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX deployment_events_by_deployment ON deployment_events (deployment_id, id);
CREATE INDEX deployment_events_by_time ON deployment_events (created_at);
