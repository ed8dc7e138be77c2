//! Figures of a results store, as PNG and SVG: error against width and depth against the
//! exact floor, token accuracies beside the paper's and against step, URPE's learned
//! tables, training curves and the output profile on a constant input. [`draw_all`] draws
//! every figure the runs allow; [`draw_run`] draws the curves of one `urpe train` run.
//!
//! Shared style lives here: the font (DejaVu Sans, registered once, since plotters has no
//! system fonts here), one colour per family in every figure, sizes readable at paper
//! column width, a title band on top, a legend band at the bottom (never over data), and
//! line panels drawn from plain data ([`Panel`]).

mod accuracy;
mod accuracy_steps;
mod curves;
mod errors;
mod probes;
mod run;
mod tables;
mod variants;

use crate::config::Variant;
use crate::error::{Error, Result};
use crate::experiment::StoredRun;
use crate::experiment::stats::{self, Cell, Key, Task, cells};
use crate::theory::TargetKind;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use probes::draw_analysis;
pub(crate) use probes::rank_reading;
pub use run::draw_run;

/// One drawn figure: the same picture as PNG and as SVG.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// File stem (`error_vs_width_constant`, …).
    pub name: String,
    /// Short title.
    pub title: String,
    /// Two lines: what it shows, and how to read it.
    pub caption: String,
    /// The PNG file.
    pub png: PathBuf,
    /// The SVG file.
    pub svg: PathBuf,
}

/// Draws every figure the runs allow into `dir` (created when missing), each as PNG and
/// SVG; a figure whose data the runs lack is skipped. Returns the figures written.
pub fn draw_all(runs: &[StoredRun], dir: &Path) -> Result<Vec<Figure>> {
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, format!("cannot create the figures folder: {e}")))?;
    let cells = cells(runs);
    let mut figures = errors::draw(&cells, dir)?;
    figures.extend(accuracy::draw(&cells, dir)?);
    figures.extend(accuracy_steps::draw(runs, &cells, dir)?);
    figures.extend(tables::draw(runs, &cells, dir)?);
    figures.extend(curves::draw(runs, &cells, dir)?);
    figures.extend(probes::draw(runs, &cells, dir)?);
    figures.extend(variants::draw(&cells, dir)?);
    Ok(figures)
}

// ---------------------------------------------------------------- drawing and saving

/// A drawing failure inside plotters (any backend), as text.
struct PlotError(String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for PlotError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        PlotError(e.to_string())
    }
}

/// What drawing on a backend returns.
type Drawn = std::result::Result<(), PlotError>;

/// A drawing area of any backend.
type Area<DB> = DrawingArea<DB, Shift>;

/// A figure ready to draw on any backend.
trait Draw {
    /// Size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws the whole figure on `root`.
    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> Drawn;
}

/// Draws `fig` into `dir/name.svg` and `dir/name.png`; on a drawing error neither file is
/// left behind.
fn save(dir: &Path, name: &str, title: &str, caption: [&str; 2], fig: &impl Draw) -> Result<Figure> {
    fonts();
    let failed = |what: &str, e: PlotError| Error::Internal(format!("drawing {name}.{what}: {}", e.0));
    let mut svg_text = String::new();
    {
        let root = SVGBackend::with_string(&mut svg_text, fig.size()).into_drawing_area();
        fig.draw(&root).and_then(|()| Ok(root.present()?)).map_err(|e| failed("svg", e))?;
    }
    let png = dir.join(format!("{name}.png"));
    let part = dir.join(format!(".{name}.part.png"));
    let drawn = (|| -> Drawn {
        let root = BitMapBackend::new(&part, fig.size()).into_drawing_area();
        fig.draw(&root)?;
        Ok(root.present()?)
    })();
    if let Err(e) = drawn {
        let _ = std::fs::remove_file(&part);
        return Err(failed("png", e));
    }
    std::fs::rename(&part, &png).map_err(|e| Error::file(&png, format!("cannot write: {e}")))?;
    let svg = dir.join(format!("{name}.svg"));
    crate::io::write_atomic(&svg, svg_text.as_bytes())?;
    Ok(Figure { name: name.into(), title: title.into(), caption: caption.join("\n"), png, svg })
}

// ---------------------------------------------------------------- style

