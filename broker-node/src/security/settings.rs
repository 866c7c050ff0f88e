//! `security.json`: the part of a broker's configuration that changes while it runs.
//!
//! The types are `skyport-settings`' (the control plane writes the file with them); the
//! node notices a new version within a second ([`crate::reload`]) and swaps it in without
//! dropping connections.

pub use skyport_settings::security::*;
