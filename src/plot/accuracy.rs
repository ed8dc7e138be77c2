//! Token accuracy per family on position-id and even-token, on constant and general
//! inputs, beside the accuracies the paper reports (THEORY.md §6, vocabulary 1,000).

use super::{
    Area, Axis, Draw, Drawn, Entry, Figure, Mark, STROKE, chart, colour, frame, largest, model, save, slice,
    sort_families, targets, whisker, width_for,
};
use crate::error::Result;
use crate::experiment::stats::{Cell, Key, MeanCi};
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

/// One family's bars: constant and general accuracy over seeds, and the paper's value.
struct Group {
    family: String,
    constant: MeanCi,
    general: MeanCi,
    paper: Option<f64>,
}

/// One token target at its largest model.
struct Row {
    key: Key,
    ceiling: f64,
    groups: Vec<Group>,
}

/// The figure: one panel per token target.
struct Accuracy {
    rows: Vec<Row>,
}

/// Draws the token-accuracy figure when token targets have finished runs.
pub(super) fn draw(cells: &[Cell], dir: &Path) -> Result<Vec<Figure>> {
    let rows: Vec<Row> =
        targets(cells, TargetKind::is_classification).into_iter().filter_map(|t| row(cells, t)).collect();
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let caption = [
        "Token accuracy per family at the largest model (mean over seeds, 95% CI) on constant inputs (solid) and general inputs (light), beside the paper's accuracy (outlined, n = 128, vocabulary 1,000).",
        "On constant inputs no in-softmax family can pass the dashed ceiling (1/n for position-id, 1/2 for even-token); URPE and APE can reach 1.",
    ];
    Ok(vec![save(dir, "token_accuracy", "Token accuracy", caption, &Accuracy { rows })?])
}

/// The row of `target`: every family at the largest model of its slice.
fn row(cells: &[Cell], target: TargetKind) -> Option<Row> {
    let slice = slice(cells, target);
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
            let paper = PAPER.iter().find(|p| p.0 == target && p.1 == f).map(|p| p.2);
            Some(Group { constant: c.constant, general: c.general, paper, family: f })
        })
        .collect();
    Some(Row { key, ceiling, groups })
}

/// Bar width and the offsets of the constant, general and paper bars from the category.
const BAR: f64 = 0.25;
const OFFSETS: [f64; 3] = [-0.27, 0.0, 0.27];

impl Draw for Accuracy {
    fn size(&self) -> (u32, u32) {
        (width_for(1), 480 * self.rows.len() as u32 + 200)
    }

    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> Drawn {
        let legend = [
            Entry {
                label: "constant inputs".into(),
                mark: Mark::Fill { fill: RGBColor(90, 90, 90).to_rgba(), border: false },
            },
            Entry {
                label: "general inputs".into(),
                mark: Mark::Fill { fill: RGBColor(90, 90, 90).mix(0.4), border: false },
            },
            Entry {
                label: "paper (n = 128, general inputs)".into(),
                mark: Mark::Fill { fill: WHITE.to_rgba(), border: true },
            },
            Entry::dashed("ceiling on constant inputs"),
        ];
        let areas = frame(root, "Token accuracy", &legend, (self.rows.len(), 1))?;
        for (area, row) in areas.iter().zip(&self.rows) {
            draw_row(area, row)?;
        }
        Ok(())
    }
}

/// One panel: three bars per family with confidence intervals, and the ceiling.
fn draw_row<DB: DrawingBackend>(area: &Area<DB>, row: &Row) -> Drawn {
    let k = row.groups.len();
    let ticks = row.groups.iter().enumerate().map(|(i, g)| (i as f64, g.family.clone())).collect();
    let x = Axis { lo: -0.55, hi: k as f64 - 0.45, log: false, ticks };
    let y = Axis::new(0.0, 1.08, false);
    let caption = format!("{} (n = {}, {})", row.key.target, row.key.n, model(&row.key));
    let mut chart = chart(area, &caption, (&x, &y), ("", "accuracy"))?;
    for (i, g) in row.groups.iter().enumerate() {
        let c = colour(&g.family);
        let bars = [(g.constant, c.filled()), (g.general, c.mix(0.4).filled())];
        for ((s, style), dx) in bars.into_iter().zip(OFFSETS).filter(|((s, _), _)| s.k > 0) {
            let left = i as f64 + dx - BAR / 2.0;
            chart.draw_series(std::iter::once(Rectangle::new([(left, 0.0), (left + BAR, s.mean)], style)))?;
            whisker(&mut chart, left + BAR / 2.0, (y.clamp(s.lo), y.clamp(s.hi)), BLACK)?;
        }
        if let Some(p) = g.paper {
            let left = i as f64 + OFFSETS[2] - BAR / 2.0;
            chart
                .draw_series(std::iter::once(Rectangle::new([(left, 0.0), (left + BAR, p)], BLACK.stroke_width(2))))?;
        }
    }
    let style = BLACK.stroke_width(STROKE);
    chart.draw_series(DashedLineSeries::new(vec![(x.lo, row.ceiling), (x.hi, row.ceiling)], 12, 8, style))?;
    Ok(())
}