/// The one font family of every figure.
const FONT: &str = "sans-serif";
/// How the cells of a figure were measured, for its caption: "means over 3 seeds with
/// shaded 95% Student-t intervals; 400 steps per run" (or single runs without a band).
fn measured(cells: &[&Cell]) -> String {
    let seeds: BTreeSet<usize> = cells.iter().map(|c| c.constant.k).collect();
    let steps: BTreeSet<usize> = cells.iter().map(|c| c.steps).collect();
    let (fewest, most) = (seeds.first().copied().unwrap_or(0), seeds.last().copied().unwrap_or(0));
    let band = match (fewest, most) {
        (_, m) if m < 2 => "single runs (one seed: no interval)".to_string(),
        (f, m) if f == m => format!("means over {m} seeds with shaded 95% Student-t intervals"),
        (f, m) => format!("means over {f} to {m} seeds with shaded 95% Student-t intervals (none where one seed)"),
    };
    let steps: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
    format!("{band}; {} steps per run", steps.join(" or "))
}

/// Font sizes in pixels: figure title, panel caption, axis description, tick labels, legend.
const TITLE: f64 = 36.0;
const CAPTION: f64 = 29.0;
const AXIS: f64 = 27.0;
const TICK: f64 = 24.0;
const LEGEND: f64 = 27.0;
/// Line width and marker radius of data series.
const STROKE: u32 = 3;
const MARKER: u32 = 6;

/// Registers DejaVu Sans as `sans-serif` (once per process).
fn fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

/// The figure font at `size` pixels.
fn font(size: f64) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

/// Width of a figure of `cols` panels side by side (at least 1200 px).
fn width_for(cols: usize) -> u32 {
    (340 * cols as u32 + 120).max(1200)
}

/// Families in a fixed order (barrier-bound first, then those that break the barrier) with
/// their fixed colours.
const FAMILIES: [(&str, RGBColor); 11] = [
    ("nope", RGBColor(110, 110, 110)),
    ("t5", RGBColor(31, 119, 180)),
    ("t5-bucketed", RGBColor(23, 190, 207)),
    ("alibi", RGBColor(255, 127, 14)),
    ("rope", RGBColor(44, 160, 44)),
    ("shaw-key", RGBColor(188, 189, 34)),
    ("xl", RGBColor(140, 86, 75)),
    ("ape-learned", RGBColor(148, 103, 189)),
    ("ape-sin", RGBColor(227, 119, 194)),
    ("shaw-value", RGBColor(57, 59, 121)),
    ("urpe", RGBColor(214, 39, 40)),
];

/// The colour of a family label, the same in every figure (labels outside the fixed list,
/// such as `rope+urpe`, get a stable colour from their name).
fn colour(family: &str) -> RGBColor {
    FAMILIES.iter().find(|(f, _)| *f == family).map(|&(_, c)| c).unwrap_or_else(|| {
        let hash = family.bytes().fold(7usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        let (r, g, b) = Palette99::pick(hash).to_rgba().rgb();
        RGBColor(r, g, b)
    })
}

/// Marker shapes, so that families whose lines coincide (the in-softmax families on the
/// floor) stay apart without colour.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Shape {
    Circle,
    Square,
    Triangle,
    Diamond,
    Cross,
}

/// The marker shape of a line colour: a fixed family's shape cycles through [`Shape`] in
/// the fixed family order (each family's colour is unique); any other colour a circle.
fn shape(colour: RGBColor) -> Shape {
    const SHAPES: [Shape; 5] = [Shape::Circle, Shape::Square, Shape::Triangle, Shape::Diamond, Shape::Cross];
    FAMILIES.iter().position(|(_, c)| *c == colour).map_or(Shape::Circle, |i| SHAPES[i % SHAPES.len()])
}

/// Draws a marker of `colour`'s shape at `at` on `area` (a chart's plotting area or a
/// pixel area).
fn draw_marker<DB: DrawingBackend, CT: plotters::coord::CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    colour: RGBColor,
) -> Drawn
where
    CT::From: Clone + 'static,
{
    let (m, style) = (MARKER as i32, colour.filled());
    match shape(colour) {
        Shape::Circle => area.draw(&Circle::new(at, MARKER, style))?,
        Shape::Square => area.draw(&(EmptyElement::at(at) + Rectangle::new([(-m, -m), (m, m)], style)))?,
        Shape::Triangle => area.draw(&TriangleMarker::new(at, MARKER + 2, style))?,
        Shape::Diamond => {
            let corners = vec![(0, -m - 2), (m + 2, 0), (0, m + 2), (-m - 2, 0)];
            area.draw(&(EmptyElement::at(at) + Polygon::new(corners, style)))?
        }
        Shape::Cross => area.draw(&Cross::new(at, MARKER + 1, colour.stroke_width(STROKE)))?,
    }
    Ok(())
}

