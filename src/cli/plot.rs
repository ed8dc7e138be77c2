//! `urpe plot`: every figure and REPORT.md from a results store alone, without training;
//! or the curves of one `urpe train` run from its folder.

use super::outln;
use crate::error::{Error, Result};
use crate::experiment::stats::setting_groups;
use crate::experiment::store::SweepLog;
use crate::experiment::{Store, StoredRun, builtin};
use crate::report::{FigureEntry, ReportContext, report};
use crate::run::RunRecord;
use std::path::{Path, PathBuf};

/// Redraw every figure and write REPORT.md from the runs of a results folder, or draw the
/// training and held-out curves of one `urpe train` run from its folder (metrics.json).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  urpe plot results/reproduce               # → results/reproduce/figures/
  urpe plot results/full --out figures/full
  urpe plot runs/x                          # a `urpe train` folder → runs/x/figures/

A store whose grid points hold runs with different settings (see `urpe sweep
--keep-other-settings`) gets one folder per setting, OUT/settings-K/, and an index
OUT/REPORT.md that names what differs.")]
pub struct Args {
    /// Results folder (every runs*.jsonl file in it), or a `urpe train` output folder
    /// (its metrics.json).
    results: PathBuf,
    /// Output folder for the figures and REPORT.md [default: RESULTS/figures].
    #[arg(long)]
    out: Option<PathBuf>,
}

fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base).unwrap_or(path).display().to_string()
}

/// Draws the figures of the store in `results` into `out` and writes `out/REPORT.md`;
/// returns the report's path. A store whose grid points hold runs of different settings
/// gets one folder per setting (`out/settings-K/`, figures and REPORT.md each) and an
/// index `out/REPORT.md` naming what differs: nothing is pooled across settings.
pub fn plot_and_report(
    results: &Path,
    out: &Path,
    sweep_seconds: Option<f64>,
    commands: Vec<String>,
) -> Result<PathBuf> {
    super::export::existing_folder(results, "a results folder of `urpe sweep` or a run folder of `urpe train`")?;
    let store = Store::open(results)?;
    let runs = store.load()?;
    let logs = store.sweep_logs();
    if runs.is_empty() {
        return Err(Error::file(
            results,
            "holds no runs (no runs*.jsonl lines, no metrics.json); run `urpe sweep` or `urpe train` first",
        ));
    }
    let groups = setting_groups(&runs);
    if let [group] = groups.as_slice() {
        return report_group(&group.runs, &logs, out, &group.label, sweep_seconds, commands);
    }
    let mut index = format!(
        "# {}: runs with different settings, reported apart\n\n`{}` holds runs of the same grid points with different settings. Statistics never pool them; each setting has its own figures and report:\n\n",
        runs[0].experiment,
        results.display()
    );
    for (k, group) in groups.iter().enumerate() {
        let folder = format!("settings-{}", k + 1);
        report_group(&group.runs, &logs, &out.join(&folder), &group.label, sweep_seconds, commands.clone())?;
        index.push_str(&format!("- [{}]({folder}/REPORT.md): {} runs\n", group.label, group.runs.len()));
    }
    let path = out.join("REPORT.md");
    crate::io::write_atomic(&path, index.as_bytes())?;
    Ok(path)
}

/// Figures and REPORT.md of one group of runs that share their settings.
fn report_group(
    runs: &[StoredRun],
    logs: &[SweepLog],
    out: &Path,
    settings: &str,
    sweep_seconds: Option<f64>,
    commands: Vec<String>,
) -> Result<PathBuf> {
    let figures = crate::plot::draw_all(runs, out)?;
    let entries: Vec<FigureEntry> = figures
        .iter()
        .map(|f| FigureEntry {
            title: f.title.clone(),
            caption: f.caption.clone(),
            png: relative(&f.png, out),
            svg: relative(&f.svg, out),
        })
        .collect();
    let name = runs[0].experiment.clone();
    let logged: Vec<&SweepLog> = logs.iter().filter(|l| l.experiment == name).collect();
    let ctx = ReportContext {
        description: logged
            .last()
            .map(|l| l.description.clone())
            .or_else(|| builtin::description(&name))
            .unwrap_or_default(),
        experiment: name,
        settings: settings.to_string(),
        commands,
        sweep_seconds,
        logged_seconds: (!logged.is_empty()).then(|| logged.iter().map(|l| l.seconds).sum()),
        logged_sweeps: logged.len(),
        threads: rayon::current_num_threads(),
    };
    let path = out.join("REPORT.md");
    crate::io::write_atomic(&path, report(runs, &entries, &ctx).as_bytes())?;
    Ok(path)
}

/// Draws the curves of the `urpe train` run whose metrics.json is `metrics` into `out`;
/// returns the PNG files written.
pub fn plot_run(metrics: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let text = crate::io::read(metrics)?;
    let record: RunRecord = serde_json::from_slice(&text)
        .map_err(|e| Error::file(metrics, format!("not the metrics.json of a `urpe train` run ({e})")))?;
    Ok(crate::plot::draw_run(&record, out)?.into_iter().map(|f| f.png).collect())
}

pub fn run(a: Args) -> Result<()> {
    let out = a.out.unwrap_or_else(|| a.results.join("figures"));
    let metrics = a.results.join("metrics.json");
    if metrics.is_file() && Store::open(&a.results)?.load()?.is_empty() {
        for png in plot_run(&metrics, &out)? {
            println!("wrote {} and its .svg", png.display());
        }
        return Ok(());
    }
    let cmd = format!("urpe plot {} --out {}", a.results.display(), out.display());
    let path = plot_and_report(&a.results, &out, None, vec![cmd])?;
    outln!("wrote the figures and {}", path.display())?;
    Ok(())
}
