//! The `urpe` command line: one file per subcommand; `main.rs` only calls [`main`].

mod analyze;
mod bench;
mod bound;
mod check_device;
mod classify;
mod export;
mod init;
mod model_args;
mod plot;
mod predict;
mod reproduce;
mod runtime;
mod sweep;
mod train;
mod witness;

use crate::error::{Error, Result};
use clap::{Parser, Subcommand};
use std::io::Write;

/// `println!` that ends the command quietly ([`Error::OutputClosed`], exit 0) when the
/// reader of standard output has closed it, instead of panicking; use it with `?`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Writes one line to standard output; a closed pipe becomes [`Error::OutputClosed`].
pub(crate) fn write_line(args: std::fmt::Arguments) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush()).map_err(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Error::OutputClosed
        } else {
            Error::Internal(format!("writing to standard output: {e}"))
        }
    })
}

/// Prove, construct and measure the stochastic barrier of in-softmax position encodings.
#[derive(Debug, Parser)]
#[command(name = "urpe", version, about, long_about = None, after_help = format!("\
Examples:
  urpe reproduce                      # the main job: sweep, figures/, figures/REPORT.md
  urpe bound --target position-shift --n 16
  urpe witness --n 16 --d 8
  urpe init --config experiments/model.toml --out model.safetensors
  urpe predict --checkpoint model.safetensors --input X.npy --output Y.npy
  urpe train --target prefix-sum --family urpe --depth 2 --width 32 --heads 4 --n 16 --out runs/x
  urpe plot runs/x                    # training and held-out curves of that run
  urpe analyze --checkpoint runs/x/model.safetensors
  urpe analyze --family rope --depth 2 --width 16 --heads 2 --random-init 3
  urpe classify                       # which family × normaliser × gate × BOS × mask is bound
  urpe export results/reproduce --csv runs.csv --curves curves.csv

{}", crate::error::EXIT_CODES))]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands (parsed once, so their size does not matter).
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)]
enum Command {
    Reproduce(reproduce::Args),
    Bound(bound::Args),
    Witness(witness::Args),
    Init(init::Args),
    Predict(predict::Args),
    Train(train::Args),
    Sweep(sweep::Args),
    Plot(plot::Args),
    Export(export::Args),
    Bench(bench::Args),
    CheckDevice(check_device::Args),
    Analyze(analyze::Args),
    Classify(classify::Args),
}

/// Runs the command line and returns the process exit code ([`crate::error::EXIT_CODES`]).
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run(cli) {
        Ok(()) | Err(Error::OutputClosed) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Bound(a) => bound::run(a),
        Command::Witness(a) => witness::run(a),
        Command::Init(a) => init::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Train(a) => train::run(a),
        Command::Sweep(a) => sweep::run(a),
        Command::Reproduce(a) => reproduce::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Export(a) => export::run(a),
        Command::Bench(a) => bench::run(a),
        Command::CheckDevice(a) => check_device::run(a),
        Command::Analyze(a) => analyze::run(a),
        Command::Classify(a) => classify::run(a),
    }
}

/// Prints `value` as pretty JSON on standard output.
fn print_json(value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    outln!("{text}")
}
