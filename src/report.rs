//! REPORT.md: the setup, each figure with its reading, floor against measured error at
//! every size, the certified check, URPE against its base family, and the token tasks
//! beside the paper's numbers. Built from the results store alone.

use crate::config::Variant;
use crate::experiment::StoredRun;
use crate::experiment::stats::{self, Cell, Certificate, GateComparison, MeanCi, Task};
use crate::theory::{Floor, TargetKind};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// A figure as the report shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct FigureEntry {
    /// Title.
    pub title: String,
    /// Two lines: what it shows and how to read it.
    pub caption: String,
    /// Path of the PNG relative to the report.
    pub png: String,
    /// Path of the SVG relative to the report.
    pub svg: String,
}

/// What the report needs besides the runs.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportContext {
    /// Experiment name.
    pub experiment: String,
    /// Its description.
    pub description: String,
    /// The settings that set these runs apart from other runs of the same store (empty
    /// when the store is reported as one).
    pub settings: String,
    /// How the runs were produced and can be redrawn (commands).
    pub commands: Vec<String>,
    /// Wall time of the sweep in this invocation, if it ran.
    pub sweep_seconds: Option<f64>,
    /// Wall time of every logged sweep into the store (`sweeps.jsonl`), if any was logged.
    pub logged_seconds: Option<f64>,
    /// Sweep invocations logged.
    pub logged_sweeps: usize,
    /// Threads used.
    pub threads: usize,
}

/// The paper's accuracies (docs/theory.md §6, vocabulary 1000): (task, noPE, RPE, URPE).
pub const PAPER_ACCURACY: [(TargetKind, f64, f64, f64); 2] =
    [(TargetKind::PositionId, 0.056, 0.107, 1.00), (TargetKind::EvenToken, 0.50, 0.533, 1.00)];

fn pm(m: &MeanCi) -> String {
    if m.k < 2 { format!("{:.4}", m.mean) } else { format!("{:.4} ± {:.4}", m.mean, m.hi - m.mean) }
}

/// The variant labels present in `cells`, in the one order of [`Variant::order_key`].
fn families(cells: &[Cell]) -> Vec<String> {
    let mut present: Vec<String> = cells.iter().map(|c| c.key.family.clone()).collect();
    Variant::sort_labels(&mut present);
    present
}

/// The largest grid point (depth, then width) of a task.
fn largest(cells: &[Cell], task: Task) -> Option<(usize, usize)> {
    cells.iter().filter(|c| task.holds(&c.key)).map(|c| (c.key.depth, c.key.width)).max()
}

/// The tasks of `target` among `tasks`, by sequence length.
fn tasks_of(tasks: &[Task], target: TargetKind) -> impl Iterator<Item = Task> + '_ {
    tasks.iter().copied().filter(move |t| t.target == target)
}

fn floor_mse(floor: Floor) -> Option<f64> {
    match floor {
        Floor::Mse { mse } => Some(mse),
        Floor::Classes { .. } => None,
    }
}

/// Floor against measured constant-input error for every size of one real task, named
/// `name`.
fn error_table(out: &mut String, cells: &[Cell], task: Task, name: &str, fams: &[String]) {
    let rows: BTreeSet<(usize, usize)> =
        cells.iter().filter(|c| task.holds(&c.key)).map(|c| (c.key.depth, c.key.width)).collect();
    let Some(floor) = cells.iter().find(|c| task.holds(&c.key)).and_then(|c| floor_mse(c.floor)) else { return };
    let _ = writeln!(
        out,
        "\n**{name}** — floor {floor:.6} (mean squared error on constant inputs; cells: mean ± 95% CI half-width over seeds; ✗ marks a barrier-bound cell below the floor)\n"
    );
    let _ = writeln!(out, "| depth | width | {} |", fams.join(" | "));
    let _ = writeln!(out, "|---|---|{}", "---|".repeat(fams.len()));
    for (depth, width) in rows {
        let mut line = format!("| {depth} | {width} |");
        for f in fams {
            let cell = cells
                .iter()
                .find(|c| task.holds(&c.key) && &c.key.family == f && c.key.depth == depth && c.key.width == width);
            let text = match cell {
                Some(c) => {
                    let below = c.barrier_bound && c.constant.mean < floor * (1.0 - stats::CERTIFY_SLACK);
                    format!(" {}{} |", pm(&c.constant), if below { " ✗" } else { "" })
                }
                None => " – |".to_string(),
            };
            line.push_str(&text);
        }
        let _ = writeln!(out, "{line}");
    }
}

