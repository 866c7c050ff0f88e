//! Encryption at rest of secrets the control plane must read back (custom TLS private
//! keys): AES-256-GCM under the operator's secret key (`--secret-key` /
//! `SKYPORT_SECRET_KEY`, else `DATA_DIR/secret-key`). The code is shared with broker
//! nodes, which seal their resources' secrets the same way.

pub use skyport_secret_key::{OpenError, SecretKey};
