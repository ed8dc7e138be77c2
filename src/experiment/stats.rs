//! Statistics over seeds: mean, standard deviation and 95% Student-t confidence interval
//! per grid point; Welch's t-test of each URPE family against its base family; and the
//! certified check that no barrier-bound model beats its floor on constant inputs.

use super::settings;
use super::store::StoredRun;
use crate::config::ModelLabel;
use crate::run::{Metrics, Outcome, SetMetrics};
use crate::theory::{Floor, TargetKind};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};
use std::collections::BTreeMap;

/// Relative slack of the certified check: f32 evaluation rounds equal rows to within about
/// 1e-6, so a barrier-bound model may read up to 1e-4 (relative) below its exact floor.
pub const CERTIFY_SLACK: f64 = 1e-4;

/// Relative slack of the certified check for a run computed in reduced precision (tf32 or
/// bf16, whose unit roundoff is up to 2⁻⁸ ≈ 3.9e-3): its mean squared error and
/// cross-entropy may read up to 1e-2 (relative) below the floor. Its accuracy, an argmax
/// that a near-tie flips under any rounding, is not certified.
pub const REDUCED_PRECISION_SLACK: f64 = 1e-2;

/// Mean and spread of one quantity over seeds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MeanCi {
    /// Sample mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one seed).
    pub sd: f64,
    /// 95% Student-t interval, mean ± t₀.₉₇₅,ₖ₋₁·sd/√k (the mean itself for one seed).
    pub lo: f64,
    /// Upper end of the interval.
    pub hi: f64,
    /// Seeds.
    pub k: usize,
}

/// Mean, standard deviation and 95% Student-t confidence interval of `values`.
pub fn mean_ci(values: &[f64]) -> MeanCi {
    let k = values.len();
    let mean = values.iter().sum::<f64>() / k as f64;
    if k < 2 {
        return MeanCi { mean, sd: 0.0, lo: mean, hi: mean, k };
    }
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1) as f64).sqrt();
    let t = StudentsT::new(0.0, 1.0, (k - 1) as f64).expect("k ≥ 2").inverse_cdf(0.975);
    let half = t * sd / (k as f64).sqrt();
    MeanCi { mean, sd, lo: mean - half, hi: mean + half, k }
}

/// Welch's unequal-variance t-test of two samples.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Welch {
    /// t statistic of mean(a) − mean(b).
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// Welch's test of `a` against `b`; `None` with fewer than 2 values in either or no spread.
pub fn welch(a: &[f64], b: &[f64]) -> Option<Welch> {
    let (sa, sb) = (mean_ci(a), mean_ci(b));
    if sa.k < 2 || sb.k < 2 {
        return None;
    }
    let (va, vb) = (sa.sd.powi(2) / sa.k as f64, sb.sd.powi(2) / sb.k as f64);
    if va + vb == 0.0 {
        return None;
    }
    let t = (sa.mean - sb.mean) / (va + vb).sqrt();
    let df = (va + vb).powi(2) / (va.powi(2) / (sa.k - 1) as f64 + vb.powi(2) / (sb.k - 1) as f64);
    let p = 2.0 * (1.0 - StudentsT::new(0.0, 1.0, df).ok()?.cdf(t.abs()));
    Some(Welch { t, df, p })
}

/// A grid point: target (with n), family label, depth, width, heads, and the protocol
/// (every other setting but the seeds, [`settings::protocol`]): runs pool as seeds only
/// within one key, never across settings.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Key {
    /// Target.
    pub target: TargetKind,
    /// Sequence length.
    pub n: usize,
    /// Family label as the experiment wrote it.
    pub family: String,
    /// Depth.
    pub depth: usize,
    /// Width.
    pub width: usize,
    /// Heads.
    pub heads: usize,
    /// Fingerprint of every other setting except the seeds.
    pub protocol: String,
}

impl Key {
    /// The grid point of a stored run.
    pub fn of(run: &StoredRun) -> Key {
        let c = &run.record.config;
        Key {
            target: c.target,
            n: c.n,
            family: run.family.clone(),
            depth: c.model.depth,
            width: c.model.width,
            heads: c.model.heads,
            protocol: settings::protocol(c),
        }
    }
}

/// A task: one target at one sequence length, the unit by which the report and the figures
/// group grid points. Runs of one target at two lengths have different floors and are two
/// tasks, never pooled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Task {
    /// Target.
    pub target: TargetKind,
    /// Sequence length.
    pub n: usize,
}

impl Task {
    /// The task of a grid point.
    pub fn of(key: &Key) -> Task {
        Task { target: key.target, n: key.n }
    }

    /// The task of a stored run.
    pub fn of_run(run: &StoredRun) -> Task {
        Task { target: run.record.config.target, n: run.record.config.n }
    }

    /// True when the grid point `key` belongs to this task.
    pub fn holds(self, key: &Key) -> bool {
        Task::of(key) == self
    }