/// Sorts variant labels into the one order of [`Variant::order_key`].
fn sort_families(families: &mut Vec<String>) {
    Variant::sort_labels(families);
}

// ---------------------------------------------------------------- data selection

/// The tasks of `cells` (targets in catalogue order, then n ascending) whose target `keep`
/// accepts: a figure draws each task apart, never two lengths of one target together.
fn tasks(cells: &[Cell], keep: impl Fn(TargetKind) -> bool) -> Vec<Task> {
    stats::tasks(cells).into_iter().filter(|t| keep(t.target)).collect()
}

/// How a figure names `task`: the target alone when the store (`cells`) has it at one
/// length, else with its n ([`Task::name_among`]).
fn task_name(cells: &[Cell], task: Task) -> String {
    task.name_among(&stats::tasks(cells))
}

/// The cells of `task` with at least one finished run, at its most common head count (a
/// figure shows one such slice per task).
fn slice(cells: &[Cell], task: Task) -> Vec<&Cell> {
    let of: Vec<&Cell> = cells.iter().filter(|c| task.holds(&c.key) && c.constant.k > 0).collect();
    let count = |h| of.iter().filter(|c| c.key.heads == h).count();
    let Some(mode) = of.iter().map(|c| c.key.heads).max_by_key(|&h| (count(h), h)) else {
        return Vec::new();
    };
    of.into_iter().filter(|c| c.key.heads == mode).collect()
}

/// The largest model (depth · width², then width) among `cells`, as a key with its family
/// left empty; `None` without cells.
fn largest(cells: &[&Cell]) -> Option<Key> {
    let k = cells.iter().map(|c| &c.key).max_by_key(|k| (k.depth * k.width * k.width, k.width, k.depth))?;
    Some(Key { family: String::new(), ..k.clone() })
}

/// True when `run` sits at grid point `key` (a key with its family left empty).
fn sits_at(run: &StoredRun, key: &Key) -> bool {
    Key { family: String::new(), ..Key::of(run) } == *key
}

/// A median line (x, median) and its min–max band (x, min, max).
type MedianBand = (Vec<(f64, f64)>, Vec<(f64, f64, f64)>);

/// Values gathered per step over seeds, as the median line and the min–max band (steps in
/// order; the median of an even count is the mean of the middle two).
fn median_band(at_step: BTreeMap<usize, Vec<f64>>) -> MedianBand {
    let mut points = Vec::new();
    let mut band = Vec::new();
    for (step, mut values) in at_step.into_iter().filter(|(_, v)| !v.is_empty()) {
        values.sort_by(f64::total_cmp);
        let k = values.len();
        let median = if k % 2 == 1 { values[k / 2] } else { (values[k / 2 - 1] + values[k / 2]) / 2.0 };
        points.push((step as f64, median));
        band.push((step as f64, values[0], values[k - 1]));
    }
    (points, band)
}

/// "seed 1" or "seeds 1, 2, 3" for the distinct seeds of `runs`.
fn seeds(runs: &[&StoredRun]) -> String {
    let seeds: std::collections::BTreeSet<u64> = runs.iter().map(|r| r.seed).collect();
    let list: Vec<String> = seeds.iter().map(u64::to_string).collect();
    format!("seed{} {}", if list.len() == 1 { "" } else { "s" }, list.join(", "))
}

/// "N steps" for the configured steps of `runs` ("N–M steps" when they differ).
fn steps(runs: &[&StoredRun]) -> String {
    let lo = runs.iter().map(|r| r.record.config.steps).min().unwrap_or(0);
    let hi = runs.iter().map(|r| r.record.config.steps).max().unwrap_or(0);
    if lo == hi { format!("{lo} steps") } else { format!("{lo}–{hi} steps") }
}

/// "depth D, width W" of a key.
fn model(key: &Key) -> String {
    format!("depth {}, width {}", key.depth, key.width)
}

