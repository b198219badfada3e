//! The `btcts` binary: everything, logging included, lives in the library
//! (`serve` and `dev` set logging up once their configuration is read).

/// jemalloc rather than the system allocator (the default `jemalloc`
/// feature; docs/operations.md, Memory).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    btcts_api::run(
        std::env::args_os(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )
}
