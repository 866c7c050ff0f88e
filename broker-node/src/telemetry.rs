//! Logging setup: one subscriber, text or JSON, filtered by `RUST_LOG`.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Filter when `RUST_LOG` is unset. rumqttd logs every connection at info and
/// every clean disconnect at error, so its lines are opt-in (`RUST_LOG=info,rumqttd=info`).
const DEFAULT_FILTER: &str = "info,rumqttd=off";

/// Installs the global subscriber; logs go to stderr (stdout stays free).
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
