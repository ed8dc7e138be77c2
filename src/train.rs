//! The training loop and evaluation: seeded batches from a target's sampler, forward,
//! loss, backward, Adam; evaluation on fixed held-out sets of constant inputs (where the
//! floor applies) and of general inputs, reported separately.

use crate::config::{ConfigError, InputKind, ModelConfig, OutputKind};
use crate::engine::{Backend, Engine};
use crate::error::Result;
use crate::float::Float;
use crate::nn::Model;
use crate::optim::OptimConfig;
use crate::theory::{Floor, Inputs, Outputs, Sample, Target, TargetKind};
use crate::train_state::TrainState;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};

/// Held-out evaluation: two fixed sets (constant and general sequences) drawn from `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Evaluate every this many steps (and at the end); 0: only at the end.
    pub every: usize,
    /// Sequences in each of the two sets.
    pub sequences: usize,
    /// Seed of the held-out sets (independent of the training data).
    pub seed: u64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig { every: 0, sequences: 512, seed: 999_983 }
    }
}

/// A training run as a user writes it (TOML or JSON): optional fields take defaults,
/// the model's n_max, input and output default to what the target needs.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Target function.
    pub target: TargetKind,
    /// Sequence length.
    pub n: usize,
    /// Features per position, real targets (default 8).
    #[serde(default = "defaults::d")]
    pub d: usize,
    /// Vocabulary, token targets (default 10).
    #[serde(default = "defaults::vocab")]
    pub vocab: usize,
    /// The model.
    pub model: crate::config::ModelSpec,
    /// Optimiser steps (default 2000).
    #[serde(default = "defaults::steps")]
    pub steps: usize,
    /// Sequences per step (default 64).
    #[serde(default = "defaults::batch")]
    pub batch: usize,
    /// Share of constant sequences per batch (default 0.5).
    #[serde(default = "defaults::constant_fraction")]
    pub constant_fraction: f64,
    /// Optimiser and schedule (default Adam, lr 1e-3, no warm-up, linear decay).
    #[serde(default)]
    pub optim: OptimConfig,
    /// Seed of both the initialisation and the data, unless given separately (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Seed of the initialisation (default: `seed`).
    #[serde(default)]
    pub init_seed: Option<u64>,
    /// Seed of the training batches (default: `seed`).
    #[serde(default)]
    pub data_seed: Option<u64>,
    /// Held-out evaluation.
    #[serde(default)]
    pub eval: EvalConfig,
}

/// The defaults of a training run: one source for run files (serde) and for the flags of
/// `urpe train` (clap); the optimiser's and the evaluation's are [`OptimConfig::default`]
/// and [`EvalConfig::default`].
pub mod defaults {
    /// Features per position of real targets.
    pub fn d() -> usize {
        8
    }
    /// Vocabulary of token targets.
    pub fn vocab() -> usize {
        10
    }
    /// Optimiser steps.
    pub fn steps() -> usize {
        2000
    }
    /// Sequences per step.
    pub fn batch() -> usize {
        64
    }
    /// Share of constant sequences per batch.
    pub fn constant_fraction() -> f64 {
        0.5
    }
}

