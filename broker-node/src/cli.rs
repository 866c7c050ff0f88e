//! The `skyport-broker` command line, shared by the broker binary and by `skyport`
//! when it runs as a broker (invoked under the name `skyport-broker`).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;
use crate::telemetry::{self, LogFormat};
use clap::Parser;

/// Skyport broker node: serves one deployment's MQTT listeners and HTTP API.
///
/// Exit codes: 0 after SIGTERM/SIGINT, 1 engine failure, 2 bad configuration,
/// 3 a listener could not be bound.
#[derive(Debug, Parser)]
#[command(name = "skyport-broker", version)]
struct Cli {
    /// JSON config file written by the control plane.
    #[arg(long, env = "SKYPORT_BROKER_CONFIG")]
    config: PathBuf,
    /// Log line format; logs go to stderr, filtered by RUST_LOG (default `info,rumqttd=off`).
    #[arg(long, env = "SKYPORT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// The `skyport-broker` command: parses arguments, runs the node, never returns.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("skyport-broker: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("skyport-broker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(crate::run(config)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("skyport-broker: {e}");
            e.exit_code()
        }
    };
    // rumqttd's threads cannot be stopped, so leave without waiting for them.
    std::process::exit(code)
}
