//! `urpe check-device`: the candle engine on a device against the ndarray engine on the
//! CPU, for every family with and without the gate (needs a build with `--features
//! candle`, or `cuda` for GPUs).

#[cfg(feature = "candle")]
use super::outln;
use crate::error::{Error, Result};

/// Compare a device against the CPU engine on random models of every family.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Example:
  urpe check-device --device cuda:0

Prints, per family, the largest relative gap over outputs, loss and every gradient (f32;
gradients relative to max(max |tensor|, G), G the model's largest gradient), then each
fused kernel (layer norm, softmax, activations, Adam, ...) on random inputs against its CPU
version (f32 and f64), and fails when one exceeds --tolerance.")]
pub struct Args {
    /// Device: cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Largest relative gap allowed.
    #[arg(long, default_value_t = 1e-5)]
    tolerance: f64,
    /// Random models per family and gate setting.
    #[arg(long, default_value_t = 4)]
    seeds: u64,
}

#[cfg(feature = "candle")]
pub fn run(a: Args) -> Result<()> {
    use crate::candle::check::{compare, random_case};
    use crate::config::Family;
    let device = crate::candle::parse_device(&a.device)?;
    outln!("candle f32 on {} against the ndarray engine (f32, CPU), {} models per row", a.device, a.seeds)?;
    let mut worst_all = 0.0f64;
    for family in Family::all() {
        for urpe in [false, true] {
            let mut worst = (0.0f64, String::new());
            for seed in 0..a.seeds {
                let case = random_case(family, urpe, 100 * seed + family.index() as u64, 0.3)?;
                let gap = compare::<f32>(&case, &device, candle_core::DType::F32, 1.0)?;
                if gap.0 >= worst.0 {
                    worst = gap;
                }
            }
            worst_all = worst_all.max(worst.0);
            let name = crate::config::Variant::new(family, urpe).to_string();
            outln!("{name:<18} {:>10.2e}  ({})", worst.0, worst.1)?;
        }
    }
    for dtype in [candle_core::DType::F32, candle_core::DType::F64] {
        outln!("fused kernels on {} against their CPU versions, {dtype:?}", a.device)?;
        for (name, gap) in crate::candle::check::fused_gaps(&device, dtype)? {
            outln!("{name:<30} {gap:>10.2e}")?;
            worst_all = worst_all.max(gap);
        }
    }
    outln!("largest gap {worst_all:.2e} (tolerance {:.0e})", a.tolerance)?;
    if worst_all > a.tolerance {
        return Err(Error::Internal(format!("the device disagrees with the CPU engine by {worst_all:.2e}")));
    }
    Ok(())
}

#[cfg(not(feature = "candle"))]
pub fn run(_a: Args) -> Result<()> {
    Err(Error::Input(
        "check-device needs the candle backend: rebuild with `--features candle` (or `--features cuda`)".into(),
    ))
}