/// ", and 1e-2 for the N runs in tf32 or bf16, whose accuracy is not certified" where any.
fn reduced_note(cert: &Certificate) -> String {
    match cert.reduced {
        0 => String::new(),
        k => format!(
            "; {:e} for the {k} run(s) computed in tf32 or bf16, whose accuracy, an argmax, is not certified",
            stats::REDUCED_PRECISION_SLACK
        ),
    }
}

/// One run that broke (or, in reduced precision, read above) its bound; its task named among
/// `tasks`.
fn violation_line(v: &stats::Violation, tasks: &[Task]) -> String {
    let excess =
        if v.quantity == "accuracy" { format!(" ({:+.2e} relative)", v.value / v.bound - 1.0) } else { String::new() };
    format!(
        "run {} ({} {} depth {} width {}): {} = {} vs bound {}{excess}",
        v.id,
        Task::of(&v.key).name_among(tasks),
        v.key.family,
        v.key.depth,
        v.key.width,
        v.quantity,
        v.value,
        v.bound
    )
}

/// The certified check's outcome, then per real task with a floor (position-shift,
/// prefix-sum, position-scale; each length apart) which families go below floor/10 at its
/// largest size.
fn verdict(out: &mut String, cells: &[Cell], cert: &Certificate) {
    let tasks = stats::tasks(cells);
    let _ = writeln!(out, "\n## Verdict\n");
    if cert.checked == 0 {
        let _ = writeln!(
            out,
            "No finished run of a barrier-bound family in this store: nothing for the certified check to check."
        );
    } else if cert.violations.is_empty() {
        let _ = writeln!(
            out,
            "**Certified check passed**: all {} finished runs of barrier-bound families are at or above their floor on constant inputs (mean squared error ≥ floor, accuracy ≤ ceiling, cross-entropy ≥ its floor; relative slack {:e} for f32 rounding{}).",
            cert.checked,
            stats::CERTIFY_SLACK,
            reduced_note(cert)
        );
    } else {
        let _ = writeln!(
            out,
            "**BUG: the certified check FAILED** — {} of {} barrier-bound runs beat their floor, which Proposition 1 forbids:\n",
            cert.violations.len(),
            cert.checked
        );
        for v in &cert.violations {
            let _ = writeln!(out, "- {}", violation_line(v, &tasks));
        }
    }
    if !cert.uncertified.is_empty() {
        let _ = writeln!(
            out,
            "\nNot certified (reduced precision): {} run(s) computed in tf32 or bf16 read above the accuracy ceiling on constant inputs. The barrier is exact arithmetic; in reduced precision equal rows are equal only to rounding, and an accuracy is an argmax that a near-tie flips, so these readings are reported, not certified (their cross-entropy is checked above):\n",
            cert.uncertified.len()
        );
        for v in &cert.uncertified {
            let _ = writeln!(out, "- {}", violation_line(v, &tasks));
        }
    }
    let real = [TargetKind::PositionShift, TargetKind::PrefixSum, TargetKind::PositionScale];
    for task in real.into_iter().flat_map(|t| tasks_of(&tasks, t)) {
        let Some((depth, width)) = largest(cells, task) else { continue };
        let Some(floor) = cells.iter().find(|c| task.holds(&c.key)).and_then(|c| floor_mse(c.floor)) else {
            continue;
        };
        let at: Vec<&Cell> =
            cells.iter().filter(|c| task.holds(&c.key) && c.key.depth == depth && c.key.width == width).collect();
        let below: Vec<String> = at
            .iter()
            .filter(|c| c.constant.mean < floor / 10.0)
            .map(|c| format!("{} ({:.2e})", c.key.family, c.constant.mean))
            .collect();
        let above: Vec<String> = at
            .iter()
            .filter(|c| c.constant.mean >= floor / 10.0)
            .map(|c| format!("{} ({:.2e})", c.key.family, c.constant.mean))
            .collect();
        let _ = writeln!(
            out,
            "\n{}, largest size (depth {depth}, width {width}), floor/10 = {:.2e}: below floor/10: {}; not below: {}.",
            task.name_among(&tasks),
            floor / 10.0,
            if below.is_empty() { "none".into() } else { below.join(", ") },
            if above.is_empty() { "none".into() } else { above.join(", ") }
        );
    }
}

