//! Skyport control plane: REST API, store, reconciler, orchestrators and CA.

pub mod app;
pub mod ca;
pub mod config;
pub mod dns;
pub mod domain;
pub mod domains;
pub mod encryption;
pub mod error;
pub mod events;
pub mod http;
pub mod metering;
pub mod metrics;
pub mod orchestrator;
pub mod reconcile;
pub mod store;
pub mod telemetry;

use config::{Cli, Command, MigrateDirection};

/// Runs the command the CLI names.
pub async fn run(mut cli: Cli) -> anyhow::Result<()> {
    // Brokers resolve paths from their own directories: hand them absolute ones.
    cli.common.data_dir = std::path::absolute(&cli.common.data_dir)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            telemetry::init(cli.common.log_format);
            app::serve(&cli.common, &cli.serve).await
        }
        Command::Migrate { direction } => {
            telemetry::init(cli.common.log_format);
            std::fs::create_dir_all(&cli.common.data_dir)?;
            let store = store::connect(&cli.common.database_url()).await?;
            match direction.unwrap_or(MigrateDirection::Up) {
                MigrateDirection::Up => store.migrate().await?,
                MigrateDirection::Down { target } => store.migrate_down(target).await?,
            }
            println!("migrations done");
            Ok(())
        }
        Command::Openapi => {
            print!("{}", http::openapi_json());
            Ok(())
        }
        Command::RenderManifests {
            deployment_file,
            kube,
        } => orchestrator::kubernetes::render::run(&deployment_file, &kube.settings()),
    }
}
