//! urpe: proves, constructs and measures the stochastic barrier of Transformers whose
//! position encoding sits inside the softmax, and the URPE fix (Luo et al., NeurIPS 2022).
//!
//! The modules read top down; each uses only those listed before it (`tests/layering.rs`
//! checks it):
//!
//! - [`error`], [`float`]; [`gemm`], [`params`]: errors, the float types; the matrix
//!   products; named tensors in one flat buffer.
//! - [`family`]: position families and the arithmetic they share; [`normaliser`]:
//!   attention normalisers (softmax).
//! - [`config`]: model configuration and variants; [`io`]: file writing; [`npy`] arrays;
//!   [`optim`]: the optimiser.
//! - [`nn`]: the model's tensor layout and the CPU engine on ndarray with hand-written
//!   backward passes.
//! - [`theory`]: target functions, their exact floors, the URPE witness; [`checkpoint`]:
//!   safetensors save and load.
//! - [`analysis`]: linear-algebra probes (stochasticity, positional rank, spectra);
//!   `candle` (feature `candle`): the same model on candle, CPU or CUDA; [`run`]: what
//!   describes a training run and its record.
//! - [`engine`]: one interface over both engines; [`train_state`]: saved runs.
//! - [`train`]: the training loop and evaluation.
//! - [`experiment`]: grids of runs, their store and statistics; [`bench`]: step timing.
//! - [`export`], [`plot`], [`report`]: tables, figures and the report from a store.
//! - [`cli`]: the `urpe` command line.

pub mod error;
pub mod float;
pub mod gemm;
pub mod params;

pub mod family;
pub mod normaliser;

pub mod config;
pub mod io;

pub mod npy;
pub mod optim;

pub mod nn;

pub mod checkpoint;
pub mod theory;

pub mod analysis;
#[cfg(feature = "candle")]
pub mod candle;
pub mod run;

pub mod engine;
pub mod train_state;

pub mod train;

pub mod bench;
pub mod experiment;

pub mod export;

pub mod plot;

pub mod report;

pub mod cli;

pub use config::{ModelConfig, ModelSpec};
pub use error::{Error, Result};
pub use float::Float;
