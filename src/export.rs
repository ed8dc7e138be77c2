//! CSV export of a results store: one row per stored run (settings, outcome, final metrics
//! on constant and general inputs, floor, time, revision), and the training curves in long
//! format (one row per stored step). README's "Exporting a store as CSV" lists the columns.
//!
//! Cells are plain: numbers as Rust prints them (shortest exact form; `NaN`, `inf`),
//! enumerations by their configuration names (`post`, `cosine`, `finished`), empty where a
//! value does not apply (accuracy of a real target, mse of a class target, `d` of a token
//! task). Text that holds a comma, quote or line break is quoted, quotes doubled.

use crate::config::InputKind;
use crate::experiment::StoredRun;
use crate::run::{Metrics, SetMetrics};
use crate::theory::Floor;
use serde::Serialize;
use std::fmt::Write;

/// Columns of the per-run table, in order.
pub const RUN_COLUMNS: [&str; 33] = [
    "experiment",
    "run_id",
    "family",
    "target",
    "n",
    "d",
    "vocab",
    "depth",
    "width",
    "heads",
    "ffn",
    "norm",
    "causal",
    "steps",
    "batch",
    "lr",
    "warmup",
    "decay",
    "init_seed",
    "data_seed",
    "outcome",
    "steps_done",
    "constant_mse",
    "general_mse",
    "constant_accuracy",
    "general_accuracy",
    "constant_cross_entropy",
    "general_cross_entropy",
    "floor_mse",
    "ceiling_accuracy",
    "floor_cross_entropy",
    "wall_seconds",
    "git",
];

/// Columns of the long-format curves table, in order.
pub const CURVE_COLUMNS: [&str; 11] = [
    "run_id",
    "step",
    "loss",
    "lr",
    "grad_norm",
    "constant_mse",
    "general_mse",
    "constant_accuracy",
    "general_accuracy",
    "constant_cross_entropy",
    "general_cross_entropy",
];

/// The per-run table of `runs` (header, then one row per run in store order).
pub fn runs_csv(runs: &[StoredRun]) -> String {
    let mut out = line(RUN_COLUMNS.iter().map(|c| c.to_string()));
    for r in runs {
        let c = &r.record.config;
        let (d, vocab) = match c.model.input {
            InputKind::Real { .. } => (c.d.to_string(), String::new()),
            InputKind::Tokens { .. } => (String::new(), c.vocab.to_string()),
        };
        let floor = match r.record.floor {
            Floor::Mse { mse } => [mse.to_string(), String::new(), String::new()],
            Floor::Classes { accuracy, cross_entropy } => {
                [String::new(), accuracy.to_string(), cross_entropy.to_string()]
            }
        };
        let cells = [
            r.experiment.clone(),
            r.id.clone(),
            r.family.clone(),
            name(&c.target),
            c.n.to_string(),
            d,
            vocab,
            c.model.depth.to_string(),
            c.model.width.to_string(),
            c.model.heads.to_string(),
            c.model.ffn.to_string(),
            name(&c.model.norm),
            c.model.causal.to_string(),
            c.steps.to_string(),
            c.batch.to_string(),
            c.optim.lr.to_string(),
            c.optim.warmup.to_string(),
            name(&c.optim.decay),
            c.init_seed.to_string(),
            c.data_seed.to_string(),
            name(&r.record.outcome),
            r.record.steps_done.to_string(),
        ]
        .into_iter()
        .chain(metric_cells(r.record.metrics.as_ref()))
        .chain(floor)
        .chain([r.record.wall_seconds.to_string(), r.git.clone()]);
        out.push_str(&line(cells));
    }
    out
}

/// The curves of `runs` in long format (header, then every stored curve point of every
/// run in store order); the held-out columns are filled at evaluated steps, the run's last
/// point carrying its final metrics.
pub fn curves_csv(runs: &[StoredRun]) -> String {
    let mut out = line(CURVE_COLUMNS.iter().map(|c| c.to_string()));
    for r in runs {
        let evaluations = r.record.evaluations();
        for p in &r.record.curve {
            let eval = evaluations.iter().find(|(step, _)| *step == p.step).map(|(_, m)| *m);
            let cells =
                [r.id.clone(), p.step.to_string(), p.loss.to_string(), p.lr.to_string(), p.grad_norm.to_string()]
                    .into_iter()
                    .chain(metric_cells(eval));
            out.push_str(&line(cells));
        }
    }
    out
}

/// The configuration name of a unit enumeration value (`post`, `cosine`, `finished`).
pub fn name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// constant mse, general mse, constant accuracy, general accuracy, constant cross-entropy,
/// general cross-entropy; empty where the metric does not apply or was not measured.
fn metric_cells(m: Option<&Metrics>) -> [String; 6] {
    let of = |s: Option<&SetMetrics>| match s {
        Some(SetMetrics::Real { mse }) => [mse.to_string(), String::new(), String::new()],
        Some(SetMetrics::Classes { accuracy, cross_entropy, .. }) => {
            [String::new(), accuracy.to_string(), cross_entropy.to_string()]
        }
        None => Default::default(),
    };
    let [cm, ca, cc] = of(m.map(|m| &m.constant));
    let [gm, ga, gc] = of(m.map(|m| &m.general));
    [cm, gm, ca, ga, cc, gc]
}

/// One CSV line of `cells`, quoted where needed, ending in a newline.
fn line(cells: impl IntoIterator<Item = String>) -> String {
    let mut out = String::new();
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if cell.contains([',', '"', '\n', '\r']) {
            let _ = write!(out, "\"{}\"", cell.replace('"', "\"\""));
        } else {
            out.push_str(&cell);
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_with_commas_quotes_or_breaks_are_quoted() {
        let got = line(["plain".into(), "a,b".into(), "say \"hi\"".into(), "two\nlines".into(), String::new()]);
        assert_eq!(got, "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\n");
    }

    #[test]
    fn metrics_fill_only_the_cells_that_apply() {
        let real = Metrics { constant: SetMetrics::Real { mse: 0.5 }, general: SetMetrics::Real { mse: 0.25 } };
        assert_eq!(metric_cells(Some(&real)), ["0.5", "0.25", "", "", "", ""].map(String::from));
        let class = |a: f64| SetMetrics::Classes { accuracy: a, per_position: vec![a], cross_entropy: 1.0 - a };
        let classes = Metrics { constant: class(0.75), general: class(1.0) };
        assert_eq!(metric_cells(Some(&classes)), ["", "", "0.75", "1", "0.25", "0"].map(String::from));
        assert_eq!(metric_cells(None), <[String; 6]>::default());
    }
}
