//! Held-out token accuracy against training step: one panel per token task and input kind
//! (general inputs, the paper's metric; constant inputs, where the barrier's ceiling
//! applies), one line per family (median over seeds, min–max band), the ceiling of
//! in-softmax families dashed; the caption reads off when each family reaches 0.9 and
//! whether any in-softmax run passes its ceiling. Families whose stored curves carry no
//! held-out points (stores written before `eval.every` was set) are named as missing.

use super::{
    Axis, Entry, Figure, Mark, MedianBand, Panel, Panels, Series, colour, largest, median_band, model, save, seeds,
    sits_at, slice, sort_families, steps, task_name, tasks,
};
use crate::error::Result;
use crate::experiment::StoredRun;
use crate::experiment::stats::{CERTIFY_SLACK, Cell, Key, Task, headline};
use crate::run::Metrics;
use crate::theory::{Floor, TargetKind};
use plotters::style::{Color, RGBColor};
use std::collections::BTreeMap;
use std::path::Path;

/// Median general-input accuracy the caption's reading looks for.
const TARGET_ACCURACY: f64 = 0.9;

/// The two held-out sets, in panel order.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Inputs {
    General,
    Constant,
}

impl Inputs {
    /// The set's metrics of one evaluation.
    fn of(self, m: &Metrics) -> f64 {
        headline(match self {
            Inputs::General => &m.general,
            Inputs::Constant => &m.constant,
        })
    }

    /// Its name in panel captions.
    fn name(self) -> &'static str {
        match self {
            Inputs::General => "general inputs",
            Inputs::Constant => "constant inputs",
        }
    }
}

/// One family of a task: its finished runs at the task's grid point, and the median line
/// with its min–max band on each input kind (empty when no run stored held-out points).
struct Line<'a> {
    family: String,
    runs: Vec<&'a StoredRun>,
    general: MedianBand,
    constant: MedianBand,
}

impl Line<'_> {
    /// True when no run of the family stored a held-out point in its curve.
    fn missing(&self) -> bool {
        self.general.0.is_empty()
    }
}

/// The held-out curves of one token task (target and n) at its largest model, with the
/// task's name in captions.
struct TaskCurves<'a> {
    key: Key,
    name: String,
    ceiling: f64,
    lines: Vec<Line<'a>>,
}

/// True when the run's stored curve carries at least one held-out evaluation.
fn evaluated(run: &StoredRun) -> bool {
    run.record.curve.iter().any(|p| p.eval.is_some())
}

/// Median and min–max band over the evaluated runs of `runs`, on `inputs`.
fn over_seeds(runs: &[&StoredRun], inputs: Inputs) -> MedianBand {
    let mut at_step: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for r in runs.iter().filter(|r| evaluated(r)) {
        for (step, m) in r.record.evaluations() {
            let v = inputs.of(m);
            if v.is_finite() {
                at_step.entry(step).or_default().push(v);
            }
        }
    }
    median_band(at_step)
}

/// The curves of `task`: every family with finished runs at the largest model of its slice.
fn task_curves<'a>(runs: &'a [StoredRun], cells: &[Cell], task: Task) -> Option<TaskCurves<'a>> {
    let key = largest(&slice(cells, task))?;
    let here: Vec<&StoredRun> = runs.iter().filter(|r| sits_at(r, &key) && r.record.metrics.is_some()).collect();
    let ceiling = match here.first()?.record.floor {
        Floor::Classes { accuracy, .. } => accuracy,
        Floor::Mse { .. } => return None,
    };
    let mut families: Vec<String> = here.iter().map(|r| r.family.clone()).collect();
    sort_families(&mut families);
    let lines = families
        .into_iter()
        .map(|family| {
            let runs: Vec<&StoredRun> = here.iter().copied().filter(|r| r.family == family).collect();
            let general = over_seeds(&runs, Inputs::General);
            let constant = over_seeds(&runs, Inputs::Constant);
            Line { family, runs, general, constant }
        })
        .collect();
    Some(TaskCurves { key, name: task_name(cells, task), ceiling, lines })
}

