//! Figures: from a tiny real sweep every figure is drawn as a non-empty PNG and SVG; a
//! figure whose data are missing is skipped without error; no runs draw nothing; the
//! accuracy-against-step caption reads the data (and says when a series is missing); one
//! `urpe train` record draws its own curves; one target at two sequence lengths is reported
//! and drawn as two tasks, never pooled.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use urpe::experiment::sweep::run_job;
use urpe::experiment::{Experiment, StoredRun};
use urpe::plot::{Figure, draw_all, draw_run};
use urpe::train::{Metrics, SetMetrics};

const ALL: [&str; 10] = [
    "error_vs_width_constant",
    "error_vs_width_general",
    "error_vs_depth",
    "token_accuracy",
    "accuracy_vs_step",
    "urpe_tables",
    "training_curves",
    "constant_profile",
    "positional_rank",
    "variants",
];

/// Real runs of a tiny grid: two real and two token targets, a barrier-bound family and
/// URPE, two depths, two widths, two seeds, a few steps each; the token runs are evaluated
/// every 2 of their 6 steps.
fn runs() -> Vec<StoredRun> {
    trained(
        r#"
name = "plot-test"
[defaults]
families = ["nope", "urpe"]
seeds = [1, 2]
steps = 4
batch = 4
eval = { sequences = 8 }
[[grid]]
targets = [{ kind = "position-shift", n = 4, d = 2 }, { kind = "prefix-sum", n = 4, d = 2 }]
depths = [1, 2]
widths = [4, 8]
[[grid]]
targets = [{ kind = "position-id", n = 4, vocab = 4 }, { kind = "even-token", n = 4, vocab = 4 }]
depths = [1]
widths = [4]
steps = 6
eval = { every = 2, sequences = 8 }
"#,
    )
}

/// Every run of an experiment given as TOML, trained in order.
fn trained(toml: &str) -> Vec<StoredRun> {
    let e = Experiment::parse(toml).unwrap();
    let stop = AtomicBool::new(false);
    e.jobs().unwrap().iter().map(|job| run_job(&e.name, job, &stop).unwrap().unwrap()).collect()
}

fn names(figures: &[Figure]) -> Vec<&str> {
    figures.iter().map(|f| f.name.as_str()).collect()
}

/// Every figure's files exist, start like a PNG and an SVG, and nothing else is in `dir`.
fn check_files(figures: &[Figure], dir: &Path) {
    for f in figures {
        let png = std::fs::read(&f.png).unwrap();
        let svg = std::fs::read_to_string(&f.svg).unwrap();
        assert!(png.len() > 1000 && png.starts_with(b"\x89PNG"), "{}: not a PNG", f.png.display());
        assert!(svg.starts_with("<svg") && svg.contains("<text"), "{}: not an SVG with text", f.svg.display());
        assert_eq!((f.png.parent(), f.svg.parent()), (Some(dir), Some(dir)));
        assert!(!f.title.is_empty() && f.caption.lines().count() == 2, "{}: title and two caption lines", f.name);
    }
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 2 * figures.len(), "only the figures' files");
}

#[test]
fn every_figure_is_drawn_when_the_runs_have_its_data() {
    let runs = runs();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("figures");
    let figures = draw_all(&runs, &out).unwrap();
    assert_eq!(names(&figures), ALL);
    check_files(&figures, &out);

    // token targets only: the accuracy figures, URPE's tables, the training curves, the variants
    let tokens: Vec<StoredRun> = runs.iter().filter(|r| r.record.config.target.is_classification()).cloned().collect();
    let only = dir.path().join("tokens");
    let figures = draw_all(&tokens, &only).unwrap();
    assert_eq!(names(&figures), ["token_accuracy", "accuracy_vs_step", "urpe_tables", "training_curves", "variants"]);
    check_files(&figures, &only);

    // real targets without URPE: no tables, no accuracy
    let plain: Vec<StoredRun> =
        runs.iter().filter(|r| !r.record.config.target.is_classification() && r.family != "urpe").cloned().collect();
    let figures = draw_all(&plain, &dir.path().join("plain")).unwrap();
    let token_only = ["token_accuracy", "accuracy_vs_step", "urpe_tables"];
    let expected: Vec<&str> = ALL.into_iter().filter(|n| !token_only.contains(n)).collect();
    assert_eq!(names(&figures), expected);

    // a store written before the rank probe existed: every figure but the positional rank
    let old: Vec<StoredRun> = runs
        .iter()
        .cloned()
        .map(|mut r| {
            r.probe.rank.clear();
            r
        })
        .collect();
    let figures = draw_all(&old, &dir.path().join("old")).unwrap();
    let expected: Vec<&str> = ALL.into_iter().filter(|n| *n != "positional_rank").collect();
    assert_eq!(names(&figures), expected);
}

