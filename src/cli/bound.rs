//! `urpe bound`: the exact floor of a target on constant inputs.

use super::outln;
use crate::error::{Error, Result};
use crate::theory::{Floor, FloorEstimate, Target, TargetKind};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// Print the exact floor every in-softmax Transformer hits on a target's constant inputs.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  urpe bound --target position-shift --n 16          # floor 0.0830078125 = (n²−1)/(12n²)
  urpe bound --target position-id --n 128 --json     # accuracy ≤ 1/n, cross-entropy ≥ ln n")]
pub struct Args {
    /// Target function.
    #[arg(long, value_enum)]
    target: TargetKind,
    /// Sequence length.
    #[arg(long)]
    n: usize,
    /// Features per position (real targets).
    #[arg(long, default_value_t = 8)]
    d: usize,
    /// Vocabulary (token targets).
    #[arg(long, default_value_t = 10)]
    vocab: usize,
    /// Constant inputs for the from-definition check.
    #[arg(long, default_value_t = 4096)]
    samples: usize,
    /// Seed of the from-definition check.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

fn formula(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::PositionShift => "Var(p) = (n²−1)/(12n²)",
        TargetKind::PositionScale | TargetKind::PrefixSum => "Var(p)·E‖x‖²/d = (n²−1)/(36n²), x ~ U[−1,1]^d",
        TargetKind::PositionId => "accuracy ≤ 1/n, cross-entropy ≥ ln n",
        TargetKind::EvenToken => "accuracy ≤ max(⌊n/2⌋, ⌈n/2⌉)/n, cross-entropy ≥ H(⌊n/2⌋/n)",
        TargetKind::Identity | TargetKind::AddMean | TargetKind::RowMap => "0 (control: equal rows in, equal rows out)",
    }
}

pub fn run(a: Args) -> Result<()> {
    for (name, value) in [("--n", a.n), ("--d", a.d), ("--vocab", a.vocab), ("--samples", a.samples)] {
        if value == 0 {
            return Err(Error::Input(format!("{name} must be at least 1")));
        }
    }
    let target = Target::new(a.target, a.n, a.d, a.vocab);
    let floor = target.floor();
    let estimate = target.floor_from_definition(a.samples, &mut ChaCha8Rng::seed_from_u64(a.seed));
    if a.json {
        return super::print_json(&json!({
            "target": a.target, "n": a.n, "d": a.d, "vocab": a.vocab,
            "floor": floor, "formula": formula(a.target), "from_definition": estimate,
        }));
    }
    outln!(
        "target: {} (n = {}{})",
        a.target,
        a.n,
        if a.target.is_classification() { format!(", vocab = {}", a.vocab) } else { format!(", d = {}", a.d) }
    )?;
    match (floor, estimate) {
        (Floor::Mse { mse }, FloorEstimate::Mse { mse: est }) => {
            outln!("floor (mean squared error on constant inputs): {mse}")?;
            outln!("closed form: {}", formula(a.target))?;
            outln!(
                "from the definition (row-mean residual over {} constant inputs): {:.10} ± {:.2e}",
                est.samples,
                est.mean,
                est.std_error
            )?;
        }
        (Floor::Classes { accuracy, cross_entropy }, FloorEstimate::Classes { accuracy: acc, cross_entropy: ce }) => {
            outln!("accuracy ceiling on constant inputs: {accuracy}")?;
            outln!("cross-entropy floor on constant inputs (nats): {cross_entropy}")?;
            outln!("closed form: {}", formula(a.target))?;
            outln!(
                "from the definition (label histogram over {} constant inputs): accuracy {}, cross-entropy {}",
                acc.samples,
                acc.mean,
                ce.mean
            )?;
        }
        _ => unreachable!("a target's floor and its estimate are of the same kind"),
    }
    Ok(())
}
