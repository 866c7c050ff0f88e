use clap::Parser;

/// The same allocator as `skyport-broker`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
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
