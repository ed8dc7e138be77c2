//! Every variant's constant-input result against the exact floor, beside its theory
//! verdict: one panel per task (target and n) at its largest model, one bar per variant
//! (family, gate, normaliser), grey where the theory says bound and in the variant's colour
//! where it says free, from the floor's ratio 1 to a dot at the variant's ratio (a bound
//! variant sits at about 1, where its bar has no length and the dot shows it). For a real
//! target the bar is the constant-input mean squared error
//! over the floor (a bound variant cannot go below 1); for a token target the constant-input
//! accuracy over the ceiling (a bound variant cannot go above 1).

use super::{
    Area, Axis, Draw, Drawn, Entry, Figure, Mark, chart, colour, frame, largest, save, slice, sort_families, tasks,
    width_for,
};
use crate::error::Result;
use crate::experiment::stats::{Cell, Key, MeanCi, Task};
use crate::theory::Floor;
use plotters::prelude::*;
use std::path::Path;

/// One variant's bar: the ratio to the floor over seeds, and the theory's verdict.
struct Bar {
    label: String,
    ratio: MeanCi,
    bound: bool,
}

/// One task (target and n) at its largest model.
struct Panel {
    key: Key,
    token: bool,
    bars: Vec<Bar>,
}

/// The figure.
struct Variants {
    panels: Vec<Panel>,
}

/// Draws the figure when some target has finished runs.
pub(super) fn draw(cells: &[Cell], dir: &Path) -> Result<Vec<Figure>> {
    let panels: Vec<Panel> = tasks(cells, |_| true).into_iter().filter_map(|t| panel(cells, t)).collect();
    if panels.is_empty() {
        return Ok(Vec::new());
    }
    let seeds = panels.iter().flat_map(|p| p.bars.iter().map(|b| b.ratio.k)).max().unwrap_or(0);
    let band = if seeds < 2 { "one seed, no interval".to_string() } else { format!("mean over {seeds} seeds, 95% CI") };
    let what = format!(
        "Each variant's constant-input result over the exact floor at the largest model of each target ({band}; the barrier's metric, not the paper's): mean squared error / floor for real targets, where a variant the theory calls bound (grey) cannot go below 1, and accuracy / ceiling for token targets, where it cannot go above 1; variants the theory calls free are in colour. Each bar runs from the floor's ratio 1 to a dot at the variant's mean, so a variant at the floor shows as a dot on the dashed line."
    );
    let reading: Vec<String> = panels.iter().map(reading).collect();
    Ok(vec![save(dir, "variants", "Variants against the floor", [&what, &reading.join(" ")], &Variants { panels })?])
}

/// The panel of `task`: every variant at the largest model of its slice.
fn panel(cells: &[Cell], task: Task) -> Option<Panel> {
    let slice = slice(cells, task);
    let key = largest(&slice)?;
    let here: Vec<&Cell> =
        slice.into_iter().filter(|c| Key { family: String::new(), ..c.key.clone() } == key).collect();
    let mut labels: Vec<String> = here.iter().map(|c| c.key.family.clone()).collect();
    sort_families(&mut labels);
    let token = matches!(here.first()?.floor, Floor::Classes { .. });
    let bars = labels
        .into_iter()
        .filter_map(|label| {
            let c = here.iter().find(|c| c.key.family == label)?;
            let floor = match c.floor {
                Floor::Mse { mse } => mse,
                Floor::Classes { accuracy, .. } => accuracy,
            };
            (floor > 0.0 && c.constant.k > 0).then(|| Bar {
                ratio: MeanCi {
                    mean: c.constant.mean / floor,
                    lo: c.constant.lo / floor,
                    hi: c.constant.hi / floor,
                    ..c.constant
                },
                bound: c.barrier_bound,
                label,
            })
        })
        .collect::<Vec<_>>();
    (!bars.is_empty()).then_some(Panel { key, token, bars })
}