// ---------------------------------------------------------------- axes

/// A numeric axis, linear or logarithmic, with its own tick positions and labels (so
/// widths, depths and categories show exactly where they are).
#[derive(Clone, Debug)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    ticks: Vec<(f64, String)>,
}

impl Axis {
    /// An axis over `lo..hi` with automatic ticks.
    fn new(lo: f64, hi: f64, log: bool) -> Axis {
        let ticks = if log { log_ticks(lo, hi) } else { linear_ticks(lo, hi) };
        // powers of ten as 10ⁿ only when every tick is one (else 0.05 would sit beside 10⁻¹)
        // and on a linear axis as many decimals as the step needs (0.9995, 1.0000, 1.0005)
        let powers = log && ticks.iter().all(|&v| power_of_ten(v).is_some());
        let step = ticks.windows(2).map(|w| w[1] - w[0]).fold(f64::INFINITY, f64::min);
        let label = |v: f64| match power_of_ten(v) {
            Some(e) if powers && !(0..=2).contains(&e) => format!("10{}", superscript(e)),
            _ if !log && step.is_finite() => {
                format!("{:.*}", (-step.log10().floor()).max(0.0) as usize, v).replace('-', "−")
            }
            _ => number(v),
        };
        Axis { lo, hi, log, ticks: ticks.into_iter().map(|v| (v, label(v))).collect() }
    }

    /// An axis that holds every finite value of `values` (positive ones when `log`), with a
    /// small margin, and automatic ticks.
    fn fit(values: impl IntoIterator<Item = f64>, log: bool) -> Axis {
        let (lo, hi) = values
            .into_iter()
            .filter(|v| v.is_finite() && (!log || *v > 0.0))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if !lo.is_finite() {
            return if log { Axis::new(1e-3, 1.0, true) } else { Axis::new(0.0, 1.0, false) };
        }
        if log {
            let pad = (hi / lo).powf(0.06).max(1.25);
            Axis::new(lo / pad, hi * pad, true)
        } else {
            let pad = if hi > lo { 0.06 * (hi - lo) } else { 0.5 * lo.abs().max(1.0) };
            Axis::new(lo - pad, hi + pad, false)
        }
    }

    /// Ticks at `values` labelled by `label`, on a range padded around them (by 0.4 on a
    /// linear axis, made for whole numbers such as depths; by a factor of 1.4 on a log axis).
    fn at(values: &[f64], log: bool, label: impl Fn(f64) -> String) -> Axis {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if log { (lo / 1.4, hi * 1.4) } else { (lo - 0.4, hi + 0.4) };
        Axis { lo, hi, log, ticks: values.iter().map(|&v| (v, label(v))).collect() }
    }

    /// `v` moved inside the axis range (a log axis cannot show values ≤ 0).
    fn clamp(&self, v: f64) -> f64 {
        let (lo, hi) = (self.lo.min(self.hi), self.lo.max(self.hi));
        if v.is_nan() { lo } else { v.clamp(lo, hi) }
    }