/// URPE against its base family at every grid point, each task named among `tasks`.
fn gate_section(out: &mut String, comparisons: &[GateComparison], tasks: &[Task]) {
    if comparisons.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n## URPE against its base family (Welch's t-test, constant inputs: mean squared error for real targets, accuracy for token targets)\n"
    );
    // better: a lower error, or a higher accuracy
    let better = |c: &&GateComparison| {
        c.welch.is_some_and(|w| w.p < 0.05 && if c.key.target.is_classification() { w.t > 0.0 } else { w.t < 0.0 })
    };
    let significant = comparisons.iter().filter(better).count();
    let untested = comparisons.iter().filter(|c| c.welch.is_none()).count();
    let _ = writeln!(
        out,
        "At {significant} of {} grid points URPE does better than its base family on constant inputs (lower error, or higher accuracy) with p < 0.05{}.\n",
        comparisons.len(),
        if untested > 0 {
            format!("; {untested} have no test (no spread over the seeds in either family, or a single seed)")
        } else {
            String::new()
        }
    );
    let _ = writeln!(out, "| target | depth | width | URPE | base | t | df | p |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for c in comparisons {
        let (t, df, p) = c.welch.map_or(("–".into(), "–".into(), "–".into()), |w| {
            (format!("{:.1}", w.t), format!("{:.1}", w.df), format!("{:.1e}", w.p))
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} {} | {t} | {df} | {p} |",
            Task::of(&c.key).name_among(tasks),
            c.key.depth,
            c.key.width,
            pm(&c.urpe),
            c.base,
            pm(&c.base_value)
        );
    }
}

