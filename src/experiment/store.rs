//! The results store: a folder of JSON-lines files (`runs.jsonl`, or one file per shard,
//! `runs-shard-K-of-N.jsonl`), one finished run per line. A line is written with a single
//! append and flushed to disk; a line torn by a crash (no final newline) is ignored when
//! reading and cut off before the next append, so saved runs are never lost or doubled.

use crate::error::{Error, Result};
use crate::run::RunRecord;
use serde::{Deserialize, Serialize};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Extra measurements of a trained model that figures need (kept small).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// Real targets: on one fixed constant input, feature 0 of the model's output and of
    /// the target at every position.
    pub profile: Option<Profile>,
    /// Learned Toeplitz tables of URPE models (`pos.t5` = B, `pos.urpe` = C; layer 0's when
    /// not shared), [heads][2·n_max − 1].
    pub tables: Vec<(String, Vec<Vec<f32>>)>,
    /// Positional rank per stage on [`RANK_PROBE_INPUTS`] constant inputs (f64; empty for
    /// diverged runs and stores written before the probe existed).
    #[serde(default)]
    pub rank: Vec<crate::analysis::rank::StageRank>,
}

/// Constant inputs of the positional-rank probe stored with every run.
pub const RANK_PROBE_INPUTS: usize = 64;

/// Output and target along the positions of one constant input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Model output, feature 0, per position.
    pub output: Vec<f64>,
    /// Target, feature 0, per position.
    pub target: Vec<f64>,
}

/// One finished run, as one line of the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredRun {
    /// Experiment name.
    pub experiment: String,
    /// Run identity (hash of experiment name and configuration).
    pub id: String,
    /// Fingerprint of every setting except the seeds ([`super::settings::fingerprint`]);
    /// runs of one grid point pool as seeds only when it is equal. Computed from the
    /// configuration for stores written before it was recorded.
    #[serde(default)]
    pub settings: String,
    /// Family label as the experiment wrote it.
    pub family: String,
    /// Seed (init and data).
    pub seed: u64,
    /// Git revision of the build that ran it (`unknown` outside a checkout).
    pub git: String,
    /// The run: configuration, outcome, curve (subsampled), metrics, floor, time, version.
    pub record: RunRecord,
    /// Extra measurements for figures.
    pub probe: Probe,
}

/// One invocation of a sweep into a store, logged in `sweeps.jsonl` (not a run file): what
/// `urpe plot` needs besides the runs to describe the experiment and its wall time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepLog {
    /// Experiment name.
    pub experiment: String,
    /// Its description.
    pub description: String,
    /// Shard `K/N`, if any.
    pub shard: Option<String>,
    /// Worker threads.
    pub threads: usize,
    /// Wall-clock seconds of this invocation.
    pub seconds: f64,
    /// Runs it stored.
    pub stored: usize,
    /// Git revision of the build.
    pub git: String,
}

/// A results store folder.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

fn is_store_file(name: &str) -> bool {
    name.starts_with("runs") && name.ends_with(".jsonl")
}

impl Store {
    /// The store in `dir` (created when missing).
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, format!("cannot create the results folder: {e}")))?;
        Ok(Store { dir: dir.to_path_buf() })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a job stopped mid-way keeps its training state: `partial/ID.safetensors`.
    pub fn partial_for(&self, id: &str) -> PathBuf {
        self.dir.join("partial").join(format!("{id}.safetensors"))
    }

    /// The file a sweep appends to: `runs.jsonl`, or `runs-shard-K-of-N.jsonl` for a shard.
    pub fn file_for(&self, shard: Option<(usize, usize)>) -> PathBuf {
        match shard {
            Some((k, n)) => self.dir.join(format!("runs-shard-{k}-of-{n}.jsonl")),
            None => self.dir.join("runs.jsonl"),
        }
    }

    /// Every stored run of every store file, in file-name then line order; a run stored
    /// twice (same id) is kept once. A torn last line is skipped; any other unreadable
    /// line is an error naming the file and line.
    pub fn load(&self) -> Result<Vec<StoredRun>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(|e| Error::file(&self.dir, format!("cannot read the results folder: {e}")))?
            .filter_map(|e| e.ok())
            .filter(|e| is_store_file(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        files.sort();
        let mut runs: Vec<StoredRun> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for file in files {
            let text = String::from_utf8(crate::io::read(&file)?).map_err(|_| Error::file(&file, "not UTF-8 text"))?;
            let complete = match text.rfind('\n') {
                Some(end) => &text[..=end],
                None => "",
            };
            for (i, line) in complete.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let mut run: StoredRun = serde_json::from_str(line)
                    .map_err(|e| Error::file(&file, format!("line {}: not a stored run ({e})", i + 1)))?;
                if run.settings.is_empty() {
                    run.settings = super::settings::fingerprint(&run.record.config);
                }
                if seen.insert(run.id.clone()) {
                    runs.push(run);
                }
            }
        }
        Ok(runs)
    }

    /// The file of sweep invocations: `sweeps.jsonl`.
    pub fn sweep_log_file(&self) -> PathBuf {
        self.dir.join("sweeps.jsonl")
    }

    /// Every logged sweep invocation (none for stores written before the log existed); a
    /// torn or unreadable line is skipped (the log describes runs, it holds none).
    pub fn sweep_logs(&self) -> Vec<SweepLog> {
        std::fs::read_to_string(self.sweep_log_file())
            .map(|text| text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
            .unwrap_or_default()
    }

    /// Appends one sweep invocation to the log.
    pub fn log_sweep(&self, log: &SweepLog) -> Result<()> {
        append_line(&self.sweep_log_file(), log)
    }

    /// Appends one run to `file` as one line, in a single write flushed to disk, after
    /// cutting off a line torn by an earlier crash.
    pub fn append(&self, file: &Path, run: &StoredRun) -> Result<()> {
        append_line(file, run)
    }
}

/// Appends `value` to `file` as one JSON line, in a single write flushed to disk, after
/// cutting off a line torn by an earlier crash.
fn append_line(file: &Path, value: &impl Serialize) -> Result<()> {
    let mut line = serde_json::to_vec(value).map_err(|e| Error::Internal(e.to_string()))?;
    line.push(b'\n');
    let fail = |e: std::io::Error| Error::file(file, format!("cannot append: {e}"));
    let mut f = std::fs::OpenOptions::new().create(true).read(true).append(true).open(file).map_err(fail)?;
    let len = f.metadata().map_err(fail)?.len();
    if len > 0 {
        let text = std::fs::read(file).map_err(fail)?;
        if text.last() != Some(&b'\n') {
            let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            f.set_len(keep as u64).map_err(fail)?;
            f.seek(SeekFrom::End(0)).map_err(fail)?;
        }
    }
    f.write_all(&line).map_err(fail)?;
    f.sync_data().map_err(fail)
}
