//! What describes a training run and what it leaves behind, with no dependency on how it
//! runs: the run's configuration (as written and resolved, with its defaults), held-out
//! evaluation settings, metrics, curve points and the run record. The engines, the trainer,
//! saved states and experiments all read these; this module reads only the configuration,
//! the targets and the optimiser settings.

use crate::config::{ConfigError, InputKind, ModelConfig, OutputKind};
use crate::optim::OptimConfig;
use crate::theory::{Floor, Target, TargetKind};
use serde::{Deserialize, Serialize};

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
    /// The engine that finished it (`Backend::label` of the engine layer: `ndarray`, or
    /// `candle DEVICE PRECISION`); absent in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

impl RunRecord {
    /// The reduced precision (`tf32` or `bf16`) its engine computed in, if any: such a run's
    /// equal rows are equal only to that precision's rounding, so an argmax (its accuracy)
    /// on a constant input is not certified by the barrier.
    pub fn reduced_precision(&self) -> Option<&str> {
        let last = self.engine.as_deref()?.rsplit(' ').next()?;
        ["tf32", "bf16"].contains(&last).then_some(last)
    }

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