/// The token tasks' accuracies beside the paper's, one block of rows per task (target and n).
fn token_section(out: &mut String, cells: &[Cell], fams: &[String]) {
    let all = stats::tasks(cells);
    let tasks: Vec<Task> = PAPER_ACCURACY.iter().flat_map(|p| tasks_of(&all, p.0)).collect();
    if tasks.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n## Token tasks\n");
    let _ = writeln!(
        out,
        "Accuracy on general inputs (uniform random tokens: the paper's metric) and on constant inputs (every token the same: the barrier's), mean ± 95% CI over seeds (a single run has no interval). The ceiling applies to in-softmax families on constant inputs. The paper's column is its general accuracy in another setting (n = 128, vocabulary 1,000, a 3-layer d = 768 encoder, 40k steps): a reference, not the same experiment.\n"
    );
    let _ = writeln!(
        out,
        "| task | family | n | depth × width | steps | general | constant | ceiling on constant | paper (n = 128) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for task in tasks {
        let paper = PAPER_ACCURACY.iter().find(|p| p.0 == task.target).expect("listed");
        for f in fams {
            for c in cells.iter().filter(|c| task.holds(&c.key) && &c.key.family == f) {
                let reported = match f.as_str() {
                    "nope" => format!("{:.3}", paper.1),
                    "t5" => format!("{:.3}", paper.2),
                    "urpe" => format!("{:.2}", paper.3),
                    _ => "–".into(),
                };
                let ceiling = match c.floor {
                    Floor::Classes { accuracy, .. } => format!("{accuracy:.4}"),
                    Floor::Mse { .. } => "–".into(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {f} | {} | {} × {} | {} | {} | {} | {ceiling} | {reported} |",
                    task.target,
                    c.key.n,
                    c.key.depth,
                    c.key.width,
                    c.steps,
                    pm(&c.general),
                    pm(&c.constant)
                );
            }
        }
    }
}

/// Positional rank of one trained model per family (lowest seed at the largest model of
/// the first task with rank probes, named among `tasks`): σ₁/‖h‖ per stage and a reading of
/// the table.
fn rank_section(out: &mut String, runs: &[StoredRun], fams: &[String], tasks: &[Task]) {
    let probed: Vec<&StoredRun> = runs.iter().filter(|r| !r.probe.rank.is_empty()).collect();
    let Some(task) = tasks.iter().copied().find(|t| probed.iter().any(|r| t.holds_run(r))) else { return };
    let size = |r: &StoredRun| (r.record.config.model.depth, r.record.config.model.width);
    let Some(big) = probed.iter().filter(|r| task.holds_run(r)).map(|r| size(r)).max() else { return };
    let chosen: Vec<&StoredRun> = fams
        .iter()
        .filter_map(|f| {
            probed
                .iter()
                .copied()
                .filter(|r| &r.family == f && task.holds_run(r) && size(r) == big)
                .min_by_key(|r| r.seed)
        })
        .collect();
    let Some(first) = chosen.first() else { return };
    let stages: Vec<&str> = first.probe.rank.iter().map(|s| s.stage.as_str()).collect();
    let _ = writeln!(out, "\n## Positional rank inside trained models\n");
    let _ = writeln!(
        out,
        "σ₁/‖h‖ of the row-centred hidden states of {} constant inputs, stacked, at each stage of one trained model per family ({}, depth {}, width {}, lowest seed; float64; rank counts σ/‖h‖ > {:.0e}). `urpe analyze --checkpoint F` gives the same for any model.\n",
        crate::experiment::store::RANK_PROBE_INPUTS,
        task.name_among(tasks),
        big.0,
        big.1,
        crate::analysis::rank::RANK_TOLERANCE
    );
    let _ = writeln!(out, "| family | {} | rank at the output |", stages.join(" | "));
    let _ = writeln!(out, "|---|{}---|", "---|".repeat(stages.len()));
    for r in &chosen {
        let sigma: Vec<String> =
            r.probe.rank.iter().map(|s| format!("{:.1e}", s.singular.first().copied().unwrap_or(0.0))).collect();
        let rank = r.probe.rank.last().map_or(0, |s| s.rank);
        let _ = writeln!(out, "| {} | {} | {rank} |", r.family, sigma.join(" | "));
    }
    let _ = writeln!(out, "\nReading: {}", crate::plot::rank_reading(&chosen));
}

/// Every variant at the largest model of each task (target and n): the theory's verdict
/// with its reason beside the constant-input result over the exact floor (the `variants`
/// figure's numbers).
fn variants_section(out: &mut String, cells: &[Cell]) {
    let spread = match cells.iter().map(|c| c.constant.k).max().unwrap_or(0) {
        k if k < 2 => "one seed, no interval".to_string(),
        k => format!("mean ± 95% CI over {k} seeds"),
    };
    let _ = writeln!(
        out,
        "\n## Each variant beside the theory\n\nConstant-input error (mean squared error for real targets, accuracy for token targets; the barrier's metric) over the exact floor at the largest model of each target, {spread}, beside the theory's verdict (`urpe classify` gives the same verdict for any setting). A bound variant cannot go below 1 on a real target or above 1 on a token target; a free one may, if training finds how. General inputs (the paper's metric) in the last column.\n"
    );
    let _ = writeln!(out, "| target | variant | theory | constant | floor | constant / floor | general | why |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for task in stats::tasks(cells) {
        let at: Vec<&Cell> = cells.iter().filter(|c| task.holds(&c.key)).collect();
        let Some(top) = at.iter().map(|c| (c.key.depth * c.key.width, c.key.depth, c.key.width)).max() else {
            continue;
        };
        let mut here: Vec<&Cell> =
            at.into_iter().filter(|c| (c.key.depth * c.key.width, c.key.depth, c.key.width) == top).collect();
        let mut labels: Vec<String> = here.iter().map(|c| c.key.family.clone()).collect();
        Variant::sort_labels(&mut labels);
        here.sort_by_key(|c| labels.iter().position(|l| *l == c.key.family));
        for c in here {
            let floor = match c.floor {
                Floor::Mse { mse } => mse,
                Floor::Classes { accuracy, .. } => accuracy,
            };
            let _ = writeln!(
                out,
                "| {} (n = {}, {} × {}) | {} | {} | {} | {:.4} | {:.3} | {} | {} |",
                task.target,
                task.n,
                c.key.depth,
                c.key.width,
                c.key.family,
                if c.barrier_bound { "bound" } else { "free" },
                pm(&c.constant),
                floor,
                c.constant.mean / floor,
                pm(&c.general),
                c.theory_reason
            );
        }
    }
}

/// A setting as a configuration file spells it (`cosine`, `post`, `adamw`).
fn as_written(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// The runs' protocols (settings besides the grid coordinates and seeds), each with the
/// targets that use it and one run that shows it.
fn protocols(runs: &[StoredRun]) -> Vec<(String, &StoredRun)> {
    let mut seen: Vec<(String, Vec<String>, &StoredRun)> = Vec::new();
    for r in runs {
        let p = crate::experiment::settings::protocol(&r.record.config);
        let target = r.record.config.target.to_string();
        match seen.iter_mut().find(|(q, _, _)| *q == p) {
            Some((_, targets, _)) if !targets.contains(&target) => targets.push(target),
            Some(_) => {}
            None => seen.push((p, vec![target], r)),
        }
    }
    seen.into_iter().map(|(_, t, r)| (t.join(", "), r)).collect()
}

/// The report's Markdown.
pub fn report(runs: &[StoredRun], figures: &[FigureEntry], ctx: &ReportContext) -> String {
    let cells = stats::cells(runs);
    let cert = stats::certify(runs);
    let fams = families(&cells);
    let seeds: BTreeSet<u64> = runs.iter().map(|r| r.seed).collect();
    let diverged = runs.iter().filter(|r| r.record.metrics.is_none()).count();
    let per_point: Vec<usize> = cells.iter().map(|c| c.constant.k + c.diverged).collect();
    let (fewest, most) = (per_point.iter().copied().min().unwrap_or(0), per_point.iter().copied().max().unwrap_or(0));
    let mut out = String::new();
    let _ = writeln!(out, "# {}: the stochastic barrier, measured\n", ctx.experiment);
    if !ctx.description.is_empty() {
        let _ = writeln!(out, "{}\n", ctx.description);
    }
    let _ = writeln!(out, "## Setup\n");
    if !ctx.settings.is_empty() {
        let _ = writeln!(
            out,
            "- **Settings of this group: {}.** The store holds runs of the same grid points with other settings; they are reported apart (../REPORT.md), never pooled.",
            ctx.settings
        );
    }
    let seeds_text = if fewest == most { format!("{most}") } else { format!("{fewest} to {most}") };
    let _ = writeln!(
        out,
        "- {} runs ({} diverged), {seeds_text} seed(s) per grid point (seeds {:?}), families: {}.",
        runs.len(),
        diverged,
        seeds,
        fams.join(", ")
    );
    for (targets, r) in protocols(runs) {
        let c = &r.record.config;
        let _ = writeln!(
            out,
            "- {targets}: {} steps of {} sequences ({}% constant), {} lr {} with {} warm-up steps and {} decay; {} norm, FFN {}·width; evaluation on {} constant and {} general held-out sequences{}.",
            c.steps,
            c.batch,
            (c.constant_fraction * 100.0).round(),
            as_written(&c.optim.kind),
            c.optim.lr,
            c.optim.warmup,
            as_written(&c.optim.decay),
            as_written(&c.model.norm),
            c.model.ffn / c.model.width,
            c.eval.sequences,
            c.eval.sequences,
            if c.eval.every > 0 { format!(", every {} steps", c.eval.every) } else { String::new() }
        );
    }
    let revisions: BTreeSet<&str> = runs.iter().map(|r| r.git.as_str()).collect();
    let versions: BTreeSet<&str> = runs.iter().map(|r| r.record.version.as_str()).collect();
    let _ = writeln!(
        out,
        "- Built from git revision(s) {} (urpe {}).",
        revisions.into_iter().collect::<Vec<_>>().join(", "),
        versions.into_iter().collect::<Vec<_>>().join(", ")
    );
    let mut engines: BTreeMap<&str, usize> = BTreeMap::new();
    for r in runs {
        *engines.entry(r.record.engine.as_deref().unwrap_or("not recorded")).or_default() += 1;
    }
    let engines: Vec<String> = engines.into_iter().map(|(e, k)| format!("{e} ({k} runs)")).collect();
    let _ = writeln!(out, "- Engine: {}.", engines.join(", "));
    let trained: f64 = runs.iter().map(|r| r.record.wall_seconds).sum();
    match (ctx.logged_seconds, ctx.sweep_seconds) {
        (Some(s), _) => {
            let _ =
                writeln!(out, "- {} logged sweep(s) into this store took {s:.0} s of wall time.", ctx.logged_sweeps);
        }
        (None, Some(s)) => {
            let _ = writeln!(out, "- This sweep took {s:.0} s of wall time on {} threads.", ctx.threads);
        }
        (None, None) => {
            let _ = writeln!(out, "- The sweeps' wall time was not logged (a store written before `sweeps.jsonl`).");
        }
    }
    let _ = writeln!(out, "- Training and evaluation took {trained:.0} s summed over runs (one thread each).");
    let _ = writeln!(
        out,
        "- {}",
        if most < 2 {
            "One seed per grid point: every number is a single run, with no confidence interval.".to_string()
        } else if fewest < 2 {
            "Numbers are means over seeds with their 95% Student-t confidence interval, never a best seed; grid points with a single run show it without an interval.".to_string()
        } else {
            "Every number is a mean over seeds with its 95% Student-t confidence interval, never a best seed."
                .to_string()
        }
    );
    for cmd in &ctx.commands {
        let _ = writeln!(out, "- `{cmd}`");
    }
    verdict(&mut out, &cells, &cert);
    let _ = writeln!(out, "\n## Figures\n");
    for f in figures {
        let _ = writeln!(out, "### {}\n\n![{}]({})\n\n{} ([SVG]({}))\n", f.title, f.title, f.png, f.caption, f.svg);
    }
    let _ = writeln!(out, "\n## Floor against measured error\n");
    let tasks = stats::tasks(&cells);
    for target in [
        TargetKind::PositionShift,
        TargetKind::PositionScale,
        TargetKind::PrefixSum,
        TargetKind::Identity,
        TargetKind::AddMean,
        TargetKind::RowMap,
    ] {
        for task in tasks_of(&tasks, target) {
            error_table(&mut out, &cells, task, &task.name_among(&tasks), &fams);
        }
    }
    gate_section(&mut out, &stats::gate_comparisons(&cells), &tasks);
    token_section(&mut out, &cells, &fams);
    variants_section(&mut out, &cells);
    rank_section(&mut out, runs, &fams, &tasks);
    let shifts: Vec<(usize, f64)> = tasks_of(&tasks, TargetKind::PositionShift)
        .filter_map(|t| Some((t.n, cells.iter().find(|c| t.holds(&c.key)).and_then(|c| floor_mse(c.floor))?)))
        .collect();
    let floors = match shifts[..] {
        [] => None,
        [(_, mse)] => Some(mse.to_string()),
        _ => Some(shifts.iter().map(|(n, mse)| format!("{mse} at n = {n}")).collect::<Vec<_>>().join(", ")),
    };
    if let Some(floors) = floors {
        let _ = writeln!(
            out,
            "\nFloors are exact (docs/theory.md §4): position-shift Var(p) = (n²−1)/(12n²) = {floors}; `urpe bound` prints them."
        );
    }
    out
}
