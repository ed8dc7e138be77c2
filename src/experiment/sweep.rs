//! Running an experiment: expand the grid, take this shard's jobs, skip the ones the store
//! already holds, run the rest in parallel (one job per worker), append each finished run.

use super::spec::{Experiment, Job};
use super::store::{Probe, Profile, RANK_PROBE_INPUTS, Store, StoredRun};
use crate::engine::Backend;
use crate::error::{Error, Result};
use crate::nn::layout::FamilyTensors;
use crate::theory::{Inputs, Outputs};
use crate::train::{CurvePoint, Outcome, Trainer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Git revision of this build (`unknown` when built outside a checkout).
pub const GIT_REVISION: &str = env!("URPE_GIT_REVISION");

/// Points kept of a run's training curve in the store.
const CURVE_POINTS: usize = 100;

/// Parses `K/N` (0 ≤ K < N): this process runs jobs K, K + N, K + 2N, …
pub fn parse_shard(text: &str) -> Result<(usize, usize)> {
    let bad = || {
        Error::Input(format!(
            "--shard {text}: expected K/N with 0 ≤ K < N, e.g. 0/4 (K is 0-based, as $SLURM_ARRAY_TASK_ID)"
        ))
    };
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if n == 0 || k >= n {
        return Err(bad());
    }
    Ok((k, n))
}

/// The jobs of shard `(k, n)` (every n-th, starting at k), or all of them.
pub fn shard_jobs(jobs: Vec<Job>, shard: Option<(usize, usize)>) -> Vec<Job> {
    match shard {
        Some((k, n)) => jobs.into_iter().enumerate().filter(|(i, _)| i % n == k).map(|(_, j)| j).collect(),
        None => jobs,
    }
}

/// A job's relative cost (for the ETA): steps × tokens × depth × width².
pub fn cost(job: &Job) -> u64 {
    let c = &job.config;
    (c.steps * c.batch * c.n * c.model.depth * c.model.width * c.model.width) as u64 / 1000 + 1
}

fn subsample(curve: &[CurvePoint]) -> Vec<CurvePoint> {
    let every = curve.len().div_ceil(CURVE_POINTS).max(1);
    curve
        .iter()
        .enumerate()
        .filter(|(i, p)| (i + 1) % every == 0 || i + 1 == curve.len() || p.eval.is_some())
        .map(|(_, p)| p.clone())
        .collect()
}

/// Probe measurements of a trained model (see [`Probe`]).
fn probe(trainer: &Trainer) -> Result<Probe> {
    let model = trainer.model()?;
    let c = &trainer.config;
    let target = c.target();
    let profile = if c.target.is_classification() {
        None
    } else {
        let sample = target.sample::<f32, _>(1, 1.0, &mut ChaCha8Rng::seed_from_u64(20_221_128));
        let out = model.predict(&sample.inputs.view())?;
        let (Inputs::Real(_), Outputs::Real(y)) = (&sample.inputs, &sample.targets) else {
            unreachable!("a real target")
        };
        Some(Profile {
            output: (0..c.n).map(|i| out[[0, i, 0]] as f64).collect(),
            target: (0..c.n).map(|i| y[[0, i, 0]] as f64).collect(),
        })
    };
    let mut tables = Vec::new();
    let layer = &model.layout.layers[0].attn.pos;
    if let (Some(gate), FamilyTensors::T5(b)) = (layer.gate, layer.family) {
        for (name, id) in [("B", b), ("C", gate)] {
            let rows = model.params.mat(id).rows().into_iter().map(|r| r.to_vec()).collect();
            tables.push((name.to_string(), rows));
        }
    }
    let rank = crate::analysis::positional_rank(&model.cast::<f64>(), c.n, RANK_PROBE_INPUTS, 20_221_128)?;
    Ok(Probe { profile, tables, rank })
}

/// Trains one job on the ndarray engine (stopping early if `stop` is set) and returns its
/// stored form, or `None` when it was interrupted.
pub fn run_job(experiment: &str, job: &Job, stop: &AtomicBool) -> Result<Option<StoredRun>> {
    run_job_on(experiment, job, stop, &Backend::Ndarray, None)
}

/// [`run_job`] on `backend`. With `partial`, a job stopped by `stop` saves its state
/// there, and a job whose state is there continues from it instead of starting over.
pub fn run_job_on(
    experiment: &str,
    job: &Job,
    stop: &AtomicBool,
    backend: &Backend,
    partial: Option<&Path>,
) -> Result<Option<StoredRun>> {
    let mut trainer = match partial.filter(|p| p.exists()) {
        Some(path) => {
            let state = crate::train_state::load(path)?;
            if state.config != job.config {
                return Err(Error::file(path, format!("the saved state belongs to another run than job {}", job.id)));
            }
            Trainer::resume(state, backend)?
        }
        None => Trainer::with_backend(job.config.clone(), backend)?,
    };
    let mut record = trainer.run(stop, |_| {})?;
    if record.outcome == Outcome::Interrupted {
        if let Some(path) = partial {
            let dir = path.parent().expect("a file in a folder");
            std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, format!("cannot create: {e}")))?;
            crate::train_state::save(&trainer.state()?, path)?;
        }
        return Ok(None);
    }
    record.curve = subsample(&record.curve);
    let probe = if record.outcome == Outcome::Diverged { Probe::default() } else { probe(&trainer)? };
    Ok(Some(StoredRun {
        experiment: experiment.to_string(),
        id: job.id.clone(),
        family: job.family.clone(),
        seed: job.seed,
        git: GIT_REVISION.to_string(),
        record,
        probe,
    }))
}

