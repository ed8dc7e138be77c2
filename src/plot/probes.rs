//! Figures of the linear-algebra probes: positional rank per stage (σ/‖h‖ of the stacked
//! row-centred hidden states on constant inputs) for one trained model per family, and for
//! one analysed model its leading singular values per stage and its Toeplitz spectra.

use super::{
    Axis, Entry, Figure, Mark, Panel, Panels, Series, largest, legend, model, save, sits_at, slice, sort_families,
    task_name, tasks,
};
use crate::analysis::Analysis;
use crate::analysis::rank::{RANK_TOLERANCE, StageRank};
use crate::error::{Error, Result};
use crate::experiment::StoredRun;
use crate::experiment::stats::Cell;
use plotters::prelude::*;
use std::path::Path;

/// Relative singular values below this are drawn at it (a log axis cannot show 0; exact
/// equal rows give σ = 0).
const SHOWN_BELOW: f64 = 1e-18;

/// The stage axis: input, block 1 … L, (final norm), output.
fn stage_axis(stages: &[StageRank]) -> Axis {
    let names: Vec<String> = stages
        .iter()
        .map(|s| match s.stage.strip_prefix("block ") {
            Some(l) => l.to_string(),
            None if s.stage == "final norm" => "norm".into(),
            None => s.stage.clone(),
        })
        .collect();
    let at: Vec<f64> = (0..stages.len()).map(|i| i as f64).collect();
    Axis::at(&at, false, move |v| names.get(v.round() as usize).cloned().unwrap_or_default())
}

/// A dashed line at `level` across the stages.
fn tolerance(stages: usize, level: f64) -> Series {
    Series::reference(vec![(0.0, level), (stages.saturating_sub(1) as f64, level)])
}

/// σ_k/‖h‖ along the stages, floored at [`SHOWN_BELOW`].
fn along(stages: &[StageRank], k: usize) -> Vec<(f64, f64)> {
    stages
        .iter()
        .enumerate()
        .map(|(i, s)| (i as f64, s.singular.get(k).copied().unwrap_or(0.0).max(SHOWN_BELOW)))
        .collect()
}

const RANK_CAPTION: &str =
    "σ₁/‖h‖ below 10⁻¹⁸ (exactly equal rows) is drawn at 10⁻¹⁸; the dashed line is the rank tolerance 10⁻⁶.";

/// The positional-rank figure of a results store: per real task (target and n) at its
/// largest model, σ₁/‖h‖ per stage for the lowest-seed run of each family that stored its
/// rank probe.
pub(super) fn draw(runs: &[StoredRun], cells: &[Cell], dir: &Path) -> Result<Vec<Figure>> {
    let mut families = Vec::new();
    let mut shown: Vec<&StoredRun> = Vec::new();
    let panels: Vec<Panel> = tasks(cells, |t| !t.is_classification())
        .into_iter()
        .filter_map(|t| Some((largest(&slice(cells, t))?, task_name(cells, t))))
        .filter_map(|(key, name)| {
            let mut here: Vec<&StoredRun> =
                runs.iter().filter(|r| sits_at(r, &key) && !r.probe.rank.is_empty()).collect();
            here.sort_by_key(|r| r.seed);
            let mut labels: Vec<String> = here.iter().map(|r| r.family.clone()).collect();
            sort_families(&mut labels);
            let stages = &here.first()?.probe.rank;
            let mut series: Vec<Series> = labels
                .iter()
                .filter_map(|f| here.iter().find(|r| &r.family == f))
                .map(|r| {
                    shown.push(r);
                    Series::family(&r.family, along(&r.probe.rank, 0), Vec::new())
                })
                .collect();
            series.push(tolerance(stages.len(), RANK_TOLERANCE));
            families.extend(labels);
            let y = Axis::fit(series.iter().flat_map(|s| s.values()).chain([SHOWN_BELOW]), true);
            Some(Panel {
                caption: format!("{name}, {}", model(&key)),
                x: stage_axis(stages),
                y,
                x_desc: "stage (input, block, output)".into(),
                y_desc: "σ₁ / ‖h‖".into(),
                series,
            })
        })
        .collect();
    if panels.is_empty() {
        return Ok(Vec::new());
    }
    sort_families(&mut families);
    let caption = [
        "Largest singular value of the row-centred hidden states of 64 constant inputs, stacked, relative to their norm, at each stage of one trained model per family (lowest seed, largest model per real target; one run each, so no band).",
        &rank_reading(&shown),
    ];
    let fig = Panels {
        title: "Positional rank on constant inputs".into(),
        rows: 1,
        cols: panels.len(),
        panels: panels.into_iter().map(Some).collect(),
        legend: legend(&families, true, &["rank tolerance 10⁻⁶"]),
        height_per_row: 600,
    };
    let caption_line = format!("{} {RANK_CAPTION}", caption[1]);
    Ok(vec![save(dir, "positional_rank", "Positional rank on constant inputs", [caption[0], &caption_line], &fig)?])
}

