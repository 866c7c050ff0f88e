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

/// Filter when `RUST_LOG` is unset.
const DEFAULT_FILTER: &str = "info";

/// The filter for a `RUST_LOG` value. rumqttd's router opens an error-level span for every
/// event it handles (and the text formatter renders each span's fields), logs every link
/// at info and every clean disconnect at error: that costs about a third of the node's CPU
/// under load and says nothing to an operator. So rumqttd is off unless the filter names
/// it (`RUST_LOG=info,rumqttd=info`).
fn filter_spec(rust_log: Option<&str>) -> String {
    let spec = rust_log
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_FILTER);
    if spec.contains("rumqttd") {
        spec.to_owned()
    } else {
        format!("{spec},rumqttd=off")
    }
}

/// Installs the global subscriber; logs go to stderr (stdout stays free).
pub fn init(format: LogFormat) {
    let spec = filter_spec(std::env::var("RUST_LOG").ok().as_deref());
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|error| {
        eprintln!("skyport-broker: ignoring RUST_LOG ({error}); using {DEFAULT_FILTER}");
        EnvFilter::new(filter_spec(None))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::filter_spec;

    #[test]
    fn rumqttd_is_off_unless_named() {
        assert_eq!(filter_spec(None), "info,rumqttd=off");
        assert_eq!(filter_spec(Some(" ")), "info,rumqttd=off");
        assert_eq!(filter_spec(Some("warn")), "warn,rumqttd=off");
        assert_eq!(
            filter_spec(Some("debug,skyport_broker=trace")),
            "debug,skyport_broker=trace,rumqttd=off"
        );
        assert_eq!(
            filter_spec(Some("info,rumqttd=debug")),
            "info,rumqttd=debug"
        );
    }
}