#[test]
fn no_runs_draw_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("figures");
    assert!(draw_all(&[], &out).unwrap().is_empty());
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none());
}

/// The figure of `name` among `figures`.
fn figure<'a>(figures: &'a [Figure], name: &str) -> &'a Figure {
    figures.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no {name} among {:?}", names(figures)))
}

#[test]
fn training_curves_cover_every_target_token_tasks_included() {
    let runs = runs();
    let dir = tempfile::tempdir().unwrap();
    let figures = draw_all(&runs, dir.path()).unwrap();
    let svg = std::fs::read_to_string(&figure(&figures, "training_curves").svg).unwrap();
    for target in ["position-shift", "prefix-sum", "position-id", "even-token"] {
        assert!(svg.contains(&format!("{target}, depth")), "training_curves lacks a {target} panel");
    }
    assert!(svg.contains("training loss (cross-entropy)") && svg.contains("training loss (MSE)"));
}

/// Sets the held-out accuracies of `run` at every evaluation (curve points and the final
/// metrics) to `at(step)` = (general, constant).
fn set_accuracy(run: &mut StoredRun, at: impl Fn(usize) -> (f64, f64)) {
    let set = |m: &mut Metrics, step: usize| {
        let (general, constant) = at(step);
        for (s, v) in [(&mut m.general, general), (&mut m.constant, constant)] {
            let SetMetrics::Classes { accuracy, .. } = s else { panic!("a token run") };
            *accuracy = v;
        }
    };
    let last = run.record.steps_done;
    for p in &mut run.record.curve {
        if let Some(m) = &mut p.eval {
            set(m, p.step);
        }
    }
    set(run.record.metrics.as_mut().unwrap(), last);
}

/// The position-id run of nope, seed 2, in `runs`.
fn nope_seed2(runs: &mut [StoredRun]) -> &mut StoredRun {
    runs.iter_mut()
        .find(|r| r.family == "nope" && r.seed == 2 && r.record.config.target.to_string() == "position-id")
        .unwrap()
}

/// The context of a report on experiment `name`, with no logged sweeps.
fn report_context(name: &str) -> urpe::report::ReportContext {
    urpe::report::ReportContext {
        experiment: name.into(),
        description: String::new(),
        settings: String::new(),
        commands: Vec::new(),
        sweep_seconds: None,
        logged_seconds: None,
        logged_sweeps: 0,
        threads: 1,
    }
}

/// The token runs of the tiny grid.
fn token_runs() -> Vec<StoredRun> {
    runs().into_iter().filter(|r| r.record.config.target.is_classification()).collect()
}

