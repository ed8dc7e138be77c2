//! What the commands that train share: the engine flags (`--backend`, `--device`,
//! `--precision`, parsed in one place), the worker pool of `--threads`, and the stop flag that
//! Ctrl-C and SIGTERM set.

use crate::engine::{Backend, Precision};
use crate::error::{Error, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The engine a command trains on.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Engine: ndarray (CPU) or candle (needs a build with --features candle or cuda).
    #[arg(long, default_value = "ndarray", value_parser = ["ndarray", "candle"])]
    pub backend: String,
    /// Device of the candle engine: cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Arithmetic of the candle engine: fp32; tf32 (products on TF32 tensor cores, CUDA
    /// only); bf16 (bf16 products and activations over f32 weights, gradients and Adam,
    /// as PyTorch's autocast).
    #[arg(long, default_value = "fp32", value_parser = ["fp32", "tf32", "bf16"])]
    pub precision: String,
    /// Same as --precision tf32 (kept for earlier scripts).
    #[arg(long, conflicts_with = "precision")]
    pub tf32: bool,
}

impl EngineArgs {
    /// The engine the flags name (an input error where they do not combine).
    pub fn backend(&self) -> Result<Backend> {
        let precision = if self.tf32 { Precision::Tf32 } else { Precision::parse(&self.precision)? };
        Backend::parse(&self.backend, &self.device, precision)
    }
}

/// Runs `work` on a pool of `threads` workers (default: one per core). The calling thread
/// waits, so the pool's workers are the only busy threads.
pub fn with_threads<T: Send>(threads: Option<usize>, work: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    if threads == Some(0) {
        return Err(Error::Input("--threads must be at least 1".into()));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|e| Error::Internal(format!("thread pool: {e}")))?;
    pool.install(work)
}

/// Installs a Ctrl-C / SIGTERM handler that sets the returned flag.
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step (Ctrl-C again to abort at once)");
    })
    .map_err(|e| Error::Internal(format!("signal handler: {e}")))?;
    Ok(stop)
}
