//! Domain types that parse at the edge: once a value exists it is valid.

pub mod deployment;
pub mod id;
pub mod token;

pub use deployment::{DeploymentName, DesiredState, Endpoints, Plan, Status, Tier};
pub use id::Id;