#[test]
fn accuracy_against_step_reads_the_crossing_and_the_ceiling_from_the_data() {
    let mut runs = token_runs();
    assert!(runs.iter().all(|r| r.record.curve.iter().filter(|p| p.eval.is_some()).count() == 2));
    for r in &mut runs {
        // urpe: 0.5 at step 2, 0.95 from step 4 on; nope: 0.5 throughout, at its ceiling
        let urpe = r.family == "urpe";
        set_accuracy(r, |step| if urpe && step >= 4 { (0.95, 0.95) } else { (0.5, 0.25) });
    }
    let dir = tempfile::tempdir().unwrap();
    let figures = draw_all(&runs, dir.path()).unwrap();
    let f = figure(&figures, "accuracy_vs_step");
    assert_eq!(f.caption.lines().count(), 2);
    let (what, reading) = f.caption.split_once('\n').unwrap();
    for words in
        ["general inputs", "the paper's metric", "constant inputs", "min–max over seeds", "6 steps", "seeds 1, 2"]
    {
        assert!(what.contains(words), "{what:?} lacks {words:?}");
    }
    for words in [
        "position-id: nope never within 6 steps, urpe at step 4",
        "even-token: nope never within 6 steps, urpe at step 4",
        "On position-id no in-softmax run exceeds the ceiling 0.2500 on constant inputs at any evaluated step (highest 0.2500)",
        "On even-token no in-softmax run exceeds the ceiling 0.5000",
    ] {
        assert!(reading.contains(words), "{reading:?} lacks {words:?}");
    }
    assert!(!reading.contains("BUG") && !reading.contains("missing"), "{reading}");

    // a barrier-bound run above its ceiling at one evaluated step is called out
    let seed2 = nope_seed2(&mut runs);
    set_accuracy(seed2, |step| if step == 2 { (0.5, 0.5) } else { (0.5, 0.25) });
    let figures = draw_all(&runs, &dir.path().join("bug")).unwrap();
    let reading = figure(&figures, "accuracy_vs_step").caption.lines().nth(1).unwrap().to_string();
    assert!(
        reading.contains("BUG: on position-id an in-softmax run exceeds the ceiling 0.2500 on constant inputs (nope seed 2 reaches 0.5000 at step 2)"),
        "{reading}"
    );
    assert!(reading.contains("On even-token no in-softmax run exceeds"), "{reading}");
    // the certified check reads the final metrics: above the ceiling there, a violation
    let seed2 = nope_seed2(&mut runs);
    set_accuracy(seed2, |step| if step == 4 { (0.5, 0.25) } else { (0.5, 0.5) });
    let cert = urpe::experiment::stats::certify(&runs);
    assert_eq!((cert.violations.len(), cert.uncertified.len(), cert.reduced), (1, 0, 0));

    // the same readings from a run computed in bf16 are reported, not certified, not a bug
    let seed2 = nope_seed2(&mut runs);
    seed2.record.engine = Some("candle cuda:0 bf16".into());
    let figures = draw_all(&runs, &dir.path().join("bf16")).unwrap();
    let reading = figure(&figures, "accuracy_vs_step").caption.lines().nth(1).unwrap().to_string();
    assert!(!reading.contains("BUG"), "{reading}");
    assert!(reading.contains("On position-id in bf16 (not certified"), "{reading}");
    assert!(reading.contains("nope seed 2 reads 0.5000 at step 6, above the ceiling 0.2500"), "{reading}");
    let cert = urpe::experiment::stats::certify(&runs);
    assert_eq!((cert.violations.len(), cert.uncertified.len(), cert.reduced), (0, 1, 1));
}

/// The report's test of URPE against its base family counts a higher accuracy as better on
/// token targets (and a lower error on real ones): token runs where URPE's constant-input
/// accuracy beats t5's at both tasks are 2 of 2, and with the two swapped 0 of 2.
#[test]
fn the_gate_test_counts_a_higher_accuracy_as_better_on_token_tasks() {
    use urpe::report::report;
    let ctx = report_context("plot-test");
    for (urpe_ahead, claim) in [(true, "At 2 of 2 grid points"), (false, "At 0 of 2 grid points")] {
        let mut runs = token_runs();
        for r in &mut runs {
            let gated = r.family == "urpe";
            if !gated {
                r.family = "t5".into();
            }
            let spread = 0.01 * r.seed as f64;
            let high = gated == urpe_ahead;
            set_accuracy(r, |_| if high { (0.9 + spread, 0.9 + spread) } else { (0.3 + spread, 0.25 + spread) });
        }
        let text = report(&runs, &[], &ctx);
        let section = text.split("## URPE against its base family").nth(1).expect("the gate section");
        assert!(section.contains("accuracy for token targets"), "{section}");
        let sentence = format!("{claim} URPE does better than its base family on constant inputs");
        assert!(section.contains(&sentence), "{sentence:?} not in {section}");
    }
}

