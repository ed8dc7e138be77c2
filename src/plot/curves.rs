//! Per task (target and n), at its largest model: training loss against step (median over seeds with a
//! min–max band; real targets and token tasks alike), and, for real targets, the model's
//! output along the positions of one constant input.

use super::{
    Axis, Figure, Panel, Panels, Series, largest, legend, median_band, model, save, seeds, sits_at, slice,
    sort_families, steps, task_name, tasks,
};
use crate::error::Result;
use crate::experiment::StoredRun;
use crate::experiment::stats::{Cell, Key};
use std::collections::BTreeMap;
use std::path::Path;

/// The finished runs of one task's largest model, with their families in the fixed order
/// and the task's name in captions.
struct Group<'a> {
    key: Key,
    name: String,
    families: Vec<String>,
    runs: Vec<&'a StoredRun>,
}

/// Draws the training-curve and constant-profile figures the runs allow.
pub(super) fn draw(runs: &[StoredRun], cells: &[Cell], dir: &Path) -> Result<Vec<Figure>> {
    let groups: Vec<Group> = tasks(cells, |_| true)
        .into_iter()
        .filter_map(|t| Some((largest(&slice(cells, t))?, task_name(cells, t))))
        .map(|(key, name)| {
            let here: Vec<&StoredRun> =
                runs.iter().filter(|r| sits_at(r, &key) && r.record.metrics.is_some()).collect();
            let mut families: Vec<String> = here.iter().map(|r| r.family.clone()).collect();
            sort_families(&mut families);
            Group { key, name, families, runs: here }
        })
        .collect();
    let (tokens, real): (Vec<&Group>, Vec<&Group>) = groups.iter().partition(|g| g.key.target.is_classification());
    let mut figures = Vec::new();
    let curves: Vec<Vec<Panel>> =
        [&real, &tokens].into_iter().map(|gs| gs.iter().filter_map(|g| curve_panel(g)).collect()).collect();
    if curves.iter().any(|row| !row.is_empty()) {
        let shown: Vec<&StoredRun> = groups.iter().flat_map(|g| g.runs.iter().copied()).collect();
        let line = format!(
            "Training loss of each step's batch against step, at each target's largest model: mean squared error for real targets (top row), cross-entropy for token tasks (bottom row); median over seeds with the min–max band shaded ({}, {}).",
            seeds(&shown),
            steps(&shown)
        );
        let reading = loss_reading(&groups);
        let caption = [line.as_str(), reading.as_str()];
        let fig = grid("Training loss", curves, families(&groups.iter().collect::<Vec<_>>()), false, &[]);
        figures.push(save(dir, "training_curves", "Training loss", caption, &fig)?);
    }
    let profiles: Vec<Panel> = real.iter().filter_map(|g| profile_panel(g)).collect();
    if !profiles.is_empty() {
        let reading = profile_reading(&real);
        let caption = [
            "Feature 0 of the model's output at each position of one fixed constant input (first seed, largest model per real target), against the target (dashed); position information only inside the softmax forces equal rows there, so flat lines.",
            reading.as_str(),
        ];
        let fig = grid("Output on a constant input", vec![profiles], families(&real), true, &["target"]);
        figures.push(save(dir, "constant_profile", "Output on a constant input", caption, &fig)?);
    }
    Ok(figures)
}

/// The median final training loss of each family at each target's largest model.
fn loss_reading(groups: &[Group]) -> String {
    let parts: Vec<String> = groups
        .iter()
        .map(|g| {
            let finals: Vec<String> = g
                .families
                .iter()
                .filter_map(|f| {
                    let mut last: Vec<f64> = g
                        .runs
                        .iter()
                        .filter(|r| &r.family == f)
                        .filter_map(|r| r.record.curve.last().map(|p| p.loss))
                        .filter(|l| l.is_finite())
                        .collect();
                    last.sort_by(f64::total_cmp);
                    last.get(last.len() / 2).map(|m| format!("{f} {m:.2e}"))
                })
                .collect();
            format!("{}: {}", g.name, finals.join(", "))
        })
        .collect();
    format!(
        "Median loss of the last batch (half constant sequences where the experiment says so): {}.",
        parts.join("; ")
    )
}

