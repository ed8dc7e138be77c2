//! Token accuracy per family on position-id and even-token: general inputs first (uniform
//! random tokens, the paper's metric), constant inputs beside them (the barrier's), and the
//! paper's general accuracy at its own n = 128 as a reference mark, not a comparable bar.

use super::{
    Area, Axis, Draw, Drawn, Entry, Figure, Mark, STROKE, chart, colour, frame, largest, model, save, slice,
    sort_families, tasks, whisker, width_for,
};
use crate::error::Result;
use crate::experiment::stats::{Cell, Key, MeanCi, Task};
use crate::theory::{Floor, TargetKind};
use plotters::prelude::*;
use std::path::Path;

/// The paper's accuracies at vocabulary 1,000 and n = 128 (read from its figure), under our
/// family labels: noPE → nope, RPE → t5, URPE → urpe.
const PAPER: [(TargetKind, &str, f64); 6] = [
    (TargetKind::PositionId, "nope", 0.056),
    (TargetKind::PositionId, "t5", 0.107),
    (TargetKind::PositionId, "urpe", 1.00),
    (TargetKind::EvenToken, "nope", 0.50),
    (TargetKind::EvenToken, "t5", 0.533),
    (TargetKind::EvenToken, "urpe", 1.00),
];

/// One family's bars: general and constant accuracy over seeds, and the paper's value.
struct Group {
    family: String,
    barrier_bound: bool,
    reduced_precision: Option<String>,
    constant: MeanCi,
    general: MeanCi,
    paper: Option<f64>,
}

/// One token task (target and n) at its largest model.
struct Row {
    key: Key,
    ceiling: f64,
    groups: Vec<Group>,
}

/// The figure: one panel per token task.
struct Accuracy {
    rows: Vec<Row>,
}

/// Draws the token-accuracy figure when token targets have finished runs.
pub(super) fn draw(cells: &[Cell], dir: &Path) -> Result<Vec<Figure>> {
    let rows: Vec<Row> =
        tasks(cells, TargetKind::is_classification).into_iter().filter_map(|t| row(cells, t)).collect();
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let seeds = rows.iter().flat_map(|r| r.groups.iter().map(|g| g.general.k)).max().unwrap_or(0);
    let band = if seeds < 2 { "one seed, no interval".to_string() } else { format!("mean over {seeds} seeds, 95% CI") };
    let first = format!(
        "Token accuracy per family at the largest model ({band}): general inputs (uniform random tokens, the paper's metric; solid) and constant inputs (the barrier's; light). Black marks: the paper's general accuracy at its own n = 128, vocabulary 1,000, 40k steps: a reference, not the same setting. Dashed: the ceiling on constant inputs for in-softmax families."
    );
    let reading: Vec<String> = rows.iter().map(reading).collect();
    let caption = [first.as_str(), &reading.join(" ")];
    Ok(vec![save(dir, "token_accuracy", "Token accuracy", caption, &Accuracy { rows })?])
}

/// What a row's data show, in words: which families reach 0.95 on general inputs, and the
/// largest constant-input accuracy of an in-softmax family against the ceiling.
fn reading(row: &Row) -> String {
    let listed = |keep: &dyn Fn(&Group) -> bool| {
        let names: Vec<String> =
            row.groups.iter().filter(|g| keep(g)).map(|g| format!("{} {:.3}", g.family, g.general.mean)).collect();
        if names.is_empty() { "none".to_string() } else { names.join(", ") }
    };
    let highest = row
        .groups
        .iter()
        .filter(|g| g.barrier_bound)
        .map(|g| (g.constant.hi.max(g.constant.mean), g))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let bound = match highest {
        None => String::new(),
        Some((top, g)) => format!(
            " In-softmax families on constant inputs: at most {top:.4} (upper CI end) against the ceiling {:.4}{}.",
            row.ceiling,
            match (top <= row.ceiling * (1.0 + 1e-4), &g.reduced_precision) {
                (true, _) => String::new(),
                (false, Some(p)) => format!(
                    ", above it: {} in {p}, not certified (equal rows are equal only to rounding; an argmax flips on near-ties)",
                    g.family
                ),
                (false, None) => ", ABOVE it: a bug".to_string(),
            }
        ),
    };
    format!(
        "{} (n = {}): general accuracy ≥ 0.95 for {}; below 0.95 for {}.{bound}",
        row.key.target,
        row.key.n,
        listed(&|g| g.general.mean >= 0.95),
        listed(&|g| g.general.mean < 0.95)
    )
}

