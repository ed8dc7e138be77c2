//! Running an experiment: expand the grid, take this shard's jobs, skip the ones the store
//! already holds, run the rest in parallel (one job per worker), append each finished run.

use super::settings;
use super::spec::{Experiment, Job, Skipped};
use super::store::{Probe, Profile, RANK_PROBE_INPUTS, Store, StoredRun};
use crate::engine::Backend;
use crate::error::{Error, Result};
use crate::theory::{Inputs, Outputs};
use crate::train::{CurvePoint, Outcome, Trainer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
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
    if let (Some(gate), Some(bias)) = (layer.gate, model.terms.offset_bias(&model.params, &layer.family)) {
        for (name, table) in [("B", bias.view()), ("C", model.params.mat(gate))] {
            let rows = table.rows().into_iter().map(|r| r.to_vec()).collect();
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
        settings: settings::fingerprint(&job.config),
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
    /// Already in the store before this sweep (not run again).
    pub stored_before: usize,
    /// Run and stored now.
    pub done: usize,
    /// Of those, diverged.
    pub diverged: usize,
    /// Left undone (interrupted).
    pub left: usize,
}

/// How a sweep treats grid points it cannot build and stored runs with other settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepOptions {
    /// Run the buildable grid points and list the others, instead of refusing them all.
    pub skip_invalid: bool,
    /// Add runs to a store that holds runs of the same experiment and grid points with
    /// other settings (statistics and reports keep each setting apart), instead of refusing.
    pub keep_other_settings: bool,
}

/// The work of a sweep, checked before anything runs.
#[derive(Clone, Debug)]
pub struct SweepPlan {
    /// Experiment name.
    pub experiment: String,
    /// This shard's jobs.
    pub jobs: Vec<Job>,
    /// Grid points that cannot be built (empty unless [`SweepOptions::skip_invalid`]).
    pub skipped: Vec<Skipped>,
    /// Ids of the jobs the store holds already.
    pub stored: HashSet<String>,
    /// The store file this sweep appends to.
    pub file: PathBuf,
}

impl SweepPlan {
    /// The jobs still to run, in order.
    pub fn pending(&self) -> Vec<&Job> {
        self.jobs.iter().filter(|j| !self.stored.contains(&j.id)).collect()
    }
}

/// A job and a stored run at the same grid point (seeds aside).
fn same_point(job: &Job, run: &StoredRun) -> bool {
    let (a, b) = (&job.config, &run.record.config);
    job.family == run.family
        && (a.target, a.n, a.model.depth, a.model.width, a.model.heads)
            == (b.target, b.n, b.model.depth, b.model.width, b.model.heads)
}

/// Plans a sweep of `experiment` (this shard's jobs) into `store`: refuses grid points that
/// cannot be built unless [`SweepOptions::skip_invalid`], and stored runs of the same
/// experiment and grid points with other settings unless
/// [`SweepOptions::keep_other_settings`]; each refusal names what differs and the fix.
pub fn plan_sweep(
    experiment: &Experiment,
    store: &Store,
    shard: Option<(usize, usize)>,
    options: SweepOptions,
) -> Result<SweepPlan> {
    let plan = if options.skip_invalid {
        experiment.plan()?
    } else {
        super::spec::Plan { jobs: experiment.jobs()?, skipped: Vec::new() }
    };
    let jobs = shard_jobs(plan.jobs, shard);
    let runs = store.load()?;
    if !options.keep_other_settings {
        let mut conflicts = runs.iter().filter(|r| r.experiment == experiment.name).filter_map(|r| {
            let job = jobs.iter().find(|j| same_point(j, r))?;
            (r.settings != settings::fingerprint(&job.config)).then_some((r, job))
        });
        if let Some((run, job)) = conflicts.next() {
            let count = 1 + conflicts.count();
            let diff = settings::describe(&settings::differences(&run.record.config, &job.config), "there", "here");
            return Err(Error::file(
                store.dir(),
                format!(
                    "holds {count} run(s) of experiment `{}` at grid points of this file with other settings ({diff}); sweep into another --out, rename the experiment (`name`), or pass --keep-other-settings to keep both (statistics and reports then show each setting apart)",
                    experiment.name
                ),
            ));
        }
    }
    Ok(SweepPlan {
        experiment: experiment.name.clone(),
        stored: runs.into_iter().map(|r| r.id).filter(|id| jobs.iter().any(|j| &j.id == id)).collect(),
        jobs,
        skipped: plan.skipped,
        file: store.file_for(shard),
    })
}

/// Plans ([`plan_sweep`]) and runs ([`run_plan`]) a sweep of `experiment` into `dir`.
pub fn sweep(
    experiment: &Experiment,
    dir: &Path,
    shard: Option<(usize, usize)>,
    options: SweepOptions,
    backend: &Backend,
    stop: &AtomicBool,
    on_done: &(dyn Fn(u64) + Sync),
) -> Result<SweepSummary> {
    let store = Store::open(dir)?;
    let plan = plan_sweep(experiment, &store, shard, options)?;
    run_plan(&plan, &store, backend, stop, on_done)
}

/// Runs the pending jobs of `plan` in parallel on the current pool, appending each finished
/// run to the plan's store file; `on_done(cost)` is called after each finished job.
pub fn run_plan(
    plan: &SweepPlan,
    store: &Store,
    backend: &Backend,
    stop: &AtomicBool,
    on_done: &(dyn Fn(u64) + Sync),
) -> Result<SweepSummary> {
    let pending = plan.pending();
    let file = &plan.file;
    let append = Mutex::new(());
    let summary = Mutex::new(SweepSummary {
        jobs: plan.jobs.len(),
        stored_before: plan.jobs.len() - pending.len(),
        ..SweepSummary::default()
    });
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    pending.par_iter().with_max_len(1).for_each(|job| {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let partial = store.partial_for(&job.id);
        match run_job_on(&plan.experiment, job, stop, backend, Some(&partial)) {
            Ok(Some(run)) => {
                let _guard = append.lock().expect("store lock");
                if let Err(e) = store.append(file, &run) {
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
    s.left = s.jobs - s.stored_before - s.done;
    Ok(s)
}
