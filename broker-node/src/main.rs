fn main() -> std::process::ExitCode {
    skyport_broker::cli::main()
}