    /// The label of the tick at `v` (empty elsewhere).
    fn label(&self, v: f64) -> String {
        // absolute on a linear axis; relative on a log axis, whose ticks span decades
        let tol = if self.log { 0.0 } else { 1e-9 * (self.hi - self.lo).abs().max(1e-300) };
        self.ticks
            .iter()
            .find(|(t, _)| (t - v).abs() <= tol.max(1e-9 * t.abs()))
            .map(|(_, l)| l.clone())
            .unwrap_or_default()
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let t = if self.log {
            (v.max(1e-300).ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        limit.0 + (t.clamp(-2.0, 3.0) * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() { Vec::new() } else { self.ticks.iter().map(|t| t.0).collect() }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// Round ticks (1, 2 or 5 × 10ᵏ apart), about six steps over `lo..hi`.
fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return Vec::new();
    }
    let raw = (hi - lo) / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    (first..)
        .map(|k| k as f64 * step)
        .take_while(|v| *v <= hi + 1e-9 * step)
        .map(|v| if v.abs() < 1e-12 * step { 0.0 } else { v })
        .collect()
}

/// Powers of ten inside `lo..hi` (at most about nine of them, every k-th over many decades); 2× and 5×
/// multiples as well when fewer than two powers fit; round linear ticks inside one decade.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if lo.is_nan() || lo <= 0.0 {
        return linear_ticks(lo, hi);
    }
    let (a, b) = (lo.log10().ceil() as i32, hi.log10().floor() as i32);
    let every = ((b - a) as u32).div_ceil(9).max(1) as i32;
    let mut ticks: Vec<f64> = (a..=b).filter(|e| (e - a) % every == 0).map(|e| 10f64.powi(e)).collect();
    if ticks.len() < 2 {
        ticks = (a - 1..=b)
            .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
            .filter(|v| (lo..=hi).contains(v))
            .collect();
    }
    if ticks.len() < 2 { linear_ticks(lo, hi).into_iter().filter(|v| *v > 0.0).collect() } else { ticks }
}

/// The exponent of `v` when it is a power of ten.
fn power_of_ten(v: f64) -> Option<i32> {
    let e = v.log10().round();
    (v > 0.0 && (v / 10f64.powf(e) - 1.0).abs() < 1e-9).then_some(e as i32)
}

/// `v` with at most three significant digits, without trailing zeros (`×10ⁿ` when very
/// small or large), with a true minus sign.
fn number(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let e = v.abs().log10().floor() as i32;
    if !(-3..5).contains(&e) {
        let m = v / 10f64.powi(e);
        return format!("{}×10{}", number(m), superscript(e));
    }
    let text = format!("{:.*}", (2 - e).max(0) as usize, v).replace('-', "−");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text }
}

/// An integer in superscript digits.
fn superscript(e: i32) -> String {
    let digits = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let body: String = e.unsigned_abs().to_string().chars().map(|c| digits[c as usize - '0' as usize]).collect();
    if e < 0 { format!("⁻{body}") } else { body }
}

// ---------------------------------------------------------------- frames, charts, legends

/// A legend key: a line (optionally dashed, optionally with a marker) or a filled box.
#[derive(Clone, Debug)]
enum Mark {
    Line { colour: RGBColor, dashed: bool, marker: bool },
    Fill { fill: RGBAColor, border: bool },
}

/// One legend entry.
#[derive(Clone, Debug)]
struct Entry {
    label: String,
    mark: Mark,
}

impl Entry {
    /// A family's entry: its colour, a solid line (with a marker when `marker`).
    fn family(label: &str, marker: bool) -> Entry {
        Entry { label: label.into(), mark: Mark::Line { colour: colour(label), dashed: false, marker } }
    }

    /// A dashed black reference line (floor, target).
    fn dashed(label: &str) -> Entry {
        Entry { label: label.into(), mark: Mark::Line { colour: BLACK, dashed: true, marker: false } }
    }
}

/// Length of a legend key, in pixels.
const SWATCH: i32 = 56;

