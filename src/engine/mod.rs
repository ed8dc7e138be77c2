//! Training engines: what performs forward, backward and the optimiser update on a batch.
//! The ndarray engine is the default; with the `candle` feature the candle engine runs
//! the same model on a CPU or (feature `cuda`) a GPU. The training loop, evaluation,
//! checkpoints and metrics are shared.

#[cfg(feature = "candle")]
mod candle;
mod ndarray_engine;

use crate::error::{Error, Result};
use crate::nn::{Model, ModelInput};
use crate::optim::{AdamMoments, OptimConfig};
use crate::theory::Sample;
use ndarray::Array3;

pub use ndarray_engine::{GRADIENT_SHARDS, NdarrayEngine};

/// A model with its optimiser state, ready to train.
pub trait Engine: Send {
    /// One optimiser step on `sample` at learning rate `lr`; returns (loss, gradient norm)
    /// measured before the update. When either is not finite the parameters stay as they
    /// were.
    fn train_step(&mut self, sample: &Sample<f32>, lr: f64, optim: &OptimConfig) -> Result<(f64, f64)>;
    /// The model's output [batch, n, out] for `input`.
    fn predict(&mut self, input: &ModelInput<f32>) -> Result<Array3<f32>>;
    /// The current parameters as a host model.
    fn model(&self) -> Result<Model<f32>>;
    /// Adam's state, moments in the parameter layout's order.
    fn moments(&self) -> Result<AdamMoments>;
    /// Replaces Adam's state (to continue a saved run).
    fn set_moments(&mut self, moments: &AdamMoments) -> Result<()>;
}

/// Which engine trains, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The ndarray engine on the CPU.
    Ndarray,
    /// The candle engine on a device (`cpu` or `cuda:N`).
    Candle(String),
}

impl Backend {
    /// From `--backend ndarray|candle` and `--device cpu|cuda:N`.
    pub fn parse(backend: &str, device: &str) -> Result<Self> {
        match (backend, device) {
            ("ndarray", "cpu") => Ok(Backend::Ndarray),
            ("ndarray", d) => Err(Error::Input(format!("--device {d}: the ndarray backend runs on the cpu; use --backend candle for a GPU"))),
            ("candle", d) if cfg!(feature = "candle") => Ok(Backend::Candle(d.to_string())),
            ("candle", _) => Err(Error::Input(
                "--backend candle: this build has no candle backend; rebuild with `--features candle` (or `--features cuda` for GPUs)".into(),
            )),
            (b, _) => Err(Error::Input(format!("--backend {b}: expected ndarray or candle"))),
        }
    }

    /// An engine of this backend holding `model`, with workspaces for batches of `shape`.
    pub fn engine(&self, model: Model<f32>, shape: EngineShape) -> Result<Box<dyn Engine>> {
        match self {
            Backend::Ndarray => Ok(Box::new(NdarrayEngine::new(model, shape))),
            #[cfg(feature = "candle")]
            Backend::Candle(device) => Ok(Box::new(candle::CandleEngine::new(&model, device)?)),
            #[cfg(not(feature = "candle"))]
            Backend::Candle(_) => Err(Error::Input("this build has no candle backend".into())),
        }
    }
}

/// The batch shapes an engine prepares its workspaces for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineShape {
    /// Sequences per training batch.
    pub batch: usize,
    /// Sequence length.
    pub n: usize,
    /// Sequences per evaluation batch.
    pub eval_batch: usize,
}

/// Ranges (start, end) of at most `size` covering 0..total, in order.
pub fn chunks(total: usize, size: usize) -> Vec<(usize, usize)> {
    (0..total).step_by(size).map(|s| (s, (s + size).min(total))).collect()
}
