//! The `dockhand` binary: only wiring, everything lives in the library.

fn main() -> std::process::ExitCode {
    dockhand::cli::main()
}