/// Rows of legend entries that fit in `width` pixels, as (entry, x offset) per row with the
/// row's total width.
fn legend_rows<'e, DB: DrawingBackend>(
    area: &Area<DB>,
    entries: &'e [Entry],
    width: i32,
) -> Vec<(Vec<(&'e Entry, i32)>, i32)> {
    let mut rows: Vec<(Vec<(&Entry, i32)>, i32)> = Vec::new();
    for e in entries {
        let text =
            area.estimate_text_size(&e.label, &font(LEGEND)).map(|s| s.0 as i32).unwrap_or(12 * e.label.len() as i32);
        let w = SWATCH + 12 + text;
        match rows.last_mut() {
            Some((row, used)) if *used + 40 + w <= width => {
                row.push((e, *used + 40));
                *used += 40 + w;
            }
            _ => rows.push((vec![(e, 0)], w)),
        }
    }
    rows
}

/// Draws one legend key with its left end at (x, y).
fn draw_mark<DB: DrawingBackend>(area: &Area<DB>, mark: &Mark, x: i32, y: i32) -> Drawn {
    match *mark {
        Mark::Line { colour, dashed, marker } => {
            let style = colour.stroke_width(STROKE);
            let ends = [(x, y), (x + SWATCH, y)];
            if dashed {
                area.draw(&DashedPathElement::new(ends, 10, 7, style))?;
            } else {
                area.draw(&PathElement::new(ends, style))?;
            }
            if marker {
                draw_marker(area, (x + SWATCH / 2, y), colour)?;
            }
        }
        Mark::Fill { fill, border } => {
            area.draw(&Rectangle::new([(x + 8, y - 11), (x + SWATCH - 8, y + 11)], fill.filled()))?;
            if border {
                area.draw(&Rectangle::new([(x + 8, y - 11), (x + SWATCH - 8, y + 11)], BLACK.stroke_width(2)))?;
            }
        }
    }
    Ok(())
}

/// Height of the legend band of `entries` on `root`.
fn legend_height<DB: DrawingBackend>(root: &Area<DB>, entries: &[Entry]) -> u32 {
    if entries.is_empty() {
        return 0;
    }
    let width = root.dim_in_pixel().0 as i32 - 60;
    legend_rows(root, entries, width).len() as u32 * 40 + 24
}

/// Draws `entries` centred in `area`, wrapping into rows.
fn draw_legend<DB: DrawingBackend>(area: &Area<DB>, entries: &[Entry]) -> Drawn {
    let (w, _) = area.dim_in_pixel();
    for (r, (row, used)) in legend_rows(area, entries, w as i32 - 60).into_iter().enumerate() {
        let (x0, y) = ((w as i32 - used) / 2, 24 + 40 * r as i32);
        for (e, dx) in row {
            draw_mark(area, &e.mark, x0 + dx, y)?;
            let style = font(LEGEND).pos(Pos::new(HPos::Left, VPos::Center));
            area.draw(&Text::new(e.label.clone(), (x0 + dx + SWATCH + 12, y), style))?;
        }
    }
    Ok(())
}

/// Clears `root`, writes `title` on top and `legend` at the bottom, and returns the
/// remaining space split into `rows × cols` panels, row by row.
fn frame<DB: DrawingBackend>(
    root: &Area<DB>,
    title: &str,
    legend: &[Entry],
    (rows, cols): (usize, usize),
) -> std::result::Result<Vec<Area<DB>>, PlotError> {
    root.fill(&WHITE)?;
    let body = root.margin(12, 0, 0, 0).titled(title, font(TITLE))?;
    let h = body.dim_in_pixel().1;
    let (panels, bottom) = body.split_vertically(h - legend_height(root, legend));
    draw_legend(&bottom, legend)?;
    Ok(panels.margin(0, 0, 8, 16).split_evenly((rows, cols)))
}

/// A chart on `area` with its caption, frame, grid lines at the ticks, tick labels and axis
/// descriptions drawn (empty strings for none). The label areas fit the tick labels and
/// always keep room for a description, so that panels side by side line up.
fn chart<'a, DB: DrawingBackend>(
    area: &'a Area<DB>,
    caption: &str,
    (x, y): (&Axis, &Axis),
    (x_desc, y_desc): (&str, &str),
) -> std::result::Result<ChartContext<'a, DB, Cartesian2d<Axis, Axis>>, PlotError> {
    let widest = y.ticks.iter().map(|t| area.estimate_text_size(&t.1, &font(TICK)).map_or(0, |s| s.0)).max();
    let mut builder = ChartBuilder::on(area);
    if !caption.is_empty() {
        builder.caption(caption, font(CAPTION));
    }
    let mut chart = builder
        .margin(10)
        .margin_right(24)
        .x_label_area_size((TICK + AXIS) as u32 + 26)
        .y_label_area_size(widest.unwrap_or(0) + AXIS as u32 + 36)
        .build_cartesian_2d(x.clone(), y.clone())?;
    let (fx, fy) = (|v: &f64| x.label(*v), |v: &f64| y.label(*v));
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .label_style(font(TICK))
        .axis_desc_style(font(AXIS))
        .bold_line_style(RGBColor(225, 225, 225))
        .axis_style(BLACK.stroke_width(2))
        .set_all_tick_mark_size(8)
        .draw()?;
    Ok(chart)
}

// ---------------------------------------------------------------- line panels

/// One line of a panel: points, an optional shaded band (x, low, high) around it, in one
/// colour, solid or dashed, with or without markers.
#[derive(Clone, Debug)]
struct Series {
    colour: RGBColor,
    dashed: bool,
    markers: bool,
    points: Vec<(f64, f64)>,
    band: Vec<(f64, f64, f64)>,
}

impl Series {
    /// A family's line with markers.
    fn family(label: &str, points: Vec<(f64, f64)>, band: Vec<(f64, f64, f64)>) -> Series {
        Series { colour: colour(label), dashed: false, markers: true, points, band }
    }