    /// True when the stored run `run` belongs to this task.
    pub fn holds_run(self, run: &StoredRun) -> bool {
        Task::of_run(run) == self
    }

    /// The task's name among the tasks `all` of one store: the target alone
    /// (`position-shift`) when no other task of `all` has its target, else the target with
    /// its length, as [`Display`](std::fmt::Display) writes it.
    pub fn name_among(self, all: &[Task]) -> String {
        if all.iter().any(|t| t.target == self.target && t.n != self.n) {
            self.to_string()
        } else {
            self.target.to_string()
        }
    }
}

impl std::fmt::Display for Task {
    /// `position-shift (n = 12)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (n = {})", self.target, self.n)
    }
}

/// The tasks of `cells`, each once, in catalogue order of their targets
/// ([`TargetKind::ALL`]), then by sequence length.
pub fn tasks(cells: &[Cell]) -> Vec<Task> {
    let mut tasks: Vec<Task> = cells.iter().map(|c| Task::of(&c.key)).collect();
    tasks.sort_by_key(|t| (TargetKind::ALL.iter().position(|k| *k == t.target), t.n));
    tasks.dedup();
    tasks
}

/// The headline quantity of a set: mean squared error (real targets) or accuracy (classes).
pub fn headline(m: &SetMetrics) -> f64 {
    match m {
        SetMetrics::Real { mse } => *mse,
        SetMetrics::Classes { accuracy, .. } => *accuracy,
    }
}

/// Statistics of one grid point over its seeds (diverged runs excluded and counted).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cell {
    /// The grid point.
    pub key: Key,
    /// The target's floor on constant inputs.
    pub floor: Floor,
    /// True when the family is bound by the barrier (Proposition 1).
    pub barrier_bound: bool,
    /// Why, by the theory ([`crate::config::ModelConfig::barrier_verdict`]), in one line.
    pub theory_reason: String,
    /// The reduced precision (tf32 or bf16) some run of the cell computed in, if any: its
    /// constant-input accuracy is then not certified.
    pub reduced_precision: Option<String>,
    /// Headline on constant inputs.
    pub constant: MeanCi,
    /// Headline on general inputs.
    pub general: MeanCi,
    /// Per-seed constant-input values (for tests between families).
    pub constant_values: Vec<f64>,
    /// Runs that diverged.
    pub diverged: usize,
    /// Optimiser steps of each run (part of the protocol, equal within a cell).
    pub steps: usize,
}

/// One cell per grid point, sorted by key.
pub fn cells(runs: &[StoredRun]) -> Vec<Cell> {
    let mut groups: BTreeMap<Key, Vec<&StoredRun>> = BTreeMap::new();
    for run in runs {
        groups.entry(Key::of(run)).or_default().push(run);
    }
    groups
        .into_iter()
        .map(|(key, runs)| {
            let ok: Vec<&Metrics> = runs.iter().filter_map(|r| r.record.metrics.as_ref()).collect();
            let constant_values: Vec<f64> = ok.iter().map(|m| headline(&m.constant)).collect();
            let general: Vec<f64> = ok.iter().map(|m| headline(&m.general)).collect();
            Cell {
                floor: runs[0].record.floor,
                barrier_bound: runs[0].record.config.model.barrier_bound(),
                theory_reason: runs[0].record.config.model.barrier_verdict().1,
                reduced_precision: runs.iter().find_map(|r| r.record.reduced_precision()).map(str::to_string),
                constant: mean_ci(&constant_values),
                general: mean_ci(&general),
                constant_values,
                diverged: runs.iter().filter(|r| r.record.outcome == Outcome::Diverged).count(),
                steps: runs[0].record.config.steps,
                key,
            }
        })
        .collect()
}

/// URPE against its base family at one grid point (constant inputs).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateComparison {
    /// The URPE grid point.
    pub key: Key,
    /// The base family's label.
    pub base: String,
    /// URPE's constant-input headline.
    pub urpe: MeanCi,
    /// The base family's.
    pub base_value: MeanCi,
    /// Welch's test (URPE − base).
    pub welch: Option<Welch>,
}

/// The base label of a gated variant's label (`urpe` → `t5`, `rope+urpe sigmoid` →
/// `rope sigmoid`).
pub fn base_family(label: &str) -> Option<String> {
    ModelLabel::parse(label).ok()?.base()
}

/// Welch's test of every URPE grid point against its base family's at the same point.
pub fn gate_comparisons(cells: &[Cell]) -> Vec<GateComparison> {
    cells
        .iter()
        .filter_map(|c| {
            let base = base_family(&c.key.family)?;
            let b = cells.iter().find(|o| o.key == Key { family: base.clone(), ..c.key.clone() })?;
            Some(GateComparison {
                key: c.key.clone(),
                base,
                urpe: c.constant,
                base_value: b.constant,
                welch: welch(&c.constant_values, &b.constant_values),
            })
        })
        .collect()
}

