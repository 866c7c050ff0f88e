-- Where a project's alerts go: a webhook (JSON signed with HMAC-SHA256; the secret is
-- sealed with the control plane's secret key, the channel id as context) or email.
CREATE TABLE alert_channels (
    id                TEXT PRIMARY KEY NOT NULL,
    project_id        TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    target            TEXT NOT NULL,
    secret_ciphertext TEXT,
    created_at        TEXT NOT NULL
);
CREATE INDEX alert_channels_by_project ON alert_channels (project_id, id);

-- What a project watches; deployment_id NULL watches all of its deployments. Channel
-- ids are a JSON array (a channel named by a rule cannot be deleted).
CREATE TABLE alert_rules (
    id                      TEXT PRIMARY KEY NOT NULL,
    project_id              TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name                    TEXT NOT NULL,
    deployment_id           TEXT,
    rule_condition          TEXT NOT NULL,
    channel_ids             TEXT NOT NULL,
    repeat_interval_seconds BIGINT,
    enabled                 BOOLEAN NOT NULL,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL
);
CREATE INDEX alert_rules_by_project ON alert_rules (project_id, id);

-- Active alerts: one per rule and subject (a deployment, its certificate or a domain),
-- pending until fired_at is set; the row goes when the condition ends.
CREATE TABLE alert_states (
    rule_id          TEXT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    subject          TEXT NOT NULL,
    project_id       TEXT NOT NULL,
    deployment_id    TEXT NOT NULL,
    since            TEXT NOT NULL,
    fired_at         TEXT,
    last_notified_at TEXT,
    notifications    BIGINT NOT NULL,
    message          TEXT NOT NULL,
    PRIMARY KEY (rule_id, subject)
);
CREATE INDEX alert_states_by_project ON alert_states (project_id);

-- Each deployment's load in the newest minute of its last usage report (sessions and
-- TPS peaks since the report before), kept with the report in one transaction.
CREATE TABLE deployment_load (
    deployment_id  TEXT PRIMARY KEY NOT NULL,
    project_id     TEXT NOT NULL,
    minute         BIGINT NOT NULL,
    sessions       BIGINT NOT NULL,
    tps            BIGINT NOT NULL,
    reported_at_ms BIGINT NOT NULL
);