    /// A dashed black reference line through `points`.
    fn reference(points: Vec<(f64, f64)>) -> Series {
        Series { colour: BLACK, dashed: true, markers: false, points, band: Vec::new() }
    }

    /// Every y value it shows (points and band ends).
    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.points.iter().map(|p| p.1).chain(self.band.iter().flat_map(|b| [b.1, b.2]))
    }
}

/// A panel of lines: caption, axes and their descriptions, series.
#[derive(Clone, Debug)]
struct Panel {
    caption: String,
    x: Axis,
    y: Axis,
    x_desc: String,
    y_desc: String,
    series: Vec<Series>,
}

/// Draws a confidence interval lo..hi at x as a vertical line with end caps (nothing when
/// the interval has no width).
fn whisker<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<Axis, Axis>>,
    x: f64,
    (lo, hi): (f64, f64),
    colour: RGBColor,
) -> Drawn {
    if lo.is_nan() || hi.is_nan() || hi <= lo {
        return Ok(());
    }
    let style = colour.stroke_width(2);
    chart.draw_series(std::iter::once(PathElement::new(vec![(x, lo), (x, hi)], style)))?;
    let cap = |y| EmptyElement::at((x, y)) + PathElement::new(vec![(-9, 0), (9, 0)], style);
    chart.draw_series([cap(lo), cap(hi)])?;
    Ok(())
}

/// Draws a line panel on `area`: bands first, then lines, then markers.
fn draw_panel<DB: DrawingBackend>(area: &Area<DB>, p: &Panel) -> Drawn {
    let mut chart = chart(area, &p.caption, (&p.x, &p.y), (&p.x_desc, &p.y_desc))?;
    let y = |v: f64| p.y.clamp(v);
    for s in p.series.iter().filter(|s| !s.band.is_empty()) {
        let fill = s.colour.mix(0.18).filled();
        if let [(x, lo, hi)] = s.band[..] {
            whisker(&mut chart, x, (y(lo), y(hi)), s.colour)?;
        } else {
            let outline = s.band.iter().map(|b| (b.0, y(b.1))).chain(s.band.iter().rev().map(|b| (b.0, y(b.2))));
            chart.draw_series(std::iter::once(Polygon::new(outline.collect::<Vec<_>>(), fill)))?;
        }
    }
    for s in &p.series {
        let points: Vec<(f64, f64)> = s.points.iter().map(|&(x, v)| (x, y(v))).collect();
        let style = s.colour.stroke_width(STROKE);
        if s.dashed {
            chart.draw_series(DashedLineSeries::new(points.clone(), 12, 8, style))?;
        } else {
            chart.draw_series(LineSeries::new(points.clone(), style))?;
        }
        if s.markers {
            for pt in points {
                draw_marker(chart.plotting_area(), pt, s.colour)?;
            }
        }
    }
    Ok(())
}

/// A figure of line panels on a grid, with a title and a legend band.
struct Panels {
    title: String,
    rows: usize,
    cols: usize,
    panels: Vec<Option<Panel>>,
    legend: Vec<Entry>,
    height_per_row: u32,
}

impl Draw for Panels {
    fn size(&self) -> (u32, u32) {
        (width_for(self.cols), self.height_per_row * self.rows as u32 + 200)
    }

    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> Drawn {
        let areas = frame(root, &self.title, &self.legend, (self.rows, self.cols))?;
        for (i, (area, panel)) in areas.iter().zip(&self.panels).enumerate() {
            if let Some(panel) = panel {
                // axis descriptions once per figure row (y) and column (x)
                let (first_col, last_row) = (i % self.cols == 0, i / self.cols + 1 == self.rows);
                let x_desc = if last_row { panel.x_desc.clone() } else { String::new() };
                let y_desc = if first_col { panel.y_desc.clone() } else { String::new() };
                draw_panel(area, &Panel { x_desc, y_desc, ..panel.clone() })?;
            }
        }
        Ok(())
    }
}

/// The legend of a line figure: each family shown (with markers when `markers`), then the
/// dashed reference lines.
fn legend(families: &[String], markers: bool, references: &[&str]) -> Vec<Entry> {
    families.iter().map(|f| Entry::family(f, markers)).chain(references.iter().map(|r| Entry::dashed(r))).collect()
}
