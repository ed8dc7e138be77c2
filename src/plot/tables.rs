//! Heat maps of one URPE run's learned Toeplitz tables: B (added to the scores inside the
//! softmax) and C (multiplying the attention after it), as n × n matrices per head.

use super::{Area, Axis, Draw, Drawn, Figure, chart, frame, number, save, task_name};
use crate::error::Result;
use crate::experiment::StoredRun;
use crate::experiment::stats::{Cell, Task};
use crate::family::kernels::toeplitz::dense;
use crate::theory::TargetKind;
use plotters::prelude::*;
use std::path::Path;

/// One table as matrices: its name and, per head, the n × n matrix (row i, column j).
struct Table {
    name: String,
    heads: Vec<Vec<Vec<f64>>>,
}

/// The figure: one row per table, one column per head, a colour bar per row.
struct Tables {
    title: String,
    n: usize,
    tables: Vec<Table>,
}

/// Draws the tables of the largest URPE model (lowest seed) of one task, preferring
/// position-shift, then the shortest n; nothing when no run stored its tables.
pub(super) fn draw(runs: &[StoredRun], cells: &[Cell], dir: &Path) -> Result<Vec<Figure>> {
    let with: Vec<&StoredRun> = runs.iter().filter(|r| r.probe.tables.iter().any(|(_, t)| !t.is_empty())).collect();
    let task = with.iter().map(|r| Task::of_run(r)).min_by_key(|t| (t.target != TargetKind::PositionShift, *t));
    let Some(run) = with.into_iter().filter(|r| Some(Task::of_run(r)) == task).max_by_key(|r| {
        let m = &r.record.config.model;
        (m.depth * m.width * m.width, m.width, m.depth, std::cmp::Reverse(r.seed))
    }) else {
        return Ok(Vec::new());
    };
    let c = &run.record.config;
    let tables = run
        .probe
        .tables
        .iter()
        .filter(|(_, t)| !t.is_empty())
        .map(|(name, t)| Table { name: name.clone(), heads: t.iter().map(|row| toeplitz(row, c.n)).collect() })
        .collect();
    let title = format!(
        "Learned URPE tables ({}, depth {}, width {}, seed {})",
        task_name(cells, Task::of_run(run)),
        c.model.depth,
        c.model.width,
        run.seed
    );
    let caption = [
        "Learned Toeplitz tables of one URPE run, entry (i, j) at query position i (row) and key position j (column): B is added to the attention scores inside the softmax, C multiplies the attention weights after it.",
        "C = 1 everywhere would be plain relative attention (RPE); structure in C, such as a triangle or a band, is position information that the softmax alone cannot carry.",
    ];
    Ok(vec![save(dir, "urpe_tables", &title, caption, &Tables { title: title.clone(), n: c.n, tables })?])
}

/// The n × n Toeplitz matrix of a table stored at offsets −(N−1)..N−1, as rows.
fn toeplitz(table: &[f32], n: usize) -> Vec<Vec<f64>> {
    let table: Vec<f64> = table.iter().map(|&v| v as f64).collect();
    dense(ndarray::ArrayView1::from(&table), n).rows().into_iter().map(|r| r.to_vec()).collect()
}

/// Width of the colour-bar column.
const BAR: u32 = 190;

impl Tables {
    /// Heads per table.
    fn heads(&self) -> usize {
        self.tables.iter().map(|t| t.heads.len()).max().unwrap_or(1)
    }

    /// Side of one heat-map panel, in pixels.
    fn panel(&self) -> u32 {
        ((1200 - BAR - 40) / self.heads() as u32).clamp(300, 520)
    }
}

impl Draw for Tables {
    fn size(&self) -> (u32, u32) {
        let p = self.panel();
        (p * self.heads() as u32 + BAR + 40, (p - 60) * self.tables.len() as u32 + 90)
    }

    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> Drawn {
        let rows = frame(root, &self.title, &[], (self.tables.len(), 1))?;
        for (r, (area, table)) in rows.iter().zip(&self.tables).enumerate() {
            let last_row = r + 1 == self.tables.len();
            let (maps, bar) = area.split_horizontally(area.dim_in_pixel().0 - BAR);
            let values = table.heads.iter().flatten().flatten().copied().filter(|v| v.is_finite());
            let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
            let (lo, hi) = if lo < hi { (lo, hi) } else { (lo - 0.5, lo + 0.5) };
            for (h, (area, m)) in maps.split_evenly((1, table.heads.len())).iter().zip(&table.heads).enumerate() {
                let caption = format!("{}, head {}", table.name, h + 1);
                let x_desc = if last_row { "key position j" } else { "" };
                let y_desc = if h == 0 { "query position i" } else { "" };
                heat_map(area, &caption, (x_desc, y_desc), m, self.n, (lo, hi))?;
            }
            colour_bar(&bar, &table.name, (lo, hi))?;
        }
        Ok(())
    }
}

/// The colour of `v` on the scale `lo..hi`.
fn shade(v: f64, (lo, hi): (f64, f64)) -> RGBColor {
    if v.is_finite() { ViridisRGB::get_color_normalized(v, lo, hi) } else { RGBColor(255, 255, 255) }
}

/// Position ticks (1-based) at the first, middle and last positions, as cell centres on an
/// axis where position p (0-based) covers one unit, counted from the top when `down`.
fn position_axis(n: usize, down: bool) -> Axis {
    let mut at = vec![0, (n - 1) / 2, n - 1];
    at.dedup();
    let centre = |p: usize| if down { (n - p) as f64 - 0.5 } else { p as f64 + 0.5 };
    Axis {
        lo: 0.0,
        hi: n as f64,
        log: false,
        ticks: at.into_iter().map(|p| (centre(p), (p + 1).to_string())).collect(),
    }
}

/// One matrix as coloured cells, row i at the top-down position i, with axis descriptions
/// `(x, y)` (empty for none).
fn heat_map<DB: DrawingBackend>(
    area: &Area<DB>,
    caption: &str,
    (x_desc, y_desc): (&str, &str),
    m: &[Vec<f64>],
    n: usize,
    scale: (f64, f64),
) -> Drawn {
    let (x, y) = (position_axis(n, false), position_axis(n, true));
    let mut chart = chart(area, caption, (&x, &y), (x_desc, y_desc))?;
    let cells = m.iter().enumerate().flat_map(|(i, row)| {
        row.iter().enumerate().map(move |(j, &v)| {
            let top = (n - i) as f64;
            Rectangle::new([(j as f64, top), (j as f64 + 1.0, top - 1.0)], shade(v, scale).filled())
        })
    });
    chart.draw_series(cells)?;
    Ok(())
}

/// A vertical colour bar for `scale`, captioned with the table's name.
fn colour_bar<DB: DrawingBackend>(area: &Area<DB>, name: &str, (lo, hi): (f64, f64)) -> Drawn {
    let x = Axis { lo: 0.0, hi: 1.0, log: false, ticks: Vec::new() };
    let mut y = Axis::new(lo, hi, false);
    if y.ticks.len() < 2 {
        y.ticks = [lo, hi].map(|v| (v, number(v))).to_vec();
    }
    let mut chart = chart(area, name, (&x, &y), ("", ""))?;
    let steps = 128;
    let slab = |k: usize| {
        let (a, b) = (lo + (hi - lo) * k as f64 / steps as f64, lo + (hi - lo) * (k + 1) as f64 / steps as f64);
        Rectangle::new([(0.0, a), (1.0, b)], shade((a + b) / 2.0, (lo, hi)).filled())
    };
    chart.draw_series((0..steps).map(slab))?;
    Ok(())
}
