//! Skyport control plane: REST API, store, reconciler, orchestrators and CA.

pub mod alerts;
pub mod app;
pub mod ca;
pub mod certificates;
pub mod config;
pub mod console;
pub mod dns;
pub mod domain;
pub mod domains;
pub mod encryption;
pub mod error;
pub mod events;
pub mod http;
pub mod leadership;
pub mod metering;
pub mod metrics;
pub mod orchestrator;
pub mod reconcile;
pub mod signin;
pub mod store;
pub mod telemetry;

use config::{Cli, Command, MigrateDirection, UsersCommand};

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
        Command::Users { action } => {
            telemetry::init(cli.common.log_format);
            std::fs::create_dir_all(&cli.common.data_dir)?;
            let store = store::connect(&cli.common.database_url()).await?;
            store.migrate().await?;
            users(store.as_ref(), action).await
        }
        Command::Openapi => {
            print!("{}", http::openapi_json());
            Ok(())
        }
        Command::ConsoleClient { spec } => {
            let text = std::fs::read_to_string(&spec)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", spec.display()))?;
            print!("{}", console::client::generate(&text)?);
            Ok(())
        }
        Command::RenderManifests {
            deployment_file,
            kube,
        } => orchestrator::kubernetes::render::run(&deployment_file, &kube.settings()),
    }
}

/// `skyport users …`.
async fn users(store: &dyn store::Store, action: UsersCommand) -> anyhow::Result<()> {
    match action {
        UsersCommand::Add {
            email,
            password_stdin,
            project,
            role,
        } => {
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                (domain::token::generate(""), true)
            };
            let project = project
                .map(|raw| {
                    raw.parse::<domain::Id>()
                        .map_err(|_| anyhow::anyhow!("`{raw}` is not a project id"))
                })
                .transpose()?;
            if let Some(id) = project {
                store
                    .get_project(id)
                    .await
                    .map_err(|_| anyhow::anyhow!("project {id} not found"))?;
            }
            let user = http::session::add_user(store, &email, &password)
                .await
                .map_err(|err| anyhow::anyhow!("{} ({})", err.detail, err.code))?;
            if let Some(id) = project {
                let role: domain::Role = role.parse().map_err(anyhow::Error::msg)?;
                store
                    .add_member(id, user.id, role, chrono::Utc::now())
                    .await?;
                println!(
                    "user {} ({}) added, {role} of project {id}",
                    user.email, user.id
                );
            } else {
                println!("user {} ({}) added", user.email, user.id);
            }
            if generated {
                println!("password (shown once): {password}");
            }
            Ok(())
        }
    }
}
