//! Training-step timing shared by `cargo bench --bench train_step` and `urpe bench`: the
//! issue's shapes A, B, C and the paper's synthetic setting, on any engine.

use crate::config::{Family, ModelSpec};
use crate::engine::Backend;
use crate::error::Result;
use crate::optim::OptimConfig;
use crate::theory::{Target, TargetKind};
use crate::train::{EvalConfig, TrainConfig, Trainer};
use std::time::Instant;

/// A benchmark shape: name, n, width, heads, layers, batch, vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Name (A, B, C, paper).
    pub name: &'static str,
    /// Sequence length.
    pub n: usize,
    /// Width.
    pub width: usize,
    /// Heads.
    pub heads: usize,
    /// Layers.
    pub layers: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Vocabulary of the position-id task.
    pub vocab: usize,
}

/// A: n 16, d 32; B: n 32, d 64; C: n 128, d 64; paper: n 128, d 768, 12 heads, 3 layers,
/// batch 128, vocabulary 1000 (docs/theory.md §6). FFN 4d, post-norm, position-id.
pub const SHAPES: [Shape; 4] = [
    Shape { name: "A", n: 16, width: 32, heads: 4, layers: 2, batch: 64, vocab: 16 },
    Shape { name: "B", n: 32, width: 64, heads: 4, layers: 4, batch: 32, vocab: 16 },
    Shape { name: "C", n: 128, width: 64, heads: 4, layers: 3, batch: 32, vocab: 16 },
    Shape { name: "paper", n: 128, width: 768, heads: 12, layers: 3, batch: 128, vocab: 1000 },
];

impl Shape {
    /// Matrix-multiply FLOPs of one training step: forward (projections, scores, mixing,
    /// FFN, head) times 3 (backward costs two forward passes).
    pub fn step_flops(&self) -> f64 {
        let rows = (self.batch * self.n) as f64;
        let (n, d) = (self.n as f64, self.width as f64);
        let per_layer = 8.0 * rows * d * d + 4.0 * rows * n * d + 16.0 * rows * d * d;
        3.0 * (self.layers as f64 * per_layer + 2.0 * rows * d * n)
    }

    /// A position-id training run of this shape, t5 with or without the URPE gate.
    pub fn run(&self, urpe: bool) -> Result<TrainConfig> {
        let target = Target::new(TargetKind::PositionId, self.n, self.width, self.vocab);
        let mut spec = ModelSpec::new(
            Family::T5,
            self.layers,
            self.width,
            self.heads,
            self.n,
            target.input_kind(),
            target.output_kind(),
        );
        spec.urpe = urpe;
        Ok(TrainConfig {
            target: TargetKind::PositionId,
            n: self.n,
            d: self.width,
            vocab: self.vocab,
            model: spec.resolve()?,
            steps: 1_000_000,
            batch: self.batch,
            constant_fraction: 0.5,
            optim: OptimConfig::default(),
            init_seed: 0,
            data_seed: 0,
            eval: EvalConfig { every: 0, sequences: 1, seed: 0 },
        })
    }
}

/// Median milliseconds per training step over `timings` timings of `reps` steps each,
/// after `reps` warm-up steps, on `backend` (the engine synchronises the device when it
/// reads the loss, so each step is complete when timed).
pub fn time_steps(config: TrainConfig, backend: &Backend, reps: usize, timings: usize) -> Result<f64> {
    let mut trainer = Trainer::with_backend(config, backend)?;
    for _ in 0..reps {
        trainer.step()?;
    }
    let mut times = Vec::with_capacity(timings);
    for _ in 0..timings {
        let start = Instant::now();
        for _ in 0..reps {
            trainer.step()?;
        }
        times.push(start.elapsed().as_secs_f64() / reps as f64);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2] * 1e3)
}