/// What the runs' rank probes show: the largest σ₁/‖h‖ of an in-softmax family at any
/// stage (a bug above the tolerance), and for each other family the first stage above it.
pub(crate) fn rank_reading(runs: &[&StoredRun]) -> String {
    let sigma = |s: &StageRank| s.singular.first().copied().unwrap_or(0.0);
    let bound: Vec<&&StoredRun> = runs.iter().filter(|r| r.record.config.model.barrier_bound()).collect();
    let bound_max = bound.iter().flat_map(|r| r.probe.rank.iter().map(sigma)).fold(0.0, f64::max);
    let mut free: Vec<String> = runs
        .iter()
        .filter(|r| !r.record.config.model.barrier_bound())
        .map(|r| match r.probe.rank.iter().find(|s| sigma(s) > RANK_TOLERANCE) {
            Some(s) => format!("{} from stage {} on", r.family, s.stage),
            None => format!("{} at no stage", r.family),
        })
        .collect();
    free.sort();
    free.dedup();
    let mut text = String::new();
    if !bound.is_empty() {
        text.push_str(&format!(
            "In-softmax families: σ₁/‖h‖ ≤ {bound_max:.1e} at every stage{}. ",
            if bound_max > RANK_TOLERANCE {
                ", ABOVE the tolerance: a BUG in the engine"
            } else {
                " (positional rank 0: Proposition 1 holds inside the trained networks, not only at their outputs)"
            }
        ));
    }
    if !free.is_empty() {
        text.push_str(&format!("Above the tolerance: {}.", free.join("; ")));
    }
    text
}

/// A distinct colour for line k of a single-model figure.
fn pick(k: usize) -> RGBColor {
    let (r, g, b) = Palette99::pick(k).to_rgba().rgb();
    RGBColor(r, g, b)
}

/// A line of colour [`pick`]`(k)` with markers.
fn line(k: usize, points: Vec<(f64, f64)>) -> Series {
    Series { colour: pick(k), dashed: false, markers: true, points, band: Vec::new() }
}

/// A legend entry for [`line`]`(k)`.
fn entry(k: usize, label: String) -> Entry {
    Entry { label, mark: Mark::Line { colour: pick(k), dashed: false, marker: true } }
}

