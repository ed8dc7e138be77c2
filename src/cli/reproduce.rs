//! `urpe reproduce`: the main job. Runs the compiled-in experiment (resuming what is
//! stored), then draws every figure and writes figures/REPORT.md.

use super::outln;
use super::plot::plot_and_report;
use super::sweep::run_sweep;
use crate::error::{Error, Result};
use crate::experiment::builtin::Profile;
use std::path::PathBuf;
use std::time::Instant;

/// Reproduce the negative result and the URPE fix: sweep, figures, report.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  urpe reproduce                   # about 4 minutes on 2 cores: results/reproduce, figures/
  urpe reproduce --profile zoo     # families and normalisers: results/zoo, figures/zoo
  urpe reproduce --profile full    # for a GPU or a cluster: results/full, figures/full

Running it again resumes: stored runs are not trained again, figures are redrawn.
The experiment files are experiments/reproduce.toml (quick), experiments/zoo.toml and
experiments/full.toml.")]
pub struct Args {
    /// Which compiled-in experiment.
    #[arg(long, value_enum, default_value = "quick")]
    profile: Profile,
    /// Results folder [default: results/reproduce, results/zoo or results/full].
    #[arg(long)]
    results: Option<PathBuf>,
    /// Figures and REPORT.md folder [default: figures, figures/zoo or figures/full].
    #[arg(long)]
    figures: Option<PathBuf>,
    /// Worker threads [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(a: Args) -> Result<()> {
    let experiment = a.profile.experiment();
    let (results, figures) = a.profile.folders();
    let results = a.results.clone().unwrap_or_else(|| results.into());
    let figures = a.figures.clone().unwrap_or_else(|| figures.into());
    let start = Instant::now();
    let options = crate::experiment::sweep::SweepOptions::default();
    let summary = run_sweep(&experiment, &results, None, options, a.threads, &crate::engine::Backend::Ndarray)?;
    if summary.left > 0 {
        return Err(Error::Interrupted(format!("{} runs left; run `urpe reproduce` again to resume", summary.left)));
    }
    let seconds = start.elapsed().as_secs_f64();
    let profile = a.profile.name();
    let commands = vec![
        format!("urpe reproduce --profile {profile} --results {} --figures {}", results.display(), figures.display()),
        format!("urpe plot {} --out {}   # redraws from the store alone", results.display(), figures.display()),
    ];
    let report =
        super::runtime::with_threads(a.threads, || plot_and_report(&results, &figures, Some(seconds), commands))?;
    outln!(
        "{} runs ({} new) in {:.0} s; report: {}",
        summary.jobs,
        summary.done,
        start.elapsed().as_secs_f64(),
        report.display()
    )?;
    Ok(())
}
