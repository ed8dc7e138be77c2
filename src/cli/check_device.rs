//! `urpe check-device`: the candle engine on a device against the ndarray engine on the
//! CPU, for every family with and without the gate (needs a build with `--features
//! candle`, or `cuda` for GPUs).

#[cfg(feature = "candle")]
use super::outln;
use crate::engine::BF16_TOLERANCE;
use crate::error::{Error, Result};

/// Compare a device against the CPU engine on random models of every family.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Example:
  urpe check-device --device cuda:0

Prints, per family with and without the gate (and for each normaliser other than softmax,
on t5 and rope, or alibi where it refuses rope; and with a BOS row, on nope, ape-learned and t5), the largest relative gap over outputs, loss and every gradient of the
candle engine in f32 (max-abs, gradients relative to
max(max |tensor|, G), G the model's largest gradient), then in bf16 mixed precision
(norm-wise, on models with heads of width 8 or 16), against the ndarray engine in f32 on
the CPU; then each fused kernel (layer norm, softmax, activations, Adam,
...) on random inputs against its CPU version, in f32, f64 and bf16. Fails when an f32 or
f64 gap exceeds --tolerance or a bf16 gap exceeds --bf16-tolerance.")]
pub struct Args {
    /// Device: cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Largest relative gap allowed in f32 and f64.
    #[arg(long, default_value_t = 1e-5)]
    tolerance: f64,
    /// Largest norm-wise relative gap allowed in bf16 (8 significant bits: one rounding is
    /// up to 2⁻⁹ relative, and a model rounds at every product and kernel).
    #[arg(long, default_value_t = BF16_TOLERANCE)]
    bf16_tolerance: f64,
    /// Random models per family and gate setting.
    #[arg(long, default_value_t = 4)]
    seeds: u64,
}

#[cfg(feature = "candle")]
pub fn run(a: Args) -> Result<()> {
    use crate::candle::check::{compare, fused_gaps, random_case_of};
    use crate::config::Family;
    use crate::normaliser::Attention;
    use candle_core::DType;
    let device = crate::candle::parse_device(&a.device)?;
    let mut failed = Vec::new();
    let mut judge = |what: String, worst: f64, tolerance: f64| -> Result<()> {
        outln!("largest gap {worst:.2e} (tolerance {tolerance:.2e})")?;
        if worst > tolerance {
            failed.push(format!("{what}: {worst:.2e} > {tolerance:.0e}"));
        }
        Ok(())
    };
    for (compute, tolerance) in [(DType::F32, a.tolerance), (DType::BF16, a.bf16_tolerance)] {
        let label = if compute == DType::BF16 { "bf16 (mixed precision)" } else { "f32" };
        outln!("candle {label} on {} against the ndarray engine (f32, CPU), {} models per row", a.device, a.seeds)?;
        let mut worst_all = 0.0f64;
        // every family with softmax, then each other normaliser on t5 and rope (alibi where it
        // refuses rope), then a BOS row before every sequence on nope, ape-learned and t5
        let others = crate::normaliser::ALL.map(Attention).into_iter().filter(|n| !n.is_softmax());
        let takes = |n: Attention| {
            let families = [Family::T5, Family::Rope, Family::Alibi].into_iter();
            families
                .filter(move |&f| crate::config::check_combination(f, n).is_ok())
                .take(2)
                .map(move |f| (f, n, false))
        };
        let rows: Vec<(Family, Attention, bool)> = Family::all()
            .into_iter()
            .map(|f| (f, Attention::SOFTMAX, false))
            .chain(others.flat_map(takes))
            .chain([Family::Nope, Family::ApeLearned, Family::T5].map(|f| (f, Attention::SOFTMAX, true)))
            .collect();
        for (family, attention, bos) in rows {
            for urpe in [false, true] {
                let mut worst = (0.0f64, String::new());
                for seed in 0..a.seeds {
                    let widths = if compute == DType::BF16 { [8, 16] } else { [2, 4] };
                    let id = 100 * seed + family.index() as u64;
                    let mut case = random_case_of(family, urpe, id, 0.3, widths, attention)?;
                    if bos {
                        case = case.with_bos(id, 0.3)?;
                    }
                    let gap = compare::<f32>(&case, &device, DType::F32, compute, 1.0)?;
                    if gap.0 >= worst.0 {
                        worst = gap;
                    }
                }
                worst_all = worst_all.max(worst.0);
                let variant = crate::config::Variant::new(family, urpe);
                let mut name =
                    if attention.is_softmax() { variant.to_string() } else { format!("{variant} {attention}") };
                if bos {
                    name.push_str(" bos");
                }
                outln!("{name:<24} {:>10.2e}  ({})", worst.0, worst.1)?;
            }
        }
        judge(format!("models in {label}"), worst_all, tolerance)?;
    }
    for (dtype, tolerance) in [(DType::F32, a.tolerance), (DType::F64, a.tolerance), (DType::BF16, a.bf16_tolerance)] {
        outln!("fused kernels on {} against their CPU versions, {dtype:?}", a.device)?;
        let mut worst_all = 0.0f64;
        for (name, gap) in fused_gaps(&device, dtype)? {
            outln!("{name:<30} {gap:>10.2e}")?;
            worst_all = worst_all.max(gap);
        }
        judge(format!("fused kernels in {dtype:?}"), worst_all, tolerance)?;
    }
    if !failed.is_empty() {
        return Err(Error::Internal(format!("the device disagrees with the CPU engine: {}", failed.join("; "))));
    }
    Ok(())
}

#[cfg(not(feature = "candle"))]
pub fn run(_a: Args) -> Result<()> {
    Err(Error::Input(
        "check-device needs the candle backend: rebuild with `--features candle` (or `--features cuda`)".into(),
    ))
}
