//! The training loop and evaluation: seeded batches from a target's sampler, forward,
//! loss, backward, Adam; evaluation on fixed held-out sets of constant inputs (where the
//! floor applies) and of general inputs, reported separately.

use crate::engine::{Backend, Engine, EngineShape, chunks};
use crate::error::Result;
use crate::float::Float;
use crate::nn::Model;
use crate::theory::{Inputs, Outputs, Sample, Target};
use crate::train_state::TrainState;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicBool, Ordering};

pub use crate::run::{
    CurvePoint, EvalConfig, Metrics, Outcome, RunRecord, SetMetrics, TrainConfig, TrainSpec, defaults,
};

/// A fixed evaluation set with its caches.
struct EvalSet {
    sample: Sample<f32>,
    chunks: Vec<(usize, usize)>,
}

fn slice_inputs<F: Float>(inputs: &Inputs<F>, range: (usize, usize)) -> Inputs<F> {
    match inputs {
        Inputs::Tokens(t) => Inputs::Tokens(t.slice(ndarray::s![range.0..range.1, ..]).to_owned()),
        Inputs::Real(x) => Inputs::Real(x.slice(ndarray::s![range.0..range.1, .., ..]).to_owned()),
    }
}

impl EvalSet {
    fn new(target: &Target, sequences: usize, constant: bool, seed: u64, batch: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sample = target.sample(sequences, if constant { 1.0 } else { 0.0 }, &mut rng);
        EvalSet { sample, chunks: chunks(sequences, batch) }
    }

    fn evaluate(&self, engine: &mut dyn Engine, n: usize) -> Result<SetMetrics> {
        let (mut sq, mut entries, mut ce, mut correct) = (0.0f64, 0usize, 0.0f64, vec![0usize; n]);
        let total = self.sample.constant.len();
        for &range in &self.chunks {
            let inputs = slice_inputs(&self.sample.inputs, range);
            let out = engine.predict(&inputs.view())?;
            match &self.sample.targets {
                Outputs::Real(y) => {
                    let y = y.slice(ndarray::s![range.0..range.1, .., ..]);
                    sq += out.iter().zip(y.iter()).map(|(a, b)| (a.f64() - b.f64()).powi(2)).sum::<f64>();
                    entries += out.len();
                }
                Outputs::Classes(labels) => {
                    let labels = labels.slice(ndarray::s![range.0..range.1, ..]);
                    for (seq, lab) in out.outer_iter().zip(labels.outer_iter()) {
                        for (i, (logits, &t)) in seq.outer_iter().zip(lab.iter()).enumerate() {
                            let max = logits.fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                            let lse = logits.iter().map(|&z| (z - max).f64().exp()).sum::<f64>().ln();
                            ce += lse - (logits[t] - max).f64();
                            let best =
                                logits.iter().enumerate().fold(0, |b, (k, &z)| if z > logits[b] { k } else { b });
                            correct[i] += usize::from(best == t);
                        }
                    }
                }
            }
        }
        Ok(match self.sample.targets {
            Outputs::Real(_) => SetMetrics::Real { mse: sq / entries as f64 },
            Outputs::Classes(_) => {
                let per_position: Vec<f64> = correct.iter().map(|&c| c as f64 / total as f64).collect();
                SetMetrics::Classes {
                    accuracy: per_position.iter().sum::<f64>() / n as f64,
                    per_position,
                    cross_entropy: ce / (total * n) as f64,
                }
            }
        })
    }
}

/// What the loop reports after every step.
#[derive(Clone, Debug)]
pub struct StepReport<'a> {
    /// Steps done.
    pub step: usize,
    /// Total steps.
    pub total: usize,
    /// The step's point of the curve.
    pub point: &'a CurvePoint,
}

/// A run being trained: its engine (model, optimiser state, workspaces), data stream and
/// held-out sets.
pub struct Trainer {
    /// The run's configuration.
    pub config: TrainConfig,
    engine: Box<dyn Engine>,
    rng: ChaCha8Rng,
    eval_sets: [EvalSet; 2],
    step: usize,
    /// The curve so far (kept across a save and a resume).
    curve: Vec<CurvePoint>,
    /// Seconds trained before this process took the run over (from a saved state).
    earlier_seconds: f64,
    /// The engine's label for the run record.
    engine_label: String,
}

impl Trainer {
    /// A run at step 0 on the ndarray engine: the official initialisation from `init_seed`.
    pub fn new(config: TrainConfig) -> Result<Self> {
        Self::with_backend(config, &Backend::Ndarray)
    }

    /// A run at step 0 on `backend`.
    pub fn with_backend(config: TrainConfig, backend: &Backend) -> Result<Self> {
        config.validate()?;
        let model = Model::<f32>::new(config.model.clone(), config.init_seed)?;
        Self::from_model(config, model, backend)
    }

