//! The curves of one `urpe train` run (its `metrics.json`): training loss and gradient
//! norm against step on top; below, the held-out metric (mean squared error for real
//! targets, accuracy for class targets) on general and on constant inputs apart, with the
//! target's floor or ceiling on constant inputs dashed.

use super::{Axis, Entry, Figure, Panel, Panels, Series, colour, save};
use crate::error::{Error, Result};
use crate::experiment::stats::headline;
use crate::run::{Metrics, RunRecord};
use crate::theory::Floor;
use std::path::Path;

/// Draws the run's figure (`training_run`) into `dir` (created when missing), as PNG and SVG.
pub fn draw_run(record: &RunRecord, dir: &Path) -> Result<Vec<Figure>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, format!("cannot create the figures folder: {e}")))?;
    let c = &record.config;
    let label = c.model.label();
    let classes = c.target.is_classification();
    let (metric, loss) = if classes { ("accuracy", "cross-entropy") } else { ("MSE", "MSE") };
    let (bound, bound_name) = match record.floor {
        Floor::Mse { mse } => (mse, "floor"),
        Floor::Classes { accuracy, .. } => (accuracy, "accuracy ceiling"),
    };
    let evaluations = record.evaluations();
    let x = Axis::fit(record.curve.iter().map(|p| p.step as f64).chain([0.0, c.steps as f64]), false);
    let line = |pick: &dyn Fn(&Metrics) -> f64| -> Vec<(f64, f64)> {
        evaluations.iter().map(|&(s, m)| (s as f64, pick(m))).filter(|p| p.1.is_finite()).collect()
    };
    let general = line(&|m| headline(&m.general));
    let constant = line(&|m| headline(&m.constant));
    let reference = Series::reference(vec![(x.lo, bound), (x.hi, bound)]);
    let held_out_values = general.iter().chain(&constant).map(|p| p.1).chain([bound]);
    let y_held_out = if classes { Axis::new(0.0, 1.05, false) } else { Axis::fit(held_out_values, true) };
    let training = |caption: &str, y_desc: &str, values: Vec<(f64, f64)>| Panel {
        caption: caption.into(),
        x: x.clone(),
        y: Axis::fit(values.iter().map(|p| p.1), true),
        x_desc: "step".into(),
        y_desc: y_desc.into(),
        series: vec![Series { markers: false, ..Series::family(&label, values, Vec::new()) }],
    };
    let positive = |v: f64| v.is_finite() && v > 0.0;
    let losses = record.curve.iter().map(|p| (p.step as f64, p.loss)).filter(|p| positive(p.1)).collect();
    let norms = record.curve.iter().map(|p| (p.step as f64, p.grad_norm)).filter(|p| positive(p.1)).collect();
    let held_out = |inputs: &str, points: Vec<(f64, f64)>, with_bound: bool| {
        let none = if points.is_empty() { ": none stored" } else { "" };
        let mut series = vec![Series::family(&label, points, Vec::new())];
        if with_bound {
            series.push(reference.clone());
        }
        Panel {
            caption: format!("{inputs}{none}"),
            x: x.clone(),
            y: y_held_out.clone(),
            x_desc: "step".into(),
            y_desc: format!("held-out {metric}"),
            series,
        }
    };
    let panels = vec![
        Some(training(&format!("training loss ({loss})"), "training loss", losses)),
        Some(training("gradient norm (before clipping)", "", norms)),
        Some(held_out("general inputs", general, false)),
        Some(held_out("constant inputs", constant, true)),
    ];
    let legend = vec![
        Entry { label: label.clone(), mark: super::Mark::Line { colour: colour(&label), dashed: false, marker: true } },
        Entry::dashed(&format!("{bound_name} on constant inputs (in-softmax families)")),
    ];
    let title = format!("{label} on {}, n = {}, depth {}, width {}", c.target, c.n, c.model.depth, c.model.width);
    let fig = Panels { title: title.clone(), rows: 2, cols: 2, panels, legend, height_per_row: 560 };
    let every = if c.eval.every == 0 {
        "only at the end".to_string()
    } else {
        format!("every {} steps and at the end", c.eval.every)
    };
    let what = format!(
        "Top: training loss of each step's batch ({loss}) and gradient norm against step ({} of {} steps, init seed {}, data seed {}). Bottom: held-out {metric} on {} general and {} constant sequences, evaluated {every} ({} points); dashed: the {bound_name} on constant inputs that binds every in-softmax family ({bound:.6}).",
        record.steps_done,
        c.steps,
        c.init_seed,
        c.data_seed,
        c.eval.sequences,
        c.eval.sequences,
        evaluations.len()
    );
    let reading = match evaluations.last() {
        Some((step, m)) => format!(
            "At step {step}: {metric} {:.4} on general and {:.4} on constant inputs; {label} is {} (outcome: {}).",
            headline(&m.general),
            headline(&m.constant),
            if c.model.barrier_bound() {
                "barrier-bound, so the constant-input value cannot pass the dashed line"
            } else {
                "not barrier-bound, so it may pass the dashed line"
            },
            crate::export::name(&record.outcome)
        ),
        None => "No held-out evaluation was stored (the run diverged before its first one).".into(),
    };
    Ok(vec![save(dir, "training_run", &title, [&what, &reading], &fig)?])
}