/// What a panel shows, in words: the bound variants' extreme ratio, and which free variants
/// pass the floor.
fn reading(p: &Panel) -> String {
    let beyond = |b: &Bar| if p.token { b.ratio.mean > 1.0 + 1e-4 } else { b.ratio.mean < 1.0 - 1e-4 };
    let bound: Vec<&Bar> = p.bars.iter().filter(|b| b.bound).collect();
    let crossing: Vec<&str> = bound.iter().filter(|b| beyond(b)).map(|b| b.label.as_str()).collect();
    let free: Vec<&str> = p.bars.iter().filter(|b| !b.bound && beyond(b)).map(|b| b.label.as_str()).collect();
    let stuck: Vec<&str> = p.bars.iter().filter(|b| !b.bound && !beyond(b)).map(|b| b.label.as_str()).collect();
    let list = |v: &[&str]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    format!(
        "{} (n = {}): {} variant(s) bound by the theory, {} past the floor{}; free variants past it: {}; free but not past it in this training: {}.",
        p.key.target,
        p.key.n,
        bound.len(),
        crossing.len(),
        if crossing.is_empty() {
            String::new()
        } else {
            format!(" ({}: a bug, or reduced precision)", crossing.join(", "))
        },
        list(&free),
        list(&stuck)
    )
}

/// Height of one bar's row, in pixels.
const ROW: u32 = 34;

impl Draw for Variants {
    fn size(&self) -> (u32, u32) {
        let rows: u32 = self.panels.iter().map(|p| p.bars.len() as u32 * ROW + 160).sum();
        (width_for(1), rows + 200)
    }

    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> Drawn {
        let grey = RGBColor(150, 150, 150);
        let legend = [
            Entry { label: "bound by the theory".into(), mark: Mark::Fill { fill: grey.to_rgba(), border: false } },
            Entry {
                label: "free by the theory (the variant's colour)".into(),
                mark: Mark::Fill { fill: RGBColor(60, 110, 200).to_rgba(), border: false },
            },
            Entry::dashed("the floor (ratio 1)"),
        ];
        let areas = frame(root, "Variants against the floor", &legend, (1, 1))?;
        let total: u32 = self.panels.iter().map(|p| p.bars.len() as u32 * ROW + 160).sum();
        let mut rest = areas.into_iter().next().expect("one area");
        for (i, p) in self.panels.iter().enumerate() {
            let h = rest.dim_in_pixel().1 * (p.bars.len() as u32 * ROW + 160) / total.max(1);
            let (area, below) =
                if i + 1 == self.panels.len() { (rest.clone(), rest.clone()) } else { rest.split_vertically(h) };
            draw_panel(&area, p, grey)?;
            rest = below;
        }
        Ok(())
    }
}

/// One panel: a horizontal bar per variant from 1 to a dot at its ratio on a log axis, with
/// its CI.
fn draw_panel<DB: DrawingBackend>(area: &Area<DB>, p: &Panel, grey: RGBColor) -> Drawn {
    let k = p.bars.len();
    let values = p.bars.iter().flat_map(|b| [b.ratio.mean, b.ratio.lo, b.ratio.hi]).chain([1.0]);
    let x = Axis::fit(values, true);
    let ticks = p.bars.iter().enumerate().map(|(i, b)| ((k - 1 - i) as f64, b.label.clone())).collect();
    let y = Axis { lo: -0.6, hi: k as f64 - 0.4, log: false, ticks };
    let desc = if p.token { "constant-input accuracy / ceiling" } else { "constant-input MSE / floor" };
    let caption = format!("{} (n = {}, {})", p.key.target, p.key.n, super::model(&p.key));
    let mut chart = chart(area, &caption, (&x, &y), (desc, ""))?;
    for (i, b) in p.bars.iter().enumerate() {
        let at = (k - 1 - i) as f64;
        let fill = if b.bound { grey } else { colour(&b.label) };
        let end = x.clamp(b.ratio.mean);
        chart.draw_series(std::iter::once(Rectangle::new([(1.0, at - 0.32), (end, at + 0.32)], fill.filled())))?;
        let (lo, hi) = (x.clamp(b.ratio.lo), x.clamp(b.ratio.hi));
        if hi > lo {
            let style = BLACK.stroke_width(2);
            chart.draw_series(std::iter::once(PathElement::new(vec![(lo, at), (hi, at)], style)))?;
        }
        let dot = Circle::new((end, at), super::MARKER + 1, fill.filled());
        let rim = Circle::new((end, at), super::MARKER + 1, BLACK.stroke_width(2));
        chart.draw_series([dot, rim])?;
    }
    let style = BLACK.stroke_width(super::STROKE);
    chart.draw_series(DashedLineSeries::new(vec![(1.0, y.lo), (1.0, y.hi)], 12, 8, style))?;
    Ok(())
}
