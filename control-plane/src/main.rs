use clap::Parser;

/// The same allocator as `skyport-broker`: this binary also runs the broker node.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    // Invoked as `skyport-broker` (see `app::broker_bin`): be the broker node.
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|name| name == "skyport-broker")
    {
        return skyport_broker::cli::main();
    }
    let runtime = tokio::runtime::Runtime::new().expect("starting the async runtime");
    match runtime.block_on(skyport_control_plane::run(
        skyport_control_plane::config::Cli::parse(),
    )) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("skyport: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
