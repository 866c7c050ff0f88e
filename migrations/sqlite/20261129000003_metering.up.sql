-- Metering: node tokens, report cursors, and usage rolled up per minute, hour and month.
--
-- Times are Unix seconds (period starts) or milliseconds (`*_ms`) in BIGINT columns, so
-- both backends bucket them with the same integer arithmetic. No foreign keys: usage of
-- a deleted deployment stays readable (by its project) until retention removes it.

-- The SHA-256 of each deployment's node token; brokers sign their reports with it.
CREATE TABLE metering_node_tokens (
    deployment_id TEXT PRIMARY KEY NOT NULL,
    project_id    TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL
);

-- Last report applied per broker process lifetime (node, epoch): what makes reports
-- idempotent.
CREATE TABLE metering_cursors (
    deployment_id TEXT NOT NULL,
    node_id       TEXT NOT NULL,
    epoch         BIGINT NOT NULL,
    last_seq      BIGINT NOT NULL,
    applied_at_ms BIGINT NOT NULL,
    PRIMARY KEY (deployment_id, node_id, epoch)
);
CREATE INDEX metering_cursors_by_time ON metering_cursors (applied_at_ms);

CREATE TABLE metering_minutes (
    deployment_id          TEXT NOT NULL,
    period_start           BIGINT NOT NULL,
    project_id             TEXT NOT NULL,
    messages_in            BIGINT NOT NULL,
    messages_out           BIGINT NOT NULL,
    retained_out           BIGINT NOT NULL,
    http_published         BIGINT NOT NULL,
    bytes_in               BIGINT NOT NULL,
    bytes_out              BIGINT NOT NULL,
    dropped                BIGINT NOT NULL,
    sessions_max           BIGINT NOT NULL,
    connected_max          BIGINT NOT NULL,
    offline_persistent_max BIGINT NOT NULL,
    session_seconds        BIGINT NOT NULL,
    seconds                BIGINT NOT NULL,
    tps_max                BIGINT NOT NULL,
    PRIMARY KEY (deployment_id, period_start)
);
CREATE INDEX metering_minutes_by_time ON metering_minutes (period_start);

CREATE TABLE metering_hours (
    deployment_id          TEXT NOT NULL,
    period_start           BIGINT NOT NULL,
    project_id             TEXT NOT NULL,
    messages_in            BIGINT NOT NULL,
    messages_out           BIGINT NOT NULL,
    retained_out           BIGINT NOT NULL,
    http_published         BIGINT NOT NULL,
    bytes_in               BIGINT NOT NULL,
    bytes_out              BIGINT NOT NULL,
    dropped                BIGINT NOT NULL,
    sessions_max           BIGINT NOT NULL,
    connected_max          BIGINT NOT NULL,
    offline_persistent_max BIGINT NOT NULL,
    session_seconds        BIGINT NOT NULL,
    seconds                BIGINT NOT NULL,
    tps_max                BIGINT NOT NULL,
    PRIMARY KEY (deployment_id, period_start)
);
CREATE INDEX metering_hours_by_time ON metering_hours (period_start);

CREATE TABLE metering_months (
    deployment_id          TEXT NOT NULL,
    period_start           BIGINT NOT NULL,
    project_id             TEXT NOT NULL,
    messages_in            BIGINT NOT NULL,
    messages_out           BIGINT NOT NULL,
    retained_out           BIGINT NOT NULL,
    http_published         BIGINT NOT NULL,
    bytes_in               BIGINT NOT NULL,
    bytes_out              BIGINT NOT NULL,
    dropped                BIGINT NOT NULL,
    sessions_max           BIGINT NOT NULL,
    connected_max          BIGINT NOT NULL,
    offline_persistent_max BIGINT NOT NULL,
    session_seconds        BIGINT NOT NULL,
    seconds                BIGINT NOT NULL,
    tps_max                BIGINT NOT NULL,
    PRIMARY KEY (deployment_id, period_start)
);
CREATE INDEX metering_months_by_project ON metering_months (project_id, period_start);