/// How far each family's output on the profile's constant input moves along the positions
/// (largest minus smallest of feature 0), against the target's own range.
fn profile_reading(groups: &[&Group]) -> String {
    let spread = |v: &[f64]| {
        v.iter().copied().fold(f64::NEG_INFINITY, f64::max) - v.iter().copied().fold(f64::INFINITY, f64::min)
    };
    let parts: Vec<String> = groups
        .iter()
        .filter_map(|g| {
            let first = |f: &String| g.runs.iter().filter(|r| &r.family == f).min_by_key(|r| r.seed);
            let target = g.runs.iter().find_map(|r| r.probe.profile.as_ref()).map(|p| spread(&p.target))?;
            let each: Vec<String> = g
                .families
                .iter()
                .filter_map(|f| first(f)?.probe.profile.as_ref().map(|p| format!("{f} {:.1e}", spread(&p.output))))
                .collect();
            Some(format!("{} (target {target:.2}): {}", g.name, each.join(", ")))
        })
        .collect();
    format!("Range of the output along the positions: {}.", parts.join("; "))
}

/// Every family of the groups, in the fixed order.
fn families(groups: &[&Group]) -> Vec<String> {
    let mut families: Vec<String> = groups.iter().flat_map(|g| g.families.iter().cloned()).collect();
    sort_families(&mut families);
    families
}

/// A figure of the non-empty `rows` of panels (shorter rows left blank on the right), with
/// a legend of `families` (with markers when `markers`) and dashed `references`.
fn grid(title: &str, rows: Vec<Vec<Panel>>, families: Vec<String>, markers: bool, references: &[&str]) -> Panels {
    let rows: Vec<Vec<Panel>> = rows.into_iter().filter(|r| !r.is_empty()).collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(1);
    let count = rows.len();
    let panels = rows
        .into_iter()
        .flat_map(|r| {
            let blank = cols - r.len();
            r.into_iter().map(Some).chain(std::iter::repeat_n(None, blank))
        })
        .collect();
    Panels {
        title: title.into(),
        rows: count,
        cols,
        panels,
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
fn curve_panel(g: &Group) -> Option<Panel> {
    let series: Vec<Series> = g
        .families
        .iter()
        .filter_map(|f| {
            let mut at_step: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
            for r in of(&g.runs, f) {
                for p in r.record.curve.iter().filter(|p| p.loss.is_finite() && p.loss > 0.0) {
                    at_step.entry(p.step).or_default().push(p.loss);
                }
            }
            let (points, band) = median_band(at_step);
            (!points.is_empty()).then(|| Series { markers: false, ..Series::family(f, points, band) })
        })
        .collect();
    let steps = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let x = Axis::fit(steps.chain([0.0]), false);
    let y = Axis::fit(series.iter().flat_map(|s| s.values()), true);
    let loss = if g.key.target.is_classification() { "cross-entropy" } else { "MSE" };
    panel(g, x, y, "step", &format!("training loss ({loss})"), series)
}

/// Output feature 0 along the positions of the constant probe input, first seed per family,
/// and the target dashed.
fn profile_panel(g: &Group) -> Option<Panel> {
    let along = |v: &[f64]| v.iter().enumerate().map(|(i, &y)| (i as f64 + 1.0, y)).collect::<Vec<_>>();
    let mut target = None;
    let mut series: Vec<Series> = g
        .families
        .iter()
        .filter_map(|f| {
            let p = of(&g.runs, f).into_iter().find_map(|r| r.probe.profile.as_ref())?;
            target.get_or_insert_with(|| along(&p.target));
            Some(Series::family(f, along(&p.output), Vec::new()))
        })
        .collect();
    series.push(Series::reference(target?));
    let x = Axis::new(0.5, g.key.n as f64 + 0.5, false);
    let y = Axis::fit(series.iter().flat_map(|s| s.values()), false);
    panel(g, x, y, "position i", "output, feature 0", series)
}

/// A panel of group `g` (task and model in the caption); `None` without series.
fn panel(g: &Group, x: Axis, y: Axis, x_desc: &str, y_desc: &str, series: Vec<Series>) -> Option<Panel> {
    (!series.is_empty()).then(|| Panel {
        caption: format!("{}, {}", g.name, model(&g.key)),
        x,
        y,
        x_desc: x_desc.into(),
        y_desc: y_desc.into(),
        series,
    })
}
