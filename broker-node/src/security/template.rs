//! Templates of external HTTP authentication and ACL requests: `skyport-settings`' (the
//! control plane validates API input with the same parser).

pub use skyport_settings::template::*;
