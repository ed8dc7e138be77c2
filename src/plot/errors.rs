//! Mean squared error of the real targets against model width (one panel per depth) and
//! against depth (one panel per width), one row per task (target and n), with the exact
//! floor of docs/theory.md §4 drawn dashed.

use super::{Axis, Figure, Panel, Panels, Series, legend, measured, save, slice, sort_families, task_name, tasks};
use crate::error::Result;
use crate::experiment::stats::{Cell, Key, MeanCi};
use crate::theory::Floor;
use std::collections::BTreeSet;
use std::path::Path;

/// The quantity along the x axis (the other one picks the panel).
#[derive(Clone, Copy, PartialEq)]
enum Along {
    Width,
    Depth,
}

/// One error figure; its caption's first sentence, then how it was measured and what the
/// data show are added from the cells.
struct Spec {
    name: &'static str,
    title: &'static str,
    caption: &'static str,
    along: Along,
    general: bool,
    floor: &'static str,
}

const SPECS: [Spec; 3] = [
    Spec {
        name: "error_vs_width_constant",
        title: "Error on constant inputs vs width",
        caption: "Mean squared error on constant inputs against model width (log₂ axis), one panel per depth, one row per real target; families shifted slightly sideways and marked so that coinciding points stay visible; dashed: the exact floor of every in-softmax family.",
        along: Along::Width,
        general: false,
        floor: "floor",
    },
    Spec {
        name: "error_vs_width_general",
        title: "Error on general inputs vs width",
        caption: "Mean squared error on general (random, non-constant) inputs against model width, laid out as the constant-input figure; the floor binds on constant inputs only and is drawn here for scale.",
        along: Along::Width,
        general: true,
        floor: "floor (constant inputs only)",
    },
    Spec {
        name: "error_vs_depth",
        title: "Error on constant inputs vs depth",
        caption: "Mean squared error on constant inputs against depth, one panel per width, one row per real target; families shifted slightly sideways and marked so that coinciding points stay visible; dashed: the exact floor of every in-softmax family.",
        along: Along::Depth,
        general: false,
        floor: "floor",
    },
];

/// Draws the error figures the cells allow.
pub(super) fn draw(cells: &[Cell], dir: &Path) -> Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let real: Vec<&Cell> = cells.iter().filter(|c| !c.key.target.is_classification()).collect();
    for spec in &SPECS {
        if let Some(fig) = figure(cells, spec) {
            let first = format!("{} Lines: {}.", spec.caption, measured(&real));
            let reading = reading(cells, spec.general);
            figures.push(save(dir, spec.name, spec.title, [&first, &reading], &fig)?);
        }
    }
    Ok(figures)
}

/// What the cells show against the floor, per real task (target and n) with a positive
/// floor: for every family, at how many sizes its mean error is below the floor (and below
/// floor/10), and the lowest mean; on general inputs only the lowest means (the floor does
/// not bind).
fn reading(cells: &[Cell], general: bool) -> String {
    let mut out = Vec::new();
    for task in tasks(cells, |t| !t.is_classification()) {
        let here: Vec<&Cell> = cells.iter().filter(|c| task.holds(&c.key)).collect();
        let Floor::Mse { mse: floor } = here[0].floor else { continue };
        if floor <= 0.0 {
            continue;
        }
        let mut families: Vec<String> = here.iter().map(|c| c.key.family.clone()).collect();
        sort_families(&mut families);
        let parts: Vec<String> = families
            .iter()
            .map(|f| {
                let mine: Vec<f64> = here
                    .iter()
                    .filter(|c| &c.key.family == f)
                    .map(|c| if general { c.general.mean } else { c.constant.mean })
                    .collect();
                let lowest = mine.iter().copied().fold(f64::INFINITY, f64::min);
                if general {
                    return format!("{f} lowest {lowest:.2e}");
                }
                let below =
                    mine.iter().filter(|&&m| m < floor * (1.0 - crate::experiment::stats::CERTIFY_SLACK)).count();
                let tenth = mine.iter().filter(|&&m| m < floor / 10.0).count();
                format!(
                    "{f} below the floor at {below} of {} sizes ({tenth} below floor/10; lowest {lowest:.2e})",
                    mine.len()
                )
            })
            .collect();
        let kind = if general { "general-input MSE" } else { "constant inputs" };
        out.push(format!("{} (floor {floor:.4}), {kind}: {}.", task_name(cells, task), parts.join("; ")));
    }
    out.join(" ")
}