/// What a sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepSummary {
    /// Jobs of this shard.
    pub jobs: usize,
    /// Already in the store (skipped).
    pub skipped: usize,
    /// Run and stored now.
    pub done: usize,
    /// Of those, diverged.
    pub diverged: usize,
    /// Left undone (interrupted).
    pub left: usize,
}

/// Runs the jobs of `experiment` (this shard's) missing from the store in `dir`, in
/// parallel on the current pool; `on_done(cost)` is called after each finished job.
pub fn sweep(
    experiment: &Experiment,
    dir: &Path,
    shard: Option<(usize, usize)>,
    backend: &Backend,
    stop: &AtomicBool,
    on_done: &(dyn Fn(u64) + Sync),
) -> Result<SweepSummary> {
    let store = Store::open(dir)?;
    let jobs = shard_jobs(experiment.jobs()?, shard);
    let finished: std::collections::HashSet<String> = store.load()?.into_iter().map(|r| r.id).collect();
    let pending: Vec<&Job> = jobs.iter().filter(|j| !finished.contains(&j.id)).collect();
    let file = store.file_for(shard);
    let append = Mutex::new(());
    let summary =
        Mutex::new(SweepSummary { jobs: jobs.len(), skipped: jobs.len() - pending.len(), ..SweepSummary::default() });
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    pending.par_iter().with_max_len(1).for_each(|job| {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let partial = store.partial_for(&job.id);
        match run_job_on(&experiment.name, job, stop, backend, Some(&partial)) {
            Ok(Some(run)) => {
                let _guard = append.lock().expect("store lock");
                if let Err(e) = store.append(&file, &run) {
                    first_error.lock().expect("error lock").get_or_insert(e);
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
                // stored: the saved state of an earlier, stopped attempt is no longer needed
                let _ = std::fs::remove_file(&partial);
                let mut s = summary.lock().expect("summary lock");
                s.done += 1;
                s.diverged += usize::from(run.record.outcome == Outcome::Diverged);
                drop(s);
                on_done(cost(job));
            }
            Ok(None) => {}
            Err(e) => {
                first_error.lock().expect("error lock").get_or_insert(e);
                stop.store(true, Ordering::Relaxed);
            }
        }
    });
    if let Some(e) = first_error.into_inner().expect("error lock") {
        return Err(e);
    }
    let mut s = summary.into_inner().expect("summary lock");
    s.left = s.jobs - s.skipped - s.done;
    Ok(s)
}