/// Draws the accuracy-against-step figure when token tasks have finished runs.
pub(super) fn draw(runs: &[StoredRun], cells: &[Cell], dir: &Path) -> Result<Vec<Figure>> {
    let tasks: Vec<TaskCurves> =
        tasks(cells, TargetKind::is_classification).into_iter().filter_map(|t| task_curves(runs, cells, t)).collect();
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    let shown: Vec<&StoredRun> =
        tasks.iter().flat_map(|t| t.lines.iter().flat_map(|l| l.runs.iter().copied())).collect();
    let (seeds, steps) = (seeds(&shown), steps(&shown));
    let panels =
        tasks.iter().flat_map(|t| [Inputs::General, Inputs::Constant].map(|i| Some(panel(t, i)))).collect::<Vec<_>>();
    let mut families: Vec<String> = tasks.iter().flat_map(|t| t.lines.iter().map(|l| l.family.clone())).collect();
    sort_families(&mut families);
    let missing = |f: &String| tasks.iter().any(|t| t.lines.iter().any(|l| &l.family == f && l.missing()));
    let mut legend: Vec<Entry> = families
        .iter()
        .map(|f| {
            let label = if missing(f) { format!("{f} (no held-out points stored)") } else { f.clone() };
            Entry { label, mark: Mark::Line { colour: colour(f), dashed: false, marker: true } }
        })
        .collect();
    legend.push(Entry {
        label: if shown.iter().any(|r| r.seed != shown[0].seed) {
            format!("min–max over {seeds}")
        } else {
            format!("one seed ({seeds}): no band")
        },
        mark: Mark::Fill { fill: RGBColor(90, 90, 90).mix(0.18), border: false },
    });
    legend.push(Entry::dashed("accuracy ceiling of in-softmax families (constant inputs)"));
    let fig = Panels {
        title: "Held-out accuracy against step".into(),
        rows: tasks.len(),
        cols: 2,
        panels,
        legend,
        height_per_row: 520,
    };
    let what = format!(
        "Held-out accuracy against training step for each token task at its largest model ({}; {steps}, {seeds}): left, general inputs (uniform random tokens, the paper's metric); right, constant inputs (one token repeated, where the barrier applies); line: median over seeds, shaded: min–max over seeds; dashed: the accuracy ceiling of in-softmax families on constant inputs (1/n for position-id, 1/2 for even-token).",
        tasks
            .iter()
            .map(|t| format!("{} n = {}, {}", t.key.target, t.key.n, model(&t.key)))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let reading = reading(&tasks);
    Ok(vec![save(dir, "accuracy_vs_step", "Held-out accuracy against step", [&what, &reading], &fig)?])
}

/// The panel of one task on one input kind (the ceiling dashed on constant inputs).
fn panel(task: &TaskCurves, inputs: Inputs) -> Panel {
    let mut series: Vec<Series> = task
        .lines
        .iter()
        .filter(|l| !l.missing())
        .map(|l| {
            let (points, band) = if inputs == Inputs::General { &l.general } else { &l.constant };
            Series::family(&l.family, points.clone(), band.clone())
        })
        .collect();
    let last = task.lines.iter().flat_map(|l| l.runs.iter().map(|r| r.record.config.steps)).max().unwrap_or(1);
    let x = Axis::fit([0.0, last as f64], false);
    if inputs == Inputs::Constant {
        series.push(Series::reference(vec![(x.lo, task.ceiling), (x.hi, task.ceiling)]));
    }
    let none = task.lines.iter().all(Line::missing);
    Panel {
        caption: format!("{}, {}{}", task.name, inputs.name(), if none { ": missing" } else { "" }),
        x,
        y: Axis::new(0.0, 1.05, false),
        x_desc: "step".into(),
        y_desc: "held-out accuracy".into(),
        series,
    }
}

/// The caption's reading: per task and family, the first evaluated step at which the median
/// general-input accuracy reaches [`TARGET_ACCURACY`]; whether any in-softmax run passes
/// its ceiling on constant inputs at any evaluated step; the missing series.
fn reading(tasks: &[TaskCurves]) -> String {
    let mut parts = Vec::new();
    for t in tasks {
        let reached: Vec<String> = t
            .lines
            .iter()
            .map(|l| {
                let when = l.general.0.iter().find(|p| p.1 >= TARGET_ACCURACY).map(|p| p.0 as usize);
                let within = l.runs.iter().map(|r| r.record.config.steps).max().unwrap_or(0);
                match when {
                    _ if l.missing() => format!("{} missing (no held-out points stored)", l.family),
                    Some(step) => format!("{} at step {step}", l.family),
                    None => format!("{} never within {within} steps", l.family),
                }
            })
            .collect();
        parts.push(format!("{}: {}", t.name, reached.join(", ")));
    }
    let mut text =
        format!("Reading: median general-input accuracy first reaches {TARGET_ACCURACY} — {}.", parts.join("; "));
    let checks: Vec<String> = tasks.iter().filter_map(ceiling_check).collect();
    if checks.is_empty() {
        text.push_str(" No in-softmax family has held-out points on constant inputs to check against its ceiling.");
    } else {
        text.push(' ');
        text.push_str(&checks.join(" "));
    }
    text
}

/// Whether an in-softmax run of `task` passes its ceiling on constant inputs at any
/// evaluated step (`None` when no such run stored held-out points). Runs computed in
/// reduced precision are reported apart: their accuracy is not certified.
fn ceiling_check(task: &TaskCurves) -> Option<String> {
    let bound: Vec<&StoredRun> = task
        .lines
        .iter()
        .flat_map(|l| l.runs.iter().copied())
        .filter(|r| r.record.config.model.barrier_bound() && evaluated(r))
        .collect();
    let highest = |reduced: bool| {
        bound
            .iter()
            .filter(|r| r.record.reduced_precision().is_some() == reduced)
            .flat_map(|r| r.record.evaluations().into_iter().map(move |(s, m)| (*r, s, Inputs::Constant.of(m))))
            .max_by(|a, b| a.2.total_cmp(&b.2))
    };
    let (name, ceiling) = (&task.name, task.ceiling);
    let above = |best: f64| best > ceiling * (1.0 + CERTIFY_SLACK);
    let exact = highest(false).map(|(run, step, best)| {
        if above(best) {
            format!(
                "BUG: on {name} an in-softmax run exceeds the ceiling {ceiling:.4} on constant inputs ({} seed {} reaches {best:.4} at step {step}), which the barrier forbids.",
                run.family, run.seed
            )
        } else {
            format!(
                "On {name} no in-softmax run exceeds the ceiling {ceiling:.4} on constant inputs at any evaluated step (highest {best:.4})."
            )
        }
    });
    let reduced = highest(true).map(|(run, step, best)| {
        let precision = run.record.reduced_precision().unwrap_or_default();
        if above(best) {
            format!(
                "On {name} in {precision} (not certified: equal rows are equal only to rounding, and an argmax flips on near-ties), {} seed {} reads {best:.4} at step {step}, above the ceiling {ceiling:.4}.",
                run.family, run.seed
            )
        } else {
            format!("On {name} no in-softmax run in {precision} reads above the ceiling {ceiling:.4} (highest {best:.4}).")
        }
    });
    let parts: Vec<String> = exact.into_iter().chain(reduced).collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}
