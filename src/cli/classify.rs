//! `urpe classify`: every attention setting, bound or free by the theory and by
//! measurement.

use super::outln;
use crate::analysis::classify::{BOUND_BELOW, FREE_ABOVE, classify, settings};
use crate::error::{Error, Result};

/// Does the barrier bind this setting? The theory against random models, for every setting.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  urpe classify
  urpe classify --json > classify.json
  urpe classify --models 4 --seed 7

For every family × normaliser (--attention) × URPE gate × BOS (--bos) × causal mask: the
theory's verdict (bound: a constant input gives equal output rows at any depth and width;
free: it need not) with its reason, and the measured one: the positional rank of random
models (depth 2, width 8, 2 heads, n = 8, every parameter random; the n input rows, a BOS
row left out), bound when σ₁/‖h‖ < 1e-12 at every stage of every model, free when it
exceeds 1e-9 somewhere in every model. Exits 1 when a
setting's theory and measurement disagree (a bug). Families registered with
`urpe::family::register` are included.")]
pub struct Args {
    /// Random models per setting.
    #[arg(long, default_value_t = 2)]
    models: usize,
    /// Seed of the first random model (the next ones count up).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A JSON array of objects: family, attention, gate, bos, causal, theory, measured,
    /// reason, positional (per model, the largest σ₁/‖h‖).
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    if a.models == 0 {
        return Err(Error::Input("--models must be at least 1".into()));
    }
    let rows = settings().into_iter().map(|s| classify(s, a.models, a.seed)).collect::<Result<Vec<_>>>()?;
    if a.json {
        super::print_json(&serde_json::to_value(&rows).map_err(|e| Error::Internal(e.to_string()))?)?;
    } else {
        outln!(
            "{:<14} {:<9} {:<5} {:<5} {:<6} {:<6} {:<7} {:<9} reason",
            "family",
            "attention",
            "gate",
            "bos",
            "causal",
            "theory",
            "measured",
            "σ₁/‖h‖"
        )?;
        for r in &rows {
            let largest = r.positional.iter().copied().fold(0.0, f64::max);
            outln!(
                "{:<14} {:<9} {:<5} {:<5} {:<6} {:<6} {:<8} {:<9.1e} {}",
                r.family,
                r.attention,
                if r.gate { "on" } else { "off" },
                if r.bos { "yes" } else { "no" },
                if r.causal { "yes" } else { "no" },
                r.theory,
                r.measured,
                largest,
                r.reason
            )?;
        }
        let bound = rows.iter().filter(|r| r.theory == "bound").count();
        outln!(
            "\n{} settings: {bound} bound, {} free by the theory; measured on {} random models each (bound: σ₁/‖h‖ < {BOUND_BELOW:.0e} at every stage, free: > {FREE_ABOVE:.0e} somewhere)",
            rows.len(),
            rows.len() - bound,
            a.models
        )?;
    }
    let disagree: Vec<String> = rows
        .iter()
        .filter(|r| !r.agrees())
        .map(|r| {
            format!(
                "{} {} gate {} bos {} causal {}: theory {}, measured {}",
                r.family, r.attention, r.gate, r.bos, r.causal, r.theory, r.measured
            )
        })
        .collect();
    if !disagree.is_empty() {
        return Err(Error::Internal(format!(
            "theory and measurement disagree on {} settings: {}",
            disagree.len(),
            disagree.join("; ")
        )));
    }
    Ok(())
}
