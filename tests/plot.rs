//! Figures: from a tiny real sweep every figure is drawn as a non-empty PNG and SVG; a
//! figure whose data are missing is skipped without error; no runs draw nothing.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use urpe::experiment::sweep::run_job;
use urpe::experiment::{Experiment, StoredRun};
use urpe::plot::{Figure, draw_all};

const ALL: [&str; 8] = [
    "error_vs_width_constant",
    "error_vs_width_general",
    "error_vs_depth",
    "token_accuracy",
    "urpe_tables",
    "training_curves",
    "constant_profile",
    "positional_rank",
];

/// Real runs of a tiny grid: two real and two token targets, a barrier-bound family and
/// URPE, two depths, two widths, two seeds, a few steps each.
fn runs() -> Vec<StoredRun> {
    let e = Experiment::parse(
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
"#,
    )
    .unwrap();
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

    // token targets only: the accuracy figure, and URPE's tables from a token run
    let tokens: Vec<StoredRun> = runs.iter().filter(|r| r.record.config.target.is_classification()).cloned().collect();
    let only = dir.path().join("tokens");
    let figures = draw_all(&tokens, &only).unwrap();
    assert_eq!(names(&figures), ["token_accuracy", "urpe_tables"]);
    check_files(&figures, &only);

    // real targets without URPE: no tables, no accuracy
    let plain: Vec<StoredRun> =
        runs.iter().filter(|r| !r.record.config.target.is_classification() && r.family != "urpe").cloned().collect();
    let figures = draw_all(&plain, &dir.path().join("plain")).unwrap();
    let expected: Vec<&str> = ALL.into_iter().filter(|n| !["token_accuracy", "urpe_tables"].contains(n)).collect();
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
