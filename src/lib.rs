//! urpe: proves, constructs and measures the stochastic barrier of Transformers whose
//! position encoding sits inside the softmax, and the URPE fix (Luo et al., NeurIPS 2022).
//!
//! - [`theory`]: target functions, their exact floors, the URPE witness.
//! - [`nn`]: the CPU engine (ndarray), every position family.
//! - [`analysis`]: linear-algebra probes (stochasticity, positional rank, spectra).
//! - [`checkpoint`]: safetensors save and load.
//! - [`cli`]: the `urpe` command line.

pub mod analysis;
pub mod config;
pub mod error;
pub mod float;
pub mod nn;

pub use config::{ModelConfig, ModelSpec};
pub use error::{Error, Result};
pub use float::Float;
#[cfg(feature = "candle")]
pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod engine;
pub mod experiment;
pub mod export;
pub mod io;
pub mod npy;
pub mod optim;
pub mod plot;
pub mod report;
pub mod theory;
pub mod train;
pub mod train_state;
pub mod variant;
