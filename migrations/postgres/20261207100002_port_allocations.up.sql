-- Host ports of local brokers, allocated in one place so two deployments can never be
-- handed the same port: the primary key makes a port unique per host, whatever the
-- number of concurrent creates or control-plane replicas.
CREATE TABLE port_allocations (
    host          TEXT NOT NULL,
    port          INTEGER NOT NULL,
    deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    listener      TEXT NOT NULL,
    allocated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (host, port),
    UNIQUE (host, deployment_id, listener)
);
