//! The `seedbox` binary: a thin edge over [`seedbox::cli`].

fn main() -> std::process::ExitCode {
    seedbox::cli::main()
}
