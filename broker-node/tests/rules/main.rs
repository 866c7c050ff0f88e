//! Data integrations on a real node: rules created through `/api/v4/rules` select and
//! transform real MQTT traffic (mosquitto clients) into real sinks — the node itself
//! (republish), an HTTP receiver this test runs, the machine's Redis, PostgreSQL,
//! MariaDB, RabbitMQ and NATS — exactly once per matched message; a sink cut off
//! mid-stream (a TCP relay the test controls) loses nothing that fits the buffer, across
//! a planned restart too; bad statements and configs are refused with precise errors
//! and store nothing.
//!
//! One file per sink; `support.rs` holds the node, API and outage helpers they share.

#[path = "../common/mod.rs"]
mod common;
mod support;

mod api;
mod nats;
mod rabbit;
mod redis;
mod republish;
mod sql;
mod webhook;
