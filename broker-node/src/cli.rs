//! The `skyport-broker` command line, shared by the broker binary and by `skyport`
//! when it runs as a broker (invoked under the name `skyport-broker`).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;
use crate::telemetry::{self, LogFormat};
use clap::{Parser, Subcommand};

/// Skyport broker node: serves one deployment's MQTT listeners and HTTP API.
///
/// Exit codes: 0 after SIGTERM/SIGINT, 1 engine failure, 2 bad configuration,
/// 3 a listener could not be bound.
#[derive(Debug, Parser)]
#[command(
    name = "skyport-broker",
    version,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// JSON config file written by the control plane.
    #[arg(long, env = "SKYPORT_BROKER_CONFIG", required = true)]
    config: Option<PathBuf>,
    /// Log line format; logs go to stderr, filtered by RUST_LOG (default `info,rumqttd=off`).
    #[arg(long, env = "SKYPORT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the OpenAPI document of the deployment API (`/api/v4`) and exit.
    Openapi,
}

/// The `skyport-broker` command: parses arguments, runs the node, never returns.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_path = match (cli.command, cli.config) {
        (Some(Command::Openapi), _) => {
            use std::io::Write;
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::stdout().write_all(crate::api::openapi_json().as_bytes());
            return ExitCode::SUCCESS;
        }
        (None, Some(path)) => path,
        // clap requires --config when there is no subcommand.
        (None, None) => return ExitCode::from(2),
    };
    telemetry::init(cli.log_format);
    let config = match Config::load(&config_path) {
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
