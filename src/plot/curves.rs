//! Per real target, at its largest model: training loss against step (median over seeds
//! with a min–max band), and the model's output along the positions of one constant input.

use super::{
    Axis, Figure, Panel, Panels, Series, largest, legend, model, save, sits_at, slice, sort_families, targets,
};
use crate::error::Result;
use crate::experiment::StoredRun;
use crate::experiment::stats::{Cell, Key};
use std::collections::BTreeMap;
use std::path::Path;

/// Draws the training-curve and constant-profile figures the runs allow.
pub(super) fn draw(runs: &[StoredRun], cells: &[Cell], dir: &Path) -> Result<Vec<Figure>> {
    let groups: Vec<(Key, Vec<String>, Vec<&StoredRun>)> = targets(cells, |t| !t.is_classification())
        .into_iter()
        .filter_map(|t| largest(&slice(cells, t)))
        .map(|key| {
            let here: Vec<&StoredRun> =
                runs.iter().filter(|r| sits_at(r, &key) && r.record.metrics.is_some()).collect();
            let mut families: Vec<String> = here.iter().map(|r| r.family.clone()).collect();
            sort_families(&mut families);
            (key, families, here)
        })
        .collect();
    let mut figures = Vec::new();
    let curves: Vec<Panel> = groups.iter().filter_map(|(k, f, r)| curve_panel(k, f, r)).collect();
    if !curves.is_empty() {
        let caption = [
            "Training loss (mean squared error of each step's batch, half constant and half general inputs) against step, at each real target's largest model; median over seeds with the min–max band shaded.",
            "Barrier-bound families level off where constant inputs keep their loss at the floor; URPE and APE keep going down.",
        ];
        let fig = row("Training loss", curves, groups_families(&groups), false, &[]);
        figures.push(save(dir, "training_curves", "Training loss", caption, &fig)?);
    }
    let profiles: Vec<Panel> = groups.iter().filter_map(|(k, f, r)| profile_panel(k, f, r)).collect();
    if !profiles.is_empty() {
        let caption = [
            "Feature 0 of the model's output at each position of one fixed constant input (first seed, largest model per real target), against the target (dashed).",
            "Position information only inside the softmax forces equal rows on a constant input, so those lines are flat; URPE and APE can follow the target's ramp.",
        ];
        let fig = row("Output on a constant input", profiles, groups_families(&groups), true, &["target"]);
        figures.push(save(dir, "constant_profile", "Output on a constant input", caption, &fig)?);
    }
    Ok(figures)
}

/// Every family of the groups, in the fixed order.
fn groups_families(groups: &[(Key, Vec<String>, Vec<&StoredRun>)]) -> Vec<String> {
    let mut families: Vec<String> = groups.iter().flat_map(|g| g.1.iter().cloned()).collect();
    sort_families(&mut families);
    families
}

/// A figure of one row of panels, with a legend of `families` (with markers when
/// `markers`) and dashed `references`.
fn row(title: &str, panels: Vec<Panel>, families: Vec<String>, markers: bool, references: &[&str]) -> Panels {
    Panels {
        title: title.into(),
        rows: 1,
        cols: panels.len(),
        panels: panels.into_iter().map(Some).collect(),
        legend: legend(&families, markers, references),
        height_per_row: 600,
    }
}

/// The runs of `family` among `runs`, lowest seed first.
fn of<'a>(runs: &[&'a StoredRun], family: &str) -> Vec<&'a StoredRun> {
    let mut of: Vec<&StoredRun> = runs.iter().copied().filter(|r| r.family == family).collect();
    of.sort_by_key(|r| r.seed);
    of
}

/// Training loss per family: median over seeds at each stored step, min–max band.
fn curve_panel(key: &Key, families: &[String], runs: &[&StoredRun]) -> Option<Panel> {
    let series: Vec<Series> = families
        .iter()
        .filter_map(|f| {
            let mut at_step: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
            for r in of(runs, f) {
                for p in r.record.curve.iter().filter(|p| p.loss.is_finite() && p.loss > 0.0) {
                    at_step.entry(p.step).or_default().push(p.loss);
                }
            }
            let mut band = Vec::new();
            let mut points = Vec::new();
            for (step, mut losses) in at_step {
                losses.sort_by(f64::total_cmp);
                let k = losses.len();
                let median = if k % 2 == 1 { losses[k / 2] } else { (losses[k / 2 - 1] + losses[k / 2]) / 2.0 };
                points.push((step as f64, median));
                band.push((step as f64, losses[0], losses[k - 1]));
            }
            (!points.is_empty()).then(|| Series { markers: false, ..Series::family(f, points, band) })
        })
        .collect();
    let steps = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let x = Axis::fit(steps.chain([0.0]), false);
    let y = Axis::fit(series.iter().flat_map(|s| s.values()), true);
    panel(key, x, y, "step", "training loss (MSE)", series)
}

/// Output feature 0 along the positions of the constant probe input, first seed per family,
/// and the target dashed.
fn profile_panel(key: &Key, families: &[String], runs: &[&StoredRun]) -> Option<Panel> {
    let along = |v: &[f64]| v.iter().enumerate().map(|(i, &y)| (i as f64 + 1.0, y)).collect::<Vec<_>>();
    let mut target = None;
    let mut series: Vec<Series> = families
        .iter()
        .filter_map(|f| {
            let p = of(runs, f).into_iter().find_map(|r| r.probe.profile.as_ref())?;
            target.get_or_insert_with(|| along(&p.target));
            Some(Series::family(f, along(&p.output), Vec::new()))
        })
        .collect();
    series.push(Series::reference(target?));
    let x = Axis::new(0.5, key.n as f64 + 0.5, false);
    let y = Axis::fit(series.iter().flat_map(|s| s.values()), false);
    panel(key, x, y, "position i", "output, feature 0", series)
}

/// A panel of `key` (target and model in the caption); `None` without series.
fn panel(key: &Key, x: Axis, y: Axis, x_desc: &str, y_desc: &str, series: Vec<Series>) -> Option<Panel> {
    (!series.is_empty()).then(|| Panel {
        caption: format!("{}, {}", key.target, model(key)),
        x,
        y,
        x_desc: x_desc.into(),
        y_desc: y_desc.into(),
        series,
    })
}