/// The row of `task`: every family at the largest model of its slice.
fn row(cells: &[Cell], task: Task) -> Option<Row> {
    let slice = slice(cells, task);
    let key = largest(&slice)?;
    let here: Vec<&Cell> =
        slice.into_iter().filter(|c| Key { family: String::new(), ..c.key.clone() } == key).collect();
    let ceiling = match here.first()?.floor {
        Floor::Classes { accuracy, .. } => accuracy,
        Floor::Mse { .. } => return None,
    };
    let mut families: Vec<String> = here.iter().map(|c| c.key.family.clone()).collect();
    sort_families(&mut families);
    let groups = families
        .into_iter()
        .filter_map(|f| {
            let c = here.iter().find(|c| c.key.family == f)?;
            let paper = PAPER.iter().find(|p| p.0 == task.target && p.1 == f).map(|p| p.2);
            Some(Group {
                constant: c.constant,
                general: c.general,
                paper,
                barrier_bound: c.barrier_bound,
                reduced_precision: c.reduced_precision.clone(),
                family: f,
            })
        })
        .collect();
    Some(Row { key, ceiling, groups })
}

/// Bar width and the offsets of the general and constant bars from the category.
const BAR: f64 = 0.34;
const OFFSETS: [f64; 2] = [-0.18, 0.18];

impl Draw for Accuracy {
    fn size(&self) -> (u32, u32) {
        (width_for(1), 480 * self.rows.len() as u32 + 200)
    }

    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> Drawn {
        let legend = [
            Entry {
                label: "general inputs (paper's metric)".into(),
                mark: Mark::Fill { fill: RGBColor(90, 90, 90).to_rgba(), border: false },
            },
            Entry {
                label: "constant inputs (barrier)".into(),
                mark: Mark::Fill { fill: RGBColor(90, 90, 90).mix(0.4), border: false },
            },
            Entry {
                label: "paper, general, at its n = 128 (reference)".into(),
                mark: Mark::Line { colour: BLACK, dashed: false, marker: true },
            },
            Entry::dashed("ceiling on constant inputs (in-softmax)"),
        ];
        let areas = frame(root, "Token accuracy", &legend, (self.rows.len(), 1))?;
        for (area, row) in areas.iter().zip(&self.rows) {
            draw_row(area, row)?;
        }
        Ok(())
    }
}

/// One panel: two bars per family with confidence intervals, the paper's mark, the ceiling.
fn draw_row<DB: DrawingBackend>(area: &Area<DB>, row: &Row) -> Drawn {
    let k = row.groups.len();
    let ticks = row.groups.iter().enumerate().map(|(i, g)| (i as f64, g.family.clone())).collect();
    let x = Axis { lo: -0.55, hi: k as f64 - 0.45, log: false, ticks };
    let y = Axis::new(0.0, 1.08, false);
    let caption = format!("{} (n = {}, {})", row.key.target, row.key.n, model(&row.key));
    let mut chart = chart(area, &caption, (&x, &y), ("", "accuracy"))?;
    for (i, g) in row.groups.iter().enumerate() {
        let c = colour(&g.family);
        let bars = [(g.general, c.filled()), (g.constant, c.mix(0.4).filled())];
        for ((s, style), dx) in bars.into_iter().zip(OFFSETS).filter(|((s, _), _)| s.k > 0) {
            let left = i as f64 + dx - BAR / 2.0;
            chart.draw_series(std::iter::once(Rectangle::new([(left, 0.0), (left + BAR, s.mean)], style)))?;
            whisker(&mut chart, left + BAR / 2.0, (y.clamp(s.lo), y.clamp(s.hi)), BLACK)?;
        }
        if let Some(p) = g.paper {
            let (left, right) = (i as f64 + OFFSETS[0] - BAR / 2.0, i as f64 + OFFSETS[0] + BAR / 2.0);
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(left, p), (right, p)],
                BLACK.stroke_width(STROKE),
            )))?;
            chart.draw_series(std::iter::once(Circle::new(
                (i as f64 + OFFSETS[0], p),
                super::MARKER,
                BLACK.filled(),
            )))?;
        }
    }
    let style = BLACK.stroke_width(STROKE);
    chart.draw_series(DashedLineSeries::new(vec![(x.lo, row.ceiling), (x.hi, row.ceiling)], 12, 8, style))?;
    Ok(())
}
