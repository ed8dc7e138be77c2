//! `urpe witness`: the exact URPE model for position-shift, and its t5 twin.

use super::outln;
use crate::error::{Error, Result};
use crate::theory::targets::mse;
use crate::theory::witness::{t5_twin, witness_model};
use crate::theory::{Floor, Outputs, Target, TargetKind};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::path::PathBuf;

/// Build the exact URPE witness for position-shift and measure it against the floor.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  urpe witness --n 16 --d 8
  urpe witness --n 64 --d 4 --heads 2 --json
  urpe witness --n 16 --d 8 --save witness.safetensors   # then: urpe predict --checkpoint …")]
pub struct Args {
    /// Sequence length (also the model's n_max).
    #[arg(long, default_value_t = 16)]
    n: usize,
    /// Features per position (model width).
    #[arg(long, default_value_t = 8)]
    d: usize,
    /// Attention heads (must divide d).
    #[arg(long, default_value_t = 1)]
    heads: usize,
    /// Sequences evaluated, half constant, half general.
    #[arg(long, default_value_t = 1024)]
    samples: usize,
    /// Seed of the evaluation inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Save the witness as a checkpoint.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    if a.samples < 2 {
        return Err(Error::Input("--samples must be at least 2 (one constant, one general sequence)".into()));
    }
    let model = witness_model::<f32>(a.n, a.d, a.heads)?;
    let twin = t5_twin(&model);
    let target = Target::new(TargetKind::PositionShift, a.n, a.d, 0);
    let Floor::Mse { mse: floor } = target.floor() else { unreachable!("position-shift is real-valued") };
    let sample = target.sample::<f32, _>(a.samples, 0.5, &mut ChaCha8Rng::seed_from_u64(a.seed));
    let Outputs::Real(y) = &sample.targets else { unreachable!("position-shift is real-valued") };
    let general: Vec<bool> = sample.constant.iter().map(|c| !c).collect();
    let witness_out = model.predict(&sample.inputs.view())?;
    let twin_out = twin.predict(&sample.inputs.view())?;
    let err = |out: &ndarray::Array3<f32>, keep: &[bool]| mse(out.view(), y.view(), Some(keep));
    let (w_const, w_gen) = (err(&witness_out, &sample.constant), err(&witness_out, &general));
    let (t_const, t_gen) = (err(&twin_out, &sample.constant), err(&twin_out, &general));
    if let Some(path) = &a.save {
        crate::checkpoint::save(&model, path)?;
    }
    if a.json {
        return super::print_json(&json!({
            "n": a.n, "d": a.d, "heads": a.heads, "samples": a.samples, "precision": "float32",
            "floor": floor,
            "witness": {"constant_mse": w_const, "general_mse": w_gen},
            "t5_twin": {"constant_mse": t_const, "general_mse": t_gen},
            "witness_below_floor_over_1000": w_const < floor / 1000.0 && w_gen < floor / 1000.0,
            "twin_at_or_above_floor": t_const >= floor,
        }));
    }
    outln!(
        "URPE witness for position-shift, n = {}, d = {}, heads = {} (float32, {} sequences)",
        a.n,
        a.d,
        a.heads,
        a.samples
    )?;
    outln!("floor on constant inputs (every in-softmax model): {floor}")?;
    outln!("{:<28} {:>14} {:>14}", "model", "constant mse", "general mse")?;
    outln!("{:<28} {:>14.3e} {:>14.3e}", "witness (t5 + URPE gate)", w_const, w_gen)?;
    outln!("{:<28} {:>14.6} {:>14.6}", "t5 twin (C reset to ones)", t_const, t_gen)?;
    outln!(
        "witness {} floor/1000; t5 twin {} the floor on constant inputs",
        if w_const < floor / 1000.0 && w_gen < floor / 1000.0 { "below" } else { "NOT below" },
        if t_const >= floor { "at or above" } else { "BELOW (a bug: Proposition 1 is violated)" },
    )?;
    if let Some(path) = &a.save {
        outln!("saved the witness to {}", path.display())?;
    }
    Ok(())
}