/// A barrier-bound run that did better than its floor on constant inputs: a bug.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    /// The run.
    pub id: String,
    /// Its grid point.
    pub key: Key,
    /// What it measured (mse, accuracy or cross-entropy).
    pub quantity: &'static str,
    /// The value.
    pub value: f64,
    /// The bound it broke.
    pub bound: f64,
}

/// The certified check over every finished run of a barrier-bound family.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Certificate {
    /// Runs checked.
    pub checked: usize,
    /// Runs that broke their floor (should be none).
    pub violations: Vec<Violation>,
    /// Runs computed in reduced precision whose constant-input accuracy reads above the
    /// ceiling: not certified (see [`REDUCED_PRECISION_SLACK`]), reported, not a bug.
    pub uncertified: Vec<Violation>,
    /// Runs computed in reduced precision among those checked.
    pub reduced: usize,
}

/// Checks every barrier-bound run: constant-input mse ≥ floor, accuracy ≤ ceiling and
/// cross-entropy ≥ its floor, each with the relative slack [`CERTIFY_SLACK`]; a run computed
/// in reduced precision with [`REDUCED_PRECISION_SLACK`] and without its accuracy, which
/// goes to [`Certificate::uncertified`] when above the ceiling.
pub fn certify(runs: &[StoredRun]) -> Certificate {
    let mut cert = Certificate { checked: 0, violations: Vec::new(), uncertified: Vec::new(), reduced: 0 };
    for run in runs.iter().filter(|r| r.record.config.model.barrier_bound()) {
        let Some(m) = &run.record.metrics else { continue };
        cert.checked += 1;
        let reduced = run.record.reduced_precision().is_some();
        cert.reduced += usize::from(reduced);
        let slack = if reduced { REDUCED_PRECISION_SLACK } else { CERTIFY_SLACK };
        let violation = |quantity, value: f64, bound: f64| Violation {
            id: run.id.clone(),
            key: Key::of(run),
            quantity,
            value,
            bound,
        };
        match (&m.constant, run.record.floor) {
            (SetMetrics::Real { mse }, Floor::Mse { mse: floor }) if *mse < floor * (1.0 - slack) => {
                cert.violations.push(violation("mse", *mse, floor))
            }
            (
                SetMetrics::Classes { accuracy, cross_entropy, .. },
                Floor::Classes { accuracy: ceiling, cross_entropy: ce },
            ) => {
                if *accuracy > ceiling * (1.0 + CERTIFY_SLACK) {
                    let list = if reduced { &mut cert.uncertified } else { &mut cert.violations };
                    list.push(violation("accuracy", *accuracy, ceiling));
                }
                if *cross_entropy < ce * (1.0 - slack) {
                    cert.violations.push(violation("cross-entropy", *cross_entropy, ce));
                }
            }
            _ => {}
        }
    }
    cert
}

/// A set of runs that can be reported together, with what sets it apart from the others.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingGroup {
    /// The settings that differ between groups, with this group's values
    /// (`steps = 150, optim.lr = 0.003`); empty when the store is one group.
    pub label: String,
    /// The runs.
    pub runs: Vec<StoredRun>,
}

/// Splits runs into groups that can be reported together: one group when no grid point
/// holds runs of two protocols, else one group per protocol (in order of first
/// appearance), each labelled with the settings in which the groups differ.
pub fn setting_groups(runs: &[StoredRun]) -> Vec<SettingGroup> {
    let point = |r: &StoredRun| {
        let k = Key::of(r);
        (k.target, k.n, k.family, k.depth, k.width, k.heads)
    };
    let mut protocols_at: BTreeMap<_, std::collections::BTreeSet<String>> = BTreeMap::new();
    for r in runs {
        protocols_at.entry(point(r)).or_default().insert(settings::protocol(&r.record.config));
    }
    if protocols_at.values().all(|p| p.len() < 2) {
        return vec![SettingGroup { label: String::new(), runs: runs.to_vec() }];
    }
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, Vec<StoredRun>> = BTreeMap::new();
    for r in runs {
        let p = settings::protocol(&r.record.config);
        if !order.contains(&p) {
            order.push(p.clone());
        }
        groups.entry(p).or_default().push(r.clone());
    }
    let fields: Vec<Vec<(String, String)>> =
        order.iter().map(|p| settings::protocol_fields(&groups[p][0].record.config)).collect();
    let value = |f: &[(String, String)], name: &str| f.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let varying: Vec<String> = fields[0]
        .iter()
        .chain(fields.iter().flatten())
        .map(|(n, _)| n.clone())
        .filter(|n| fields.iter().any(|f| value(f, n) != value(&fields[0], n)))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    order
        .iter()
        .zip(&fields)
        .map(|(p, f)| SettingGroup {
            label: varying
                .iter()
                .map(|n| format!("{n} = {}", value(f, n).unwrap_or_else(|| "–".into())))
                .collect::<Vec<_>>()
                .join(", "),
            runs: groups.remove(p).expect("grouped"),
        })
        .collect()
}
