//! Who may connect, publish and subscribe: authentication, authorization, bans, and the
//! hot-reloaded settings that configure them.

pub mod settings;