impl TryFrom<TrainSpec> for TrainConfig {
    type Error = ConfigError;
    fn try_from(s: TrainSpec) -> std::result::Result<Self, ConfigError> {
        let target = Target::new(s.target, s.n, s.d, s.vocab);
        let model = s.model.complete(s.n, target.input_kind(), target.output_kind()).resolve()?;
        let config = TrainConfig {
            target: s.target,
            n: s.n,
            d: s.d,
            vocab: s.vocab,
            model,
            steps: s.steps,
            batch: s.batch,
            constant_fraction: s.constant_fraction,
            optim: s.optim,
            init_seed: s.init_seed.unwrap_or(s.seed),
            data_seed: s.data_seed.unwrap_or(s.seed),
            eval: s.eval,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Everything one training run needs (complete and validated; the `config` of a run's
/// metrics).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TrainSpec")]
pub struct TrainConfig {
    /// Target function.
    pub target: TargetKind,
    /// Sequence length.
    pub n: usize,
    /// Features per position (real targets).
    pub d: usize,
    /// Vocabulary (token targets).
    pub vocab: usize,
    /// The model.
    pub model: ModelConfig,
    /// Optimiser steps.
    pub steps: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Share of constant sequences in each training batch.
    pub constant_fraction: f64,
    /// Optimiser and schedule.
    pub optim: OptimConfig,
    /// Seed of the initialisation.
    pub init_seed: u64,
    /// Seed of the training batches.
    pub data_seed: u64,
    /// Held-out evaluation.
    pub eval: EvalConfig,
}

impl TrainConfig {
    /// Reads a run from TOML (or JSON when `json`); errors are one line.
    pub fn parse(text: &str, json: bool) -> std::result::Result<Self, String> {
        if json {
            serde_json::from_str(text).map_err(|e| crate::config::in_user_words(&e.to_string()))
        } else {
            crate::config::toml_from_str(text)
        }
    }

    /// The target this run learns.
    pub fn target(&self) -> Target {
        Target::new(self.target, self.n, self.d, self.vocab)
    }

    /// Checks the run: model, optimiser, sizes, and that the model fits the target.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        self.model.validate()?;
        self.optim.validate()?;
        for (field, v) in [("steps", self.steps), ("batch", self.batch), ("eval.sequences", self.eval.sequences)] {
            if v == 0 {
                return Err(ConfigError::new(field, v, "must be at least 1"));
            }
        }
        if !(0.0..=1.0).contains(&self.constant_fraction) {
            return Err(ConfigError::new("constant_fraction", self.constant_fraction, "a share in [0, 1]"));
        }
        self.model.check_length(self.n)?;
        let t = self.target();
        if t.kind.is_classification() && self.vocab == 0 {
            return Err(ConfigError::new("vocab", 0, "a token target needs a vocabulary of at least 1"));
        }
        if !t.kind.is_classification() && self.d == 0 {
            return Err(ConfigError::new("d", 0, "a real target needs at least 1 feature"));
        }
        if self.model.input != t.input_kind() {
            let (size, set) = match t.input_kind() {
                InputKind::Real { d_in } => (format!("`d` = {d_in} features"), "`d` (--d)"),
                InputKind::Tokens { vocab } => (format!("`vocab` = {vocab} tokens"), "`vocab` (--vocab)"),
            };
            return Err(ConfigError::new(
                "model.input",
                input_toml(self.model.input),
                format!(
                    "{} reads {}, so the model needs {}; leave `model.input` out (it follows the \
                     target) and set the size with {set}",
                    self.target,
                    size,
                    input_toml(t.input_kind())
                ),
            ));
        }
        if self.model.output != t.output_kind() {
            return Err(ConfigError::new(
                "model.output",
                output_toml(self.model.output),
                format!(
                    "{} at n = {} needs {}; leave `model.output` out (it follows the target)",
                    self.target,
                    self.n,
                    output_toml(t.output_kind())
                ),
            ));
        }
        Ok(())
    }
}

/// An input as written in a file: `{ kind = "real", d_in = 8 }`.
fn input_toml(input: InputKind) -> String {
    match input {
        InputKind::Real { d_in } => format!("{{ kind = \"real\", d_in = {d_in} }}"),
        InputKind::Tokens { vocab } => format!("{{ kind = \"tokens\", vocab = {vocab} }}"),
    }
}

/// An output as written in a file: `{ kind = "classes", classes = 16 }`.
fn output_toml(output: OutputKind) -> String {
    match output {
        OutputKind::Real { d_out } => format!("{{ kind = \"real\", d_out = {d_out} }}"),
        OutputKind::Classes { classes } => format!("{{ kind = \"classes\", classes = {classes} }}"),
    }
}

/// Metrics of one evaluation set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SetMetrics {
    /// Real targets.
    Real {
        /// Mean squared error per entry.
        mse: f64,
    },
    /// Class targets.
    Classes {
        /// Share of positions predicted right (argmax).
        accuracy: f64,
        /// Accuracy at each position.
        per_position: Vec<f64>,
        /// Mean cross-entropy (nats).
        cross_entropy: f64,
    },
}

/// Metrics on the constant and the general held-out sets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Constant sequences 1xᵀ (where the floor applies).
    pub constant: SetMetrics,
    /// General sequences.
    pub general: SetMetrics,
}

/// One point of the training curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Steps done.
    pub step: usize,
    /// Training loss of the step's batch (JSON `null` when not finite).
    #[serde(with = "non_finite_as_null")]
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping (JSON `null` when not finite).
    #[serde(with = "non_finite_as_null")]
    pub grad_norm: f64,
    /// Held-out metrics, when evaluated at this step.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eval: Option<Metrics>,
}

/// JSON has no NaN or infinity: such values are written as `null` and read back as NaN.
mod non_finite_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() { s.serialize_f64(*v) } else { s.serialize_none() }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// All steps done.
    Finished,
    /// A loss or gradient became NaN or infinite; training stopped there.
    Diverged,
    /// Stopped on request (Ctrl-C); the model is the last one trained.
    Interrupted,
}

/// The record of a run: configuration, curve, final metrics, floor, time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's configuration (seeds included).
    pub config: TrainConfig,
    /// How it ended.
    pub outcome: Outcome,
    /// Steps done.
    pub steps_done: usize,
    /// Training curve (every step).
    pub curve: Vec<CurvePoint>,
    /// Final held-out metrics (absent when the run diverged).
    pub metrics: Option<Metrics>,
    /// The target's exact floor on constant inputs.
    pub floor: Floor,
    /// Wall-clock seconds of training and evaluation.
    pub wall_seconds: f64,
    /// Crate version that ran it.
    pub version: String,
}

impl RunRecord {
    /// The run's held-out evaluations in step order: every curve point that carries one,
    /// then the final metrics at `steps_done` (absent when the run diverged).
    pub fn evaluations(&self) -> Vec<(usize, &Metrics)> {
        let mut at: Vec<(usize, &Metrics)> =
            self.curve.iter().filter_map(|p| Some((p.step, p.eval.as_ref()?))).collect();
        if let Some(m) = &self.metrics
            && at.last().is_none_or(|&(step, _)| step < self.steps_done)
        {
            at.push((self.steps_done, m));
        }
        at
    }
}

/// A fixed evaluation set with its caches.
struct EvalSet {
    sample: Sample<f32>,
    chunks: Vec<(usize, usize)>,
}

/// Ranges of at most `size` covering 0..total.
pub fn chunks(total: usize, size: usize) -> Vec<(usize, usize)> {
    (0..total).step_by(size).map(|s| (s, (s + size).min(total))).collect()
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
            engine: backend.engine(model, &config)?,
            rng: ChaCha8Rng::seed_from_u64(config.data_seed),
            eval_sets: [
                EvalSet::new(&target, e.sequences, true, e.seed, eval_batch),
                EvalSet::new(&target, e.sequences, false, e.seed.wrapping_add(1), eval_batch),
            ],
            config,
            step: 0,
            curve: Vec::new(),
            earlier_seconds: 0.0,
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
        })
    }
}