#[test]
fn a_store_without_held_out_points_still_plots_and_names_the_missing_series() {
    let strip = |r: &mut StoredRun| r.record.curve.iter_mut().for_each(|p| p.eval = None);
    let dir = tempfile::tempdir().unwrap();

    // every run written before eval.every: all series missing, the figure is still drawn
    let mut old = token_runs();
    old.iter_mut().for_each(strip);
    let figures = draw_all(&old, &dir.path().join("old")).unwrap();
    check_files(&figures, &dir.path().join("old"));
    let f = figure(&figures, "accuracy_vs_step");
    let reading = f.caption.lines().nth(1).unwrap();
    assert!(reading.contains("position-id: nope missing (no held-out points stored), urpe missing"), "{reading}");
    assert!(reading.contains("No in-softmax family has held-out points"), "{reading}");
    let svg = std::fs::read_to_string(&f.svg).unwrap();
    assert!(svg.contains("position-id, general inputs: missing") && svg.contains("(no held-out points stored)"));

    // one family missing: the other is read, the missing one named
    let mut mixed = token_runs();
    mixed.iter_mut().filter(|r| r.family == "urpe").for_each(strip);
    let figures = draw_all(&mixed, &dir.path().join("mixed")).unwrap();
    let reading = figure(&figures, "accuracy_vs_step").caption.lines().nth(1).unwrap().to_string();
    assert!(reading.contains("urpe missing (no held-out points stored)"), "{reading}");
    assert!(
        reading.contains("position-id: nope never within 6 steps") || reading.contains("position-id: nope at step")
    );
    assert!(reading.contains("no in-softmax run exceeds"), "{reading}");
}

#[test]
fn one_training_run_draws_its_loss_and_held_out_curves() {
    let runs = runs();
    let dir = tempfile::tempdir().unwrap();
    for (i, run) in [runs.iter().find(|r| r.record.config.target.is_classification()), runs.first()]
        .into_iter()
        .flatten()
        .enumerate()
    {
        let out = dir.path().join(format!("run{i}"));
        let figures = draw_run(&run.record, &out).unwrap();
        assert_eq!(names(&figures), ["training_run"]);
        check_files(&figures, &out);
        let svg = std::fs::read_to_string(&figures[0].svg).unwrap();
        for words in ["training loss", "general inputs", "constant inputs", "on constant inputs (in-softmax families)"]
        {
            assert!(svg.contains(words), "{} lacks {words:?}", figures[0].svg.display());
        }
        let metric = if run.record.config.target.is_classification() { "held-out accuracy" } else { "held-out MSE" };
        assert!(svg.contains(metric), "{metric}");
        assert!(figures[0].caption.contains(&format!("At step {}", run.record.steps_done)), "{}", figures[0].caption);
    }

    // a run that diverged before its first evaluation still draws, saying so
    let mut diverged = runs[0].record.clone();
    diverged.metrics = None;
    let figures = draw_run(&diverged, &dir.path().join("diverged")).unwrap();
    assert!(figures[0].caption.contains("No held-out evaluation was stored"), "{}", figures[0].caption);
}

/// The error figures' readings count, per family, the sizes below the floor from the store
/// itself (a family that is not below it is never said to be), and a store of one seed per
/// grid point claims no interval anywhere.
#[test]
fn captions_and_report_read_the_store_and_one_seed_claims_no_interval() {
    use urpe::experiment::stats::cells;
    use urpe::report::report;
    let runs = runs();
    let dir = tempfile::tempdir().unwrap();
    let figures = draw_all(&runs, dir.path()).unwrap();
    let caption = &figure(&figures, "error_vs_width_constant").caption;
    let cells = cells(&runs);
    for family in ["nope", "urpe"] {
        let mine: Vec<_> =
            cells.iter().filter(|c| c.key.target.to_string() == "position-shift" && c.key.family == family).collect();
        let urpe::theory::Floor::Mse { mse: floor } = mine[0].floor else { panic!("a real target") };
        let below = mine.iter().filter(|c| c.constant.mean < floor * (1.0 - 1e-4)).count();
        let claim = format!("{family} below the floor at {below} of {} sizes", mine.len());
        assert!(caption.contains(&claim), "{claim:?} not in {caption:?}");
    }
    assert!(caption.contains("means over 2 seeds"), "{caption}");

    let single: Vec<StoredRun> = runs.into_iter().filter(|r| r.seed == 1).collect();
    let figures = draw_all(&single, dir.path()).unwrap();
    for f in &figures {
        assert!(!f.caption.contains("95%"), "{}: {}", f.name, f.caption);
    }
    assert!(figure(&figures, "error_vs_width_constant").caption.contains("one seed: no interval"));
    let ctx = report_context("plot-test");
    let text = report(&single, &[], &ctx);
    assert!(text.contains("1 seed(s) per grid point"), "{text}");
    assert!(text.contains("One seed per grid point: every number is a single run, with no confidence interval."));
    assert!(!text.contains("95% Student-t"), "{text}");
    assert!(text.contains("The sweeps' wall time was not logged"));
    // every variant beside the theory, with its reason, one seed without an interval
    let section = text.split("## Each variant beside the theory").nth(1).expect("the variants section");
    assert!(section.contains("one seed, no interval"), "{section}");
    assert!(section.contains("| nope | bound |") && section.contains("| urpe | free |"), "{section}");
    assert!(section.contains("the gate: the rows of M"), "{section}");
}

