//! The `btcts` binary: everything, logging included, lives in the library
//! (`serve` and `dev` set logging up once their configuration is read).

fn main() -> std::process::ExitCode {
    btcts_api::run(
        std::env::args_os(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )
}
