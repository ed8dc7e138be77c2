//! What the commands that train share: the engine flags (`--backend`, `--device`,
//! `--tf32`, parsed in one place), the worker pool of `--threads`, and the stop flag that
//! Ctrl-C and SIGTERM set.

use crate::engine::Backend;
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
    /// Let CUDA matrix multiplies use TF32 (candle on a GPU only).
    #[arg(long)]
    pub tf32: bool,
}

impl EngineArgs {
    /// The engine the flags name, with TF32 switched on where asked (an error where
    /// `--tf32` does not apply).
    pub fn backend(&self) -> Result<Backend> {
        let backend = Backend::parse(&self.backend, &self.device)?;
        set_tf32(self.tf32, &backend)?;
        Ok(backend)
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

/// Lets CUDA matrix multiplies use TF32 (`--tf32`); an error off the candle engine on a GPU.
fn set_tf32(tf32: bool, backend: &Backend) -> Result<()> {
    if !tf32 {
        return Ok(());
    }
    match backend {
        Backend::Candle(device) if device.starts_with("cuda") && cfg!(feature = "cuda") => {
            #[cfg(feature = "cuda")]
            candle_core::cuda::set_gemm_reduced_precision_f32(true);
            Ok(())
        }
        _ => Err(Error::Input(
            "--tf32 applies to the candle backend on a CUDA device (a build with --features cuda)".into(),
        )),
    }
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
