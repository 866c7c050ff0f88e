//! What the Skyport control plane and its broker nodes exchange, as serde types and
//! nothing else, so both sides build on the same definitions without the control plane
//! linking the broker:
//!
//! - [`config`]: the broker's `config.json`, written by the control plane when it starts
//!   a node;
//! - [`security`]: `security.json`, the settings the control plane changes while a node
//!   runs, and [`template`], the check of their external HTTP request templates;
//! - [`metering`]: the usage reports a node sends to the control plane.

pub mod config;
pub mod metering;
pub mod security;
pub mod template;
