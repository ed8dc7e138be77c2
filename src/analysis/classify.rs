//! Does an attention setting hit the barrier? For every family × normaliser × gate × BOS ×
//! causal mask: the theory's verdict ([`ModelConfig::barrier_verdict`], with its reason)
//! against a measurement, the positional rank of random models (every parameter random,
//! as `urpe analyze --random-init`). A setting where the two disagree is a bug.

use super::{Options, analyze, random::random_model};
use crate::config::{Family, InputKind, ModelSpec, OutputKind, check_combination};
use crate::error::Result;
use crate::normaliser::{self, Attention};
use serde::Serialize;

/// One attention setting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Setting {
    /// Position family.
    pub family: Family,
    /// Normaliser.
    pub attention: Attention,
    /// URPE gate.
    pub gate: bool,
    /// A learned first token before every sequence (`bos`).
    pub bos: bool,
    /// Causal mask.
    pub causal: bool,
}

/// Every setting: every registered family × every normaliser that takes it
/// ([`check_combination`]) × gate off/on × BOS off/on × mask off/on (without the mask off
/// for a causal-only normaliser or family).
pub fn settings() -> Vec<Setting> {
    let mut out = Vec::new();
    for family in Family::all() {
        for attention in normaliser::ALL.map(Attention).into_iter().filter(|&a| check_combination(family, a).is_ok()) {
            for gate in [false, true] {
                for bos in [false, true] {
                    for causal in [false, true] {
                        if causal || !(attention.0.causal_only() || family.causal_only()) {
                            out.push(Setting { family, attention, gate, bos, causal });
                        }
                    }
                }
            }
        }
    }
    out
}

/// σ₁/‖h‖ below this at every stage of every random model: measured bound.
pub const BOUND_BELOW: f64 = 1e-12;
/// σ₁/‖h‖ above this at some stage of every random model: measured free. Three orders above
/// [`BOUND_BELOW`] and seven above f64 rounding; low enough for the weakest free settings,
/// differential attention with the gate, whose signal is of the order of its norm's ε
/// (2.5e-6 to 6.2e-4 on random models; every other free setting is above 1e-3).
pub const FREE_ABOVE: f64 = 1e-9;

/// The classification of one setting.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Family name.
    pub family: String,
    /// Normaliser name.
    pub attention: String,
    /// URPE gate.
    pub gate: bool,
    /// A learned first token before every sequence (`bos`).
    pub bos: bool,
    /// Causal mask.
    pub causal: bool,
    /// `bound` or `free`, by the theory.
    pub theory: &'static str,
    /// `bound`, `free`, or `unclear` (between the two thresholds) by measurement.
    pub measured: &'static str,
    /// Why, by the theory, in one line.
    pub reason: String,
    /// Per random model, the largest σ₁/‖h‖ over the stages (0 at every stage: bound).
    pub positional: Vec<f64>,
}

impl Row {
    /// Theory and measurement agree.
    pub fn agrees(&self) -> bool {
        self.theory == self.measured
    }
}

/// Classifies `setting` on `models` random models (seeds `seed`, `seed + 1`, …) of depth 2,
/// width 8, 2 heads, n = 8, token input and output, probed with 32 constant inputs each (the
/// positional rank reads the n input rows; a BOS row is left out).
pub fn classify(setting: Setting, models: usize, seed: u64) -> Result<Row> {
    let mut spec =
        ModelSpec::new(setting.family, 2, 8, 2, 8, InputKind::Tokens { vocab: 11 }, OutputKind::Classes { classes: 5 });
    spec.urpe = setting.gate;
    spec.causal = setting.causal;
    spec.bos = setting.bos;
    spec.attention = Some(setting.attention);
    let config = spec.resolve()?;
    let (bound, reason) = config.barrier_verdict();
    let options = Options { n: 8, rank_inputs: 32, head_inputs: 1, seed };
    let positional = (0..models as u64)
        .map(|k| {
            let model = random_model(config.clone(), seed.wrapping_add(k))?;
            let a = analyze(&model, &options)?;
            Ok(a.rank.iter().map(|s| s.singular[0]).fold(0.0, f64::max))
        })
        .collect::<Result<Vec<f64>>>()?;
    let measured = if positional.iter().all(|&v| v < BOUND_BELOW) {
        "bound"
    } else if positional.iter().all(|&v| v > FREE_ABOVE) {
        "free"
    } else {
        "unclear"
    };
    Ok(Row {
        family: setting.family.to_string(),
        attention: setting.attention.to_string(),
        gate: setting.gate,
        bos: setting.bos,
        causal: setting.causal,
        theory: if bound { "bound" } else { "free" },
        measured,
        reason,
        positional,
    })
}