    /// A run that starts from `model` (whose configuration must be the run's).
    pub fn from_model(config: TrainConfig, model: Model<f32>, backend: &Backend) -> Result<Self> {
        config.validate()?;
        let target = config.target();
        let e = config.eval;
        let eval_batch = config.batch.min(e.sequences);
        Ok(Trainer {
            engine: backend
                .engine(model, EngineShape { batch: config.batch, n: config.n, eval_batch: config.eval.sequences })?,
            rng: ChaCha8Rng::seed_from_u64(config.data_seed),
            eval_sets: [
                EvalSet::new(&target, e.sequences, true, e.seed, eval_batch),
                EvalSet::new(&target, e.sequences, false, e.seed.wrapping_add(1), eval_batch),
            ],
            config,
            step: 0,
            curve: Vec::new(),
            earlier_seconds: 0.0,
            engine_label: backend.label(),
        })
    }

    /// The run's state between two steps: parameters, Adam's moments, the data stream's
    /// position, the curve so far and the seconds trained (see [`crate::train_state`]).
    pub fn state(&self) -> Result<TrainState> {
        Ok(TrainState {
            config: self.config.clone(),
            step: self.step,
            data_word_pos: self.rng.get_word_pos(),
            seconds: self.earlier_seconds,
            curve: self.curve.clone(),
            params: self.engine.model()?.params.data,
            moments: self.engine.moments()?,
        })
    }

    /// Continues a run from `state` on `backend`; on the ndarray engine the rest of the run
    /// is bit-identical to a run that was never stopped.
    pub fn resume(state: TrainState, backend: &Backend) -> Result<Self> {
        let mut model = Model::<f32>::zeros(state.config.model.clone())?;
        let len = model.params.data.len();
        if [state.params.len(), state.moments.m.len(), state.moments.v.len()] != [len; 3] {
            return Err(crate::error::Error::Input(format!(
                "the saved state holds {} parameters and {}/{} moments but its configuration needs {len}",
                state.params.len(),
                state.moments.m.len(),
                state.moments.v.len()
            )));
        }
        model.params.data = state.params;
        let mut trainer = Self::from_model(state.config, model, backend)?;
        trainer.engine.set_moments(&state.moments)?;
        trainer.rng.set_word_pos(state.data_word_pos);
        trainer.step = state.step;
        trainer.curve = state.curve;
        trainer.earlier_seconds = state.seconds;
        Ok(trainer)
    }

    /// The current model (copied to the host).
    pub fn model(&self) -> Result<Model<f32>> {
        self.engine.model()
    }

    /// Steps done so far.
    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// One optimiser step on a fresh batch; returns the curve point (loss before the update).
    pub fn step(&mut self) -> Result<CurvePoint> {
        let c = &self.config;
        let sample: Sample<f32> = c.target().sample(c.batch, c.constant_fraction, &mut self.rng);
        let lr = c.optim.learning_rate(self.step, c.steps);
        let (loss, grad_norm) = self.engine.train_step(&sample, lr, &c.optim)?;
        self.step += 1;
        Ok(CurvePoint { step: self.step, loss, lr, grad_norm, eval: None })
    }

    /// Metrics of the current model on the two held-out sets.
    pub fn evaluate(&mut self) -> Result<Metrics> {
        let n = self.config.n;
        let [constant, general] = &self.eval_sets;
        Ok(Metrics {
            constant: constant.evaluate(&mut *self.engine, n)?,
            general: general.evaluate(&mut *self.engine, n)?,
        })
    }

    /// Trains to the configured number of steps (or until `stop` is set, or divergence),
    /// calling `on_step` after every step; returns the run's record.
    pub fn run(&mut self, stop: &AtomicBool, mut on_step: impl FnMut(StepReport)) -> Result<RunRecord> {
        let start = std::time::Instant::now();
        let mut curve = std::mem::take(&mut self.curve);
        curve.reserve(self.config.steps.saturating_sub(curve.len()));
        let mut outcome = Outcome::Finished;
        let every = self.config.eval.every;
        while self.step < self.config.steps {
            if stop.load(Ordering::Relaxed) {
                outcome = Outcome::Interrupted;
                break;
            }
            let mut point = self.step()?;
            if !(point.loss.is_finite() && point.grad_norm.is_finite()) {
                outcome = Outcome::Diverged;
                curve.push(point);
                break;
            }
            if every > 0 && self.step.is_multiple_of(every) && self.step < self.config.steps {
                point.eval = Some(self.evaluate()?);
            }
            curve.push(point);
            on_step(StepReport { step: self.step, total: self.config.steps, point: curve.last().expect("pushed") });
        }
        let metrics = match outcome {
            Outcome::Diverged => None,
            _ => Some(self.evaluate()?),
        };
        self.earlier_seconds += start.elapsed().as_secs_f64();
        self.curve = curve;
        Ok(RunRecord {
            config: self.config.clone(),
            outcome,
            steps_done: self.step,
            curve: self.curve.clone(),
            metrics,
            floor: self.config.target().floor(),
            wall_seconds: self.earlier_seconds,
            version: env!("CARGO_PKG_VERSION").to_string(),
            engine: Some(self.engine_label.clone()),
        })
    }
}
