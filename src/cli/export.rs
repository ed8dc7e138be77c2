//! `urpe export`: a results store as CSV files, one row per stored run and, optionally,
//! the training curves in long format.

use crate::error::{Error, Result};
use crate::experiment::Store;
use crate::export::{curves_csv, runs_csv};
use std::path::{Path, PathBuf};

/// Write the runs of a results store as CSV (columns: README, "Exporting a store as CSV").
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  urpe export results/reproduce --csv runs.csv
  urpe export results/reproduce --csv runs.csv --curves curves.csv")]
pub struct Args {
    /// Results folder (every runs*.jsonl file in it).
    store: PathBuf,
    /// One row per stored run: settings, seeds, outcome, final metrics on constant and
    /// general inputs, floor, wall time, git revision.
    #[arg(long, value_name = "F", required_unless_present = "curves")]
    csv: Option<PathBuf>,
    /// The training curves in long format: run id, step, loss, lr, grad_norm, and the
    /// held-out metrics at evaluated steps.
    #[arg(long, value_name = "F2")]
    curves: Option<PathBuf>,
}

/// Checks that `dir` is an existing folder (so that opening a store does not create one);
/// the error names it, says what is wrong and asks for `wanted`.
pub(super) fn existing_folder(dir: &Path, wanted: &str) -> Result<()> {
    match (dir.exists(), dir.is_dir()) {
        (_, true) => Ok(()),
        (true, false) => Err(Error::file(dir, format!("is not a folder: give {wanted}"))),
        (false, _) => Err(Error::file(dir, format!("does not exist: give {wanted}"))),
    }
}

/// The runs of the results folder `dir`; an error naming it when it does not exist, is not
/// a folder or holds no runs.
fn load_store(dir: &Path) -> Result<Vec<crate::experiment::StoredRun>> {
    existing_folder(dir, "a results folder written by `urpe sweep`")?;
    let runs = Store::open(dir)?.load()?;
    if runs.is_empty() {
        return Err(Error::file(dir, "holds no runs (no runs*.jsonl lines); run `urpe sweep` first"));
    }
    Ok(runs)
}

pub fn run(a: Args) -> Result<()> {
    if let (Some(csv), Some(curves)) = (&a.csv, &a.curves)
        && (csv == curves || (csv.exists() && std::fs::canonicalize(csv).ok() == std::fs::canonicalize(curves).ok()))
    {
        return Err(Error::file(curves, "is also the --csv file; give two different files"));
    }
    let runs = load_store(&a.store)?;
    let mut files: Vec<(&Path, String)> = Vec::new();
    if let Some(path) = &a.csv {
        files.push((path, runs_csv(&runs)));
    }
    if let Some(path) = &a.curves {
        files.push((path, curves_csv(&runs)));
    }
    let bytes: Vec<(&Path, &[u8])> = files.iter().map(|(p, text)| (*p, text.as_bytes())).collect();
    crate::io::write_all_atomic(&bytes)?;
    for (path, text) in &files {
        println!("wrote {} ({} rows)", path.display(), text.lines().count() - 1);
    }
    Ok(())
}
