//! The `urpe` binary: see `urpe --help`.

fn main() {
    std::process::exit(urpe::cli::main());
}
