//! Domain types that parse at the edge: once a value exists it is valid.

pub mod auth_chain;
pub mod deployment;
pub mod event;
pub mod id;
pub mod network;
pub mod person;
pub mod tls;
pub mod token;
pub mod view;

pub use deployment::{DeploymentName, DesiredState, Endpoints, Plan, Status, Tier};
pub use event::{Actor, EventType};
pub use id::Id;
pub use person::Role;