/// The figures of one analysed model into `dir`: `positional_rank` (σ₁, σ₂, σ₃ relative to
/// ‖h‖, and the positional energy, per stage) and, when the model has Toeplitz position
/// matrices, `toeplitz_spectra`.
pub fn draw_analysis(x: &Analysis, dir: &Path) -> Result<Vec<Figure>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, format!("cannot create the figures folder: {e}")))?;
    let kept = x.rank.iter().map(|s| s.singular.len()).max().unwrap_or(0).min(3);
    let mut series: Vec<Series> = (0..kept).map(|k| line(k, along(&x.rank, k))).collect();
    series.push(tolerance(x.rank.len(), RANK_TOLERANCE));
    let energy_floor = SHOWN_BELOW * SHOWN_BELOW;
    let energy = vec![
        line(kept, x.rank.iter().enumerate().map(|(i, s)| (i as f64, s.energy.max(energy_floor))).collect()),
        tolerance(x.rank.len(), RANK_TOLERANCE * RANK_TOLERANCE),
    ];
    let mut entries: Vec<Entry> = (0..kept).map(|k| entry(k, format!("σ{}/‖h‖", k + 1))).collect();
    entries.push(entry(kept, "energy Σσ²/‖h‖²".into()));
    entries.push(Entry::dashed("rank tolerance (10⁻⁶; squared for the energy)"));
    let title = format!("Positional rank of {} on constant inputs (n = {})", x.label, x.n);
    let panel = |caption: &str, series: Vec<Series>, floor: f64, y_desc: &str| Panel {
        caption: caption.into(),
        x: stage_axis(&x.rank),
        y: Axis::fit(series.iter().flat_map(|s| s.values()).chain([floor]), true),
        x_desc: "stage (input, block, output)".into(),
        y_desc: y_desc.into(),
        series,
    };
    let fig = Panels {
        title: title.clone(),
        rows: 1,
        cols: 2,
        panels: vec![
            Some(panel("leading singular values", series, SHOWN_BELOW, "σ_k / ‖h‖")),
            Some(panel("positional energy", energy, energy_floor, "‖P·H‖² / ‖H‖²")),
        ],
        legend: entries,
        height_per_row: 600,
    };
    let caption = [
        "Leading singular values (left) and the energy Σσ²/‖h‖² (right) of the row-centred hidden states of many constant inputs, stacked, relative to their norm, at each stage of the model.",
        "σ₁/‖h‖ below 10⁻¹⁸ (exactly equal rows) is drawn at 10⁻¹⁸ and the energy below 10⁻³⁶ at 10⁻³⁶; the dashed lines are the rank tolerance 10⁻⁶ and its square.",
    ];
    let mut figures = vec![save(dir, "positional_rank", &title, caption, &fig)?];
    /// Relative level at which the spectra's log axis stops.
    const SPECTRUM_FLOOR: f64 = 1e-12;
    let mut tensors: Vec<&str> = x.spectra.iter().map(|s| s.tensor.as_str()).collect();
    tensors.dedup();
    if !tensors.is_empty() {
        let heads = x.spectra.iter().map(|s| s.head).max().unwrap_or(1);
        let panels: Vec<Option<Panel>> = tensors
            .iter()
            .map(|t| {
                let of: Vec<_> = x.spectra.iter().filter(|s| s.tensor == *t).collect();
                // a log axis, so that one large σ₁ does not flatten the rest; values below
                // SPECTRUM_FLOOR·σ_max (zeros included) are drawn at that level
                let top = of.iter().flat_map(|s| s.singular.iter().copied()).fold(0.0, f64::max);
                let least = (top * SPECTRUM_FLOOR).max(f64::MIN_POSITIVE);
                let series: Vec<Series> = of
                    .iter()
                    .map(|s| {
                        let points = s.singular.iter().enumerate().map(|(k, &v)| (k as f64 + 1.0, v.max(least)));
                        line(s.head - 1, points.collect())
                    })
                    .collect();
                let role = of.first().map_or("", |s| s.role.as_str());
                Some(Panel {
                    caption: format!("{role}: {t}"),
                    x: Axis::new(0.5, x.n as f64 + 0.5, false),
                    y: Axis::fit(series.iter().flat_map(|s| s.values()), true),
                    x_desc: "k".into(),
                    y_desc: "σ_k".into(),
                    series,
                })
            })
            .collect();
        let title = format!("Singular values of the Toeplitz position matrices of {} (n = {})", x.label, x.n);
        let fig = Panels {
            title: title.clone(),
            rows: 1,
            cols: panels.len(),
            panels,
            legend: (0..heads).map(|h| entry(h, format!("head {}", h + 1))).collect(),
            height_per_row: 600,
        };
        let caption = [
            "Singular values of each head's n × n Toeplitz matrix: B is added to the scores inside the softmax, C multiplies the probabilities after it.",
            "Log axis; values below 1e-12·σ_max (zeros included) are drawn at that level. C = 11ᵀ (plain attention) has σ = (n, 0, …, 0); any other spectrum of C is position information the softmax alone cannot carry.",
        ];
        figures.push(save(dir, "toeplitz_spectra", &title, caption, &fig)?);
    }
    Ok(figures)
}
