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

pub use ndarray_engine::{MAX_GRADIENT_SHARDS, NdarrayEngine, SHARD_ROWS, gradient_shards};

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
    /// The candle engine on a device (`cpu` or `cuda:N`) at a precision.
    Candle {
        /// `cpu` or `cuda:N`.
        device: String,
        /// The arithmetic of its products and activations.
        precision: Precision,
    },
}

/// The arithmetic of the candle engine's matrix products and activations (`--precision`).
/// Weights, gradients, the loss and Adam are f32 in every mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// f32 throughout.
    #[default]
    Fp32,
    /// f32 storage, products on TF32 tensor cores (a CUDA device only).
    Tf32,
    /// bf16 products and stored activations over f32 master weights, f32 softmax and
    /// layer-norm statistics (PyTorch's autocast; the CPU runs it too, slowly, for tests).
    Bf16,
}

/// The norm-wise gap allowed between the bf16 engine and the f32 engine (`urpe
/// check-device --bf16-tolerance`). Measured on the CPU over 2,200 random models with
/// heads of width 8 or 16 (every family, gate on and off): the norm-wise gap of the bf16
/// engine to the f32 engine had median 5.4e-3 and maximum 1.08e-1, the latter a rope model
/// whose f32 output already moves by 9.4e-2 when only its weights and inputs are rounded to
/// bf16 (random models are ill-conditioned; a wrong kernel or index is off by order one).
pub const BF16_TOLERANCE: f64 = 0.15;

impl Precision {
    /// Every precision, in the order of `--precision`'s values.
    pub const ALL: [Precision; 3] = [Precision::Fp32, Precision::Tf32, Precision::Bf16];

    /// The name `--precision` takes.
    pub fn label(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
        }
    }

    /// From its label.
    pub fn parse(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.label() == text)
            .ok_or_else(|| Error::Input(format!("--precision {text}: expected fp32, tf32 or bf16")))
    }
}

impl Backend {
    /// The candle engine on the CPU in f32.
    pub fn candle_cpu() -> Self {
        Backend::Candle { device: "cpu".into(), precision: Precision::Fp32 }
    }

    /// From `--backend ndarray|candle`, `--device cpu|cuda:N` and `--precision`: an input
    /// error where they do not combine (the ndarray engine is f32 on the CPU; TF32 needs
    /// a CUDA device).
    pub fn parse(backend: &str, device: &str, precision: Precision) -> Result<Self> {
        match (backend, device) {
            ("ndarray", "cpu") if precision == Precision::Fp32 => Ok(Backend::Ndarray),
            ("ndarray", "cpu") => Err(Error::Input(format!(
                "--precision {}: the ndarray engine computes in f32; use --backend candle for tf32 or bf16",
                precision.label()
            ))),
            ("ndarray", d) => Err(Error::Input(format!("--device {d}: the ndarray backend runs on the cpu; use --backend candle for a GPU"))),
            ("candle", d) if cfg!(feature = "candle") => {
                if precision == Precision::Tf32 && !(d.starts_with("cuda") && cfg!(feature = "cuda")) {
                    return Err(Error::Input(
                        "--precision tf32 applies to the candle backend on a CUDA device (a build with --features cuda)".into(),
                    ));
                }
                Ok(Backend::Candle { device: d.to_string(), precision })
            }
            ("candle", _) => Err(Error::Input(
                "--backend candle: this build has no candle backend; rebuild with `--features candle` (or `--features cuda` for GPUs)".into(),
            )),
            (b, _) => Err(Error::Input(format!("--backend {b}: expected ndarray or candle"))),
        }
    }

    /// What a run record says of the engine: `ndarray`, or `candle DEVICE PRECISION`.
    pub fn label(&self) -> String {
        match self {
            Backend::Ndarray => "ndarray".into(),
            Backend::Candle { device, precision } => format!("candle {device} {}", precision.label()),
        }
    }

    /// An engine of this backend holding `model`, with workspaces for batches of `shape`.
    pub fn engine(&self, model: Model<f32>, shape: EngineShape) -> Result<Box<dyn Engine>> {
        match self {
            Backend::Ndarray => Ok(Box::new(NdarrayEngine::new(model, shape))),
            #[cfg(feature = "candle")]
            Backend::Candle { device, precision } => {
                Ok(Box::new(candle::CandleEngine::new(&model, device, *precision)?))
            }
            #[cfg(not(feature = "candle"))]
            Backend::Candle { .. } => Err(Error::Input("this build has no candle backend".into())),
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
