//! Results never pool different settings: each run records a fingerprint of its settings
//! (seeds aside), statistics group by it, a sweep refuses to add other settings to a
//! store's grid points unless asked to keep both (then reports show each setting apart);
//! and a grid point that cannot be built is an error or, on request, a listed skip.

use std::process::Command;
use std::sync::atomic::AtomicBool;
use urpe::experiment::stats::{cells, setting_groups};
use urpe::experiment::sweep::{SweepOptions, sweep};
use urpe::experiment::{Experiment, Store};

fn experiment(steps: usize) -> Experiment {
    Experiment::parse(&format!(
        r#"
name = "settings"
[defaults]
families = ["t5", "urpe"]
seeds = [1, 2]
steps = {steps}
batch = 4
eval = {{ sequences = 8 }}
[[grid]]
targets = [{{ kind = "position-shift", n = 4, d = 2 }}]
depths = [1]
widths = [4]
"#
    ))
    .unwrap()
}

fn run(e: &Experiment, dir: &std::path::Path, options: SweepOptions) -> urpe::error::Result<()> {
    sweep(e, dir, None, options, &urpe::engine::Backend::Ndarray, &AtomicBool::new(false), &|_| {}).map(|_| ())
}

/// The finding this answers: `steps` 150 → 200 in one store gave one cell of 6 "seeds".
#[test]
fn other_settings_are_refused_or_kept_apart_never_pooled() {
    let dir = tempfile::tempdir().unwrap();
    run(&experiment(3), dir.path(), SweepOptions::default()).unwrap();
    let before = std::fs::read(dir.path().join("runs.jsonl")).unwrap();

    // refused: names the differing field with both values and the fixes; nothing written
    let err = run(&experiment(5), dir.path(), SweepOptions::default()).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let text = err.to_string();
    for needle in ["`steps` = 3 there, 5 here", "--keep-other-settings", "--out", "4 run(s)"] {
        assert!(text.contains(needle), "{text:?} lacks {needle:?}");
    }
    assert_eq!(std::fs::read(dir.path().join("runs.jsonl")).unwrap(), before, "nothing appended");

    // kept on request: statistics and reports keep the two settings apart
    let keep = SweepOptions { keep_other_settings: true, ..SweepOptions::default() };
    run(&experiment(5), dir.path(), keep).unwrap();
    let runs = Store::open(dir.path()).unwrap().load().unwrap();
    assert_eq!(runs.len(), 8);
    let cells = cells(&runs);
    assert_eq!(cells.len(), 4, "2 families × 2 settings, never 2 cells of 4 runs");
    assert!(cells.iter().all(|c| c.constant.k == 2), "each cell pools exactly its 2 seeds");
    let groups = setting_groups(&runs);
    let labels: Vec<&str> = groups.iter().map(|g| g.label.as_str()).collect();
    assert_eq!(labels, ["steps = 3", "steps = 5"]);
    assert!(groups.iter().all(|g| g.runs.len() == 4));

    // a store of one setting stays one group with no label
    let one = setting_groups(&groups[0].runs);
    assert_eq!((one.len(), one[0].label.as_str()), (1, ""));

    // urpe plot: one folder per setting and an index naming what differs
    let out = dir.path().join("figures");
    let o = Command::new(env!("CARGO_BIN_EXE_urpe"))
        .args(["plot", dir.path().to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let index = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(index.contains("[steps = 3](settings-1/REPORT.md)") && index.contains("[steps = 5](settings-2/REPORT.md)"));
    for k in 1..=2 {
        let report = std::fs::read_to_string(out.join(format!("settings-{k}/REPORT.md"))).unwrap();
        assert!(report.contains("Settings of this group: steps = "), "settings-{k}");
        assert!(report.contains("4 runs (0 diverged), 2 seed(s) per grid point"), "settings-{k}: {report}");
    }
}

/// Seeds alone never change the fingerprint; any other setting does (not vacuous).
#[test]
fn the_fingerprint_ignores_seeds_only() {
    let jobs = experiment(3).jobs().unwrap();
    let fp = |j: &urpe::experiment::Job| urpe::experiment::settings::fingerprint(&j.config);
    let (a, b) = (&jobs[0], &jobs[1]);
    assert_eq!((a.family.as_str(), a.seed, b.family.as_str(), b.seed), ("t5", 1, "t5", 2));
    assert_eq!(fp(a), fp(b));
    let other = experiment(4).jobs().unwrap();
    assert_ne!(fp(a), fp(&other[0]));
    assert_ne!(fp(a), fp(&jobs[2]), "t5 and urpe differ");
}

fn grid_with_width_15(dir: &std::path::Path) -> std::path::PathBuf {
    let file = dir.join("exp.toml");
    std::fs::write(
        &file,
        r#"
name = "drop"
[defaults]
families = ["t5"]
seeds = [1]
steps = 2
batch = 2
eval = { sequences = 4 }
[[grid]]
targets = [{ kind = "position-shift", n = 4, d = 2 }]
depths = [1]
widths = [8, 15]
heads = [2]
"#,
    )
    .unwrap();
    file
}

/// The finding: `widths = [8, 15]`, `heads = [2]` ran without width 15, without a word.
#[test]
fn a_grid_point_that_cannot_be_built_is_an_error_or_a_listed_skip() {
    let dir = tempfile::tempdir().unwrap();
    let file = grid_with_width_15(dir.path());
    let out = dir.path().join("results");
    let sweep = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_urpe"))
            .args(["sweep", file.to_str().unwrap(), "--out", out.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = sweep(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    for needle in ["width 15 heads 2", "--skip-invalid", "`heads`"] {
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    }
    assert!(!out.join("runs.jsonl").exists(), "nothing run");

    let o = sweep(&["--skip-invalid"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let listed = err.find("skipping 1 grid point(s)").expect("the skip is listed");
    assert!(err[listed..].contains("width 15 heads 2"), "{err}");
    assert!(listed < err.find("1 runs stored now").unwrap(), "listed before the sweep: {err}");
    assert_eq!(Store::open(&out).unwrap().load().unwrap().len(), 1);
}