impl Along {
    /// The x value of a grid point.
    fn x(self, k: &Key) -> usize {
        if self == Along::Width { k.width } else { k.depth }
    }

    /// The panel of a grid point.
    fn panel(self, k: &Key) -> usize {
        if self == Along::Width { k.depth } else { k.width }
    }

    /// `x` shifted sideways for the `i`-th of `k` families, so that points that coincide
    /// stay visible (a fixed step in log₂ width or in depth).
    fn dodge(self, x: f64, i: usize, k: usize) -> f64 {
        let d = i as f64 - (k as f64 - 1.0) / 2.0;
        if self == Along::Width { x * 2f64.powf(0.09 * d) } else { x + 0.07 * d }
    }

    /// Panel caption and x-axis description.
    fn names(self) -> (&'static str, &'static str) {
        if self == Along::Width { ("depth", "width (model dimension)") } else { ("width", "depth (layers)") }
    }
}

/// The figure of `spec`: one row per real task (target and n), one panel per depth (or
/// width); `None` when no real task has a finished run.
fn figure(cells: &[Cell], spec: &Spec) -> Option<Panels> {
    let rows: Vec<(String, Vec<&Cell>)> = tasks(cells, |t| !t.is_classification())
        .into_iter()
        .map(|t| (task_name(cells, t), slice(cells, t)))
        .filter(|(_, s)| !s.is_empty())
        .collect();
    let all: Vec<&Cell> = rows.iter().flat_map(|(_, s)| s.iter().copied()).collect();
    if all.is_empty() {
        return None;
    }
    let along = spec.along;
    let columns: BTreeSet<usize> = all.iter().map(|c| along.panel(&c.key)).collect();
    let xs: Vec<f64> =
        all.iter().map(|c| along.x(&c.key)).collect::<BTreeSet<_>>().into_iter().map(|v| v as f64).collect();
    let x = Axis::at(&xs, along == Along::Width, |v| format!("{v}"));
    let mut families: Vec<String> = all.iter().map(|c| c.key.family.clone()).collect();
    sort_families(&mut families);
    let (panel_name, x_desc) = along.names();
    let y_desc = if spec.general { "MSE, general inputs" } else { "MSE, constant inputs" };
    let stat = |c: &Cell| -> MeanCi { if spec.general { c.general } else { c.constant } };

    let mut panels = Vec::new();
    for (name, slice) in &rows {
        let floor = match slice[0].floor {
            Floor::Mse { mse } if mse > 0.0 => Some(mse),
            _ => None,
        };
        let mut row: Vec<Option<Panel>> = columns
            .iter()
            .map(|&col| {
                let here: Vec<&&Cell> = slice.iter().filter(|c| along.panel(&c.key) == col).collect();
                if here.is_empty() {
                    return None;
                }
                let mut series: Vec<Series> = families
                    .iter()
                    .enumerate()
                    .filter_map(|(i, f)| {
                        let mut points: Vec<(f64, MeanCi)> = here
                            .iter()
                            .filter(|c| &c.key.family == f)
                            .map(|c| (along.dodge(along.x(&c.key) as f64, i, families.len()), stat(c)))
                            .collect();
                        points.sort_by(|a, b| a.0.total_cmp(&b.0));
                        (!points.is_empty()).then(|| {
                            Series::family(
                                f,
                                points.iter().map(|(x, s)| (*x, s.mean)).collect(),
                                points.iter().map(|(x, s)| (*x, s.lo, s.hi)).collect(),
                            )
                        })
                    })
                    .collect();
                series.extend(floor.map(|m| Series::reference(vec![(x.lo, m), (x.hi, m)])));
                Some(Panel {
                    caption: format!("{name}, {panel_name} {col}"),
                    x: x.clone(),
                    y: x.clone(),
                    x_desc: x_desc.into(),
                    y_desc: y_desc.into(),
                    series,
                })
            })
            .collect();
        // one y range per row, so the panels of a target compare at a glance
        let y = Axis::fit(
            row.iter().flatten().flat_map(|p| p.series.iter().flat_map(|s| s.values()).collect::<Vec<_>>()),
            true,
        );
        row.iter_mut().flatten().for_each(|p| p.y = y.clone());
        panels.extend(row);
    }
    let references: &[&str] =
        if all.iter().any(|c| matches!(c.floor, Floor::Mse { mse } if mse > 0.0)) { &[spec.floor] } else { &[] };
    Some(Panels {
        title: spec.title.into(),
        rows: rows.len(),
        cols: columns.len(),
        panels,
        legend: legend(&families, true, references),
        height_per_row: 420,
    })
}
