/// jemalloc: with glibc's allocator each idle client connection keeps about 70 KiB
/// resident, with jemalloc about 35 KiB (`bench/results/fanout.md`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    skyport_broker::cli::main()
}