/// Real runs of position-shift at n = 4 and at n = 6 (floors (n²−1)/(12n²) = 0.0781 and
/// 0.0810) and of prefix-sum at n = 4 alone, from two grids of one experiment.
fn two_lengths() -> Vec<StoredRun> {
    trained(
        r#"
name = "two-lengths"
[defaults]
families = ["nope", "urpe"]
seeds = [1, 2]
steps = 3
batch = 4
eval = { sequences = 8 }
[[grid]]
targets = [{ kind = "position-shift", n = 4, d = 2 }, { kind = "prefix-sum", n = 4, d = 2 }]
depths = [1]
widths = [4, 8]
[[grid]]
targets = [{ kind = "position-shift", n = 6, d = 2 }]
depths = [1]
widths = [4, 8]
"#,
    )
}

/// One target at two sequence lengths is two tasks: the report gives each its own verdict
/// line (naming its n, against its own floor, each family once) and its own error table,
/// and the figures their own panels and readings; a target at one length keeps its bare
/// name.
#[test]
fn one_target_at_two_lengths_is_never_pooled() {
    use urpe::report::report;
    use urpe::theory::{Floor, Target, TargetKind};
    let runs = two_lengths();
    let floor = |n| match Target::new(TargetKind::PositionShift, n, 2, 0).floor() {
        Floor::Mse { mse } => mse,
        Floor::Classes { .. } => unreachable!("a real target"),
    };
    assert!((floor(4) - floor(6)).abs() > 1e-3, "the two floors differ");
    let ctx = report_context("two-lengths");
    let text = report(&runs, &[], &ctx);
    let verdicts: Vec<&str> = text.lines().filter(|l| l.contains(", largest size (")).collect();
    assert_eq!(verdicts.len(), 3, "one verdict line per task: {verdicts:#?}");
    for n in [4, 6] {
        let head =
            format!("position-shift (n = {n}), largest size (depth 1, width 8), floor/10 = {:.2e}:", floor(n) / 10.0);
        let line =
            verdicts.iter().find(|l| l.starts_with(&head)).unwrap_or_else(|| panic!("no {head:?} in {verdicts:#?}"));
        for family in ["nope", "urpe"] {
            assert_eq!(line.matches(&format!("{family} (")).count(), 1, "{family} once in {line}");
        }
        let table = format!("**position-shift (n = {n})** — floor {:.6} ", floor(n));
        assert_eq!(text.matches(&table).count(), 1, "{table:?} once in {text}");
    }
    assert!(verdicts.iter().any(|l| l.starts_with("prefix-sum, largest size")), "{verdicts:#?}");
    assert!(text.contains("\n**prefix-sum** — floor "), "{text}");
    assert!(!text.contains("**position-shift** —"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let figures = draw_all(&runs, dir.path()).unwrap();
    let errors = &figure(&figures, "error_vs_width_constant");
    let svg = std::fs::read_to_string(&errors.svg).unwrap();
    for n in [4, 6] {
        let reading = format!("position-shift (n = {n}) (floor {:.4}), constant inputs:", floor(n));
        assert_eq!(errors.caption.matches(&reading).count(), 1, "{reading:?} once in {}", errors.caption);
        assert!(svg.contains(&format!("position-shift (n = {n}), depth 1")), "no n = {n} panel");
        let variants = &figure(&figures, "variants").caption;
        assert!(variants.contains(&format!("position-shift (n = {n}):")), "no n = {n} in {variants}");
    }
    assert!(errors.caption.contains("prefix-sum (floor "), "{}", errors.caption);
}
