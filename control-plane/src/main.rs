use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    skyport_control_plane::run(skyport_control_plane::config::Cli::parse()).await
}
