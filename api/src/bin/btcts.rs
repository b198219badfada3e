//! The `btcts` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    btcts_api::run(
        std::env::args_os(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )
}
