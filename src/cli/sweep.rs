//! `urpe sweep`: run an experiment's grid into a results store, in parallel, resumable,
//! shardable across machines.

use super::runtime::{EngineArgs, stop_flag, with_threads};
use crate::engine::Backend;
use crate::error::{Error, Result};
use crate::experiment::Experiment;
use crate::experiment::store::SweepLog;
use crate::experiment::sweep::{SweepOptions, SweepSummary, cost, parse_shard, plan_sweep, run_plan};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Run every job of an experiment file; append each finished run to DIR/runs.jsonl.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  urpe sweep experiments/reproduce.toml --out results/reproduce
  urpe sweep experiments/reproduce.toml --out results/reproduce --shard 0/4   # jobs 0, 4, 8, …

Running it again skips the runs already stored (resume). With --shard K/N (K from 0) the
runs go to DIR/runs-shard-K-of-N.jsonl; the store is every runs*.jsonl file in DIR, so
shards merge by putting their files in one folder. Ctrl-C (or SIGTERM) stops the running
jobs after their current step and saves their training state in DIR/partial/; the next
run of the same command continues them from there. Progress counts runs; the ETA weighs
them by their cost.")]
pub struct Args {
    /// Experiment file (TOML).
    experiment: PathBuf,
    /// Results folder.
    #[arg(long)]
    out: PathBuf,
    /// Run only every N-th job, starting at K (0-based): K/N.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Worker threads, one job each [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    engine: EngineArgs,
    /// Run the grid points that can be built and list the others (a head count that does
    /// not divide a width) before starting, instead of refusing the experiment.
    #[arg(long)]
    skip_invalid: bool,
    /// Add runs to a store that holds runs of this experiment's grid points with other
    /// settings (e.g. another `steps`), keeping both: statistics, figures and reports show
    /// each setting apart. Without it such a sweep is refused.
    #[arg(long)]
    keep_other_settings: bool,
}

/// Reads an experiment file.
pub fn read_experiment(path: &Path) -> Result<Experiment> {
    let text = String::from_utf8(crate::io::read(path)?).map_err(|_| Error::file(path, "not UTF-8 text"))?;
    Experiment::parse(&text).map_err(|e| Error::file(path, format!("invalid experiment: {e}")))
}

/// Runs `experiment` into `out` with a progress bar (or plain lines); returns the summary.
/// Grid points skipped under [`SweepOptions::skip_invalid`] are listed before it starts.
pub fn run_sweep(
    experiment: &Experiment,
    out: &Path,
    shard: Option<(usize, usize)>,
    options: SweepOptions,
    threads: Option<usize>,
    backend: &Backend,
) -> Result<SweepSummary> {
    let store = crate::experiment::Store::open(out)?;
    let plan = plan_sweep(experiment, &store, shard, options)?;
    if !plan.skipped.is_empty() {
        eprintln!("skipping {} grid point(s) that cannot be built (--skip-invalid):", plan.skipped.len());
        for s in &plan.skipped {
            eprintln!("  {s}");
        }
    }
    let pending_jobs = plan.pending();
    let total: u64 = pending_jobs.iter().map(|j| cost(j)).sum();
    let pending = pending_jobs.len();
    eprintln!(
        "{}: {} runs, {} stored already, {pending} to run",
        experiment.name,
        plan.jobs.len(),
        plan.jobs.len() - pending
    );
    let continuing = pending_jobs.iter().filter(|j| store.partial_for(&j.id).exists()).count();
    if continuing > 0 {
        let runs = if continuing == 1 { "run" } else { "runs" };
        eprintln!("continuing {continuing} stopped {runs} from {}", out.join("partial").display());
    }
    let stop = stop_flag()?;
    let start = Instant::now();
    let progress = AtomicU64::new(0);
    let finished = AtomicU64::new(0);
    // The bar and the percentages count runs; the ETA weighs the runs by their cost.
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(pending as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} runs ({percent}%)  {elapsed} elapsed{msg}")
                .expect("a valid template"),
        );
        bar
    });
    let on_done = |c: u64| {
        let p = progress.fetch_add(c, Ordering::Relaxed) + c;
        let f = finished.fetch_add(1, Ordering::Relaxed) + 1;
        let elapsed = start.elapsed().as_secs_f64();
        let eta = elapsed / p as f64 * (total.saturating_sub(p)) as f64;
        match &bar {
            Some(bar) => {
                bar.set_position(f);
                bar.set_message(format!(", ETA {}", indicatif::HumanDuration(Duration::from_secs_f64(eta))));
            }
            None => {
                if f as usize == pending || f.is_multiple_of(10) {
                    eprintln!(
                        "{f}/{pending} runs ({:.0}%), {elapsed:.0} s elapsed, ETA {eta:.0} s",
                        100.0 * f as f64 / pending.max(1) as f64
                    );
                }
            }
        }
    };
    let summary = with_threads(threads, || run_plan(&plan, &store, backend, &stop, &on_done))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    eprintln!(
        "{} runs stored now ({} diverged), {} stored before, {} left; {:.1} s",
        summary.done,
        summary.diverged,
        summary.stored_before,
        summary.left,
        start.elapsed().as_secs_f64()
    );
    if pending > 0 {
        store.log_sweep(&SweepLog {
            experiment: experiment.name.clone(),
            description: experiment.description.clone(),
            shard: shard.map(|(k, n)| format!("{k}/{n}")),
            threads: threads.unwrap_or_else(rayon::current_num_threads),
            seconds: start.elapsed().as_secs_f64(),
            stored: summary.done,
            git: crate::experiment::sweep::GIT_REVISION.to_string(),
        })?;
    }
    Ok(summary)
}

pub fn run(a: Args) -> Result<()> {
    let experiment = read_experiment(&a.experiment)?;
    let shard = a.shard.as_deref().map(parse_shard).transpose()?;
    let backend = a.engine.backend()?;
    let options = SweepOptions { skip_invalid: a.skip_invalid, keep_other_settings: a.keep_other_settings };
    let summary = run_sweep(&experiment, &a.out, shard, options, a.threads, &backend)?;
    if summary.left > 0 {
        return Err(Error::Interrupted(format!(
            "{} runs left, their states saved in {}; run the same command again to continue them",
            summary.left,
            a.out.join("partial").display()
        )));
    }
    Ok(())
}
