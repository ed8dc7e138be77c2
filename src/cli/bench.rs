//! `urpe bench`: time training steps of a benchmark shape on any engine (the same timing
//! as `cargo bench --bench train_step`, usable where there is no cargo, e.g. on a GPU host).

use super::outln;
use super::runtime::EngineArgs;
use crate::bench::{SHAPES, time_steps};
use crate::error::{Error, Result};

/// Median milliseconds per training step of t5 and t5 + URPE for one shape.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  urpe bench --shape A
  urpe bench --shape paper --backend candle --device cuda:0 --precision tf32   # a GPU build
  urpe bench --shape paper --backend candle --device cuda:0 --precision bf16

Shapes: A (n 16, d 32, 4 heads, 2 layers, batch 64), B (n 32, d 64, 4 layers, batch 32),
C (n 128, d 64, 3 layers, batch 32), paper (n 128, d 768, 12 heads, 3 layers, batch 128,
vocabulary 1000); position-id, post-norm, FFN 4d; f32 unless --precision says otherwise.")]
pub struct Args {
    /// Shape: A, B, C or paper.
    #[arg(long, default_value = "A")]
    shape: String,
    #[command(flatten)]
    engine: EngineArgs,
    /// Steps per timing (and warm-up steps).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Timings (the median is reported).
    #[arg(long, default_value_t = 7)]
    timings: usize,
    /// Worker threads of the ndarray engine [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(a: Args) -> Result<()> {
    let shape = SHAPES
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(&a.shape))
        .ok_or_else(|| Error::Input(format!("--shape {}: expected A, B, C or paper", a.shape)))?;
    if a.reps == 0 || a.timings == 0 {
        return Err(Error::Input("--reps and --timings must be at least 1".into()));
    }
    let backend = a.engine.backend()?;
    outln!("shape {} on {}: median of {} timings of {} steps", shape.name, backend.label(), a.timings, a.reps)?;
    for urpe in [false, true] {
        let config = shape.run(urpe)?;
        let ms = super::runtime::with_threads(a.threads, || time_steps(config, &backend, a.reps, a.timings))?;
        let label = if urpe { "urpe" } else { "t5" };
        outln!("RESULT {} {label} {ms:.3} ms/step {:.1} GFLOP/s", shape.name, shape.step_flops() / (ms * 1e-3) / 1e9)?;
    }
    Ok(())
}
