//! Sweeps: grid expansion, resume, shards that merge to the unsharded result, a SIGKILL
//! that loses and duplicates nothing, torn lines, divergence.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use urpe::experiment::sweep::{SweepOptions, parse_shard, sweep};
use urpe::experiment::{Experiment, Store, StoredRun};
use urpe::train::Outcome;

fn experiment(steps: usize, lr: f64) -> Experiment {
    Experiment::parse(&format!(
        r#"
name = "test"
[defaults]
families = ["t5", "urpe", "ape-learned"]
seeds = [1, 2]
steps = {steps}
batch = 4
optim = {{ lr = {lr:e} }}
eval = {{ sequences = 8 }}
[[grid]]
targets = [{{ kind = "position-shift", n = 4, d = 2 }}]
depths = [1, 2]
widths = [4]
"#
    ))
    .unwrap()
}

fn run(e: &Experiment, dir: &Path, shard: Option<(usize, usize)>) -> urpe::experiment::sweep::SweepSummary {
    sweep(e, dir, shard, SweepOptions::default(), &urpe::engine::Backend::Ndarray, &AtomicBool::new(false), &|_| {})
        .unwrap()
}

/// id → the run without its wall time (which differs between runs of the same job).
fn by_id(runs: Vec<StoredRun>) -> HashMap<String, StoredRun> {
    runs.into_iter()
        .map(|mut r| {
            r.record.wall_seconds = 0.0;
            (r.id.clone(), r)
        })
        .collect()
}

#[test]
fn the_grid_expands_in_a_fixed_order_with_stable_ids() {
    let e = experiment(3, 1e-3);
    let jobs = e.jobs().unwrap();
    assert_eq!(jobs.len(), 3 * 2 * 2);
    assert_eq!(jobs.iter().map(|j| &j.id).collect::<std::collections::HashSet<_>>().len(), jobs.len());
    assert_eq!(
        jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        e.jobs().unwrap().iter().map(|j| j.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!((jobs[0].family.as_str(), jobs[0].config.model.depth, jobs[0].seed), ("t5", 1, 1));
    assert!(jobs.iter().any(|j| j.family == "urpe" && j.config.model.urpe));
}

#[test]
fn a_second_sweep_resumes_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = experiment(3, 1e-3);
    let first = run(&e, dir.path(), None);
    assert_eq!((first.done, first.stored_before), (12, 0));
    let second = run(&e, dir.path(), None);
    assert_eq!((second.done, second.stored_before, second.left), (0, 12, 0));
    let text = std::fs::read_to_string(dir.path().join("runs.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 12);
}

#[test]
fn shards_merged_equal_one_unsharded_sweep() {
    let (whole, parts) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let e = experiment(3, 1e-3);
    run(&e, whole.path(), None);
    let mut count = 0;
    for k in 0..3 {
        count += run(&e, parts.path(), Some((k, 3))).done;
    }
    assert_eq!(count, 12);
    assert!(parts.path().join("runs-shard-2-of-3.jsonl").exists());
    let (a, b) = (
        by_id(Store::open(whole.path()).unwrap().load().unwrap()),
        by_id(Store::open(parts.path()).unwrap().load().unwrap()),
    );
    assert_eq!(a.len(), 12);
    assert_eq!(a, b, "sharded and unsharded stores differ");
    assert_eq!(parse_shard("2/3").unwrap(), (2, 3));
    assert!(parse_shard("3/3").is_err() && parse_shard("1-3").is_err() && parse_shard("0/0").is_err());
}

#[test]
fn a_torn_last_line_is_ignored_then_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let e = experiment(3, 1e-3);
    run(&e, dir.path(), None);
    let file = dir.path().join("runs.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // keep 5 whole runs and half of the sixth, as a crash in mid-write would
    let torn = format!("{}\n{}", lines[..5].join("\n"), &lines[5][..lines[5].len() / 2]);
    std::fs::write(&file, torn).unwrap();
    assert_eq!(Store::open(dir.path()).unwrap().load().unwrap().len(), 5);
    let again = run(&e, dir.path(), None);
    assert_eq!((again.stored_before, again.done), (5, 7));
    let repaired = std::fs::read_to_string(&file).unwrap();
    assert_eq!(repaired.lines().count(), 12);
    assert!(repaired.lines().all(|l| serde_json::from_str::<StoredRun>(l).is_ok()));
}

#[test]
fn a_divergent_run_is_stored_as_diverged_and_the_sweep_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let e = experiment(50, 1e30);
    let s = run(&e, dir.path(), None);
    assert_eq!(s.done, 12);
    let runs = Store::open(dir.path()).unwrap().load().unwrap();
    assert!(runs.iter().any(|r| r.record.outcome == Outcome::Diverged));
    assert_eq!(s.diverged, runs.iter().filter(|r| r.record.outcome == Outcome::Diverged).count());
}

/// SIGKILL in the middle of a sweep, then a restart: every run stored exactly once.
#[test]
fn a_killed_sweep_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exp.toml");
    let text = r#"
name = "kill"
[defaults]
families = ["t5", "urpe", "ape-learned", "alibi"]
seeds = [1, 2, 3]
steps = 300
batch = 8
eval = { sequences = 16 }
[[grid]]
targets = [{ kind = "position-shift", n = 8, d = 2 }]
depths = [1, 2]
widths = [8]
"#;
    std::fs::write(&file, text).unwrap();
    let out = dir.path().join("results");
    let sweep_cmd = || {
        Command::new(env!("CARGO_BIN_EXE_urpe"))
            .args(["sweep", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--threads", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child = sweep_cmd();
    let store_file = out.join("runs.jsonl");
    let start = std::time::Instant::now();
    // kill once a few runs are stored, while others are in flight
    while std::fs::read_to_string(&store_file).map_or(0, |t| t.lines().count()) < 3 && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = Store::open(&out).unwrap().load().unwrap().len();
    assert!((3..24).contains(&before), "{before} runs stored before the kill");
    assert!(sweep_cmd().wait().unwrap().success());
    let text = std::fs::read_to_string(&store_file).unwrap();
    let ids: Vec<String> = text.lines().map(|l| serde_json::from_str::<StoredRun>(l).unwrap().id).collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (24, 24), "every run exactly once");
}

/// A job stopped mid-way leaves its training state in `partial/`; the next sweep continues
/// it from there (not from step 0), stores what an uninterrupted job stores, and removes
/// the state.
#[test]
fn a_stopped_job_continues_from_its_saved_state() {
    let e = experiment(30, 1e-3);
    let reference = tempfile::tempdir().unwrap();
    run(&e, reference.path(), None);
    let whole = by_id(Store::open(reference.path()).unwrap().load().unwrap());
    let jobs = e.jobs().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // a state of job 0 after 11 steps, and one of job 1 whose first curve point is marked,
    // so that the stored run shows it was continued rather than restarted
    for (k, job) in jobs.iter().take(2).enumerate() {
        let stop = AtomicBool::new(false);
        let mut trainer = urpe::train::Trainer::new(job.config.clone()).unwrap();
        trainer
            .run(&stop, |r| {
                if r.step == 11 {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            })
            .unwrap();
        let mut state = trainer.state().unwrap();
        if k == 1 {
            state.curve[0].lr = 123.0;
        }
        let path = store.partial_for(&job.id);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        urpe::train_state::save(&state, &path).unwrap();
    }
    run(&e, dir.path(), None);
    let got = by_id(store.load().unwrap());
    assert_eq!(got[&jobs[0].id], whole[&jobs[0].id], "a continued job stores what an uninterrupted one does");
    assert_eq!(got[&jobs[1].id].record.curve[0].lr, 123.0, "job 1 was continued from its state");
    for job in &jobs[2..] {
        assert_eq!(got[&job.id], whole[&job.id]);
    }
    assert!(!store.partial_for(&jobs[0].id).exists() && !store.partial_for(&jobs[1].id).exists());
}

/// The compiled-in experiments parse, and the default one covers the issue's grid.
#[test]
fn the_compiled_in_experiments_are_valid() {
    use urpe::experiment::builtin::Profile;
    let quick = Profile::Quick.experiment().jobs().unwrap();
    assert_eq!(quick.len(), 2 * 6 * 4 * 4 * 3 + 2 * 6 * 3);
    for family in ["nope", "t5", "alibi", "rope", "urpe", "ape-learned"] {
        assert!(quick.iter().any(|j| j.family == family && j.config.model.depth == 4 && j.config.model.width == 64));
    }
    assert!(Profile::Full.experiment().jobs().unwrap().len() > 10 * quick.len());
    let zoo = Profile::Zoo.experiment().jobs().unwrap();
    // causal, but for the BOS row's bound case (nope without the mask), at an n of its own
    let bidirectional: Vec<_> = zoo.iter().filter(|j| !j.config.model.causal).collect();
    assert!(bidirectional.iter().any(|j| j.family == "nope bos") && bidirectional.iter().any(|j| j.family == "t5 bos"));
    assert!(
        bidirectional.iter().all(|b| zoo.iter().all(|j| !j.config.model.causal || j.config.n != b.config.n)),
        "a bidirectional run shares its n with a causal one"
    );
    assert!(zoo.iter().any(|j| !j.config.model.attention.is_softmax()), "the zoo names normalisers");
    assert_eq!(zoo.iter().filter(|j| j.config.model.bos).count() * 2, zoo.len(), "every variant with and without BOS");
    // token runs store held-out points every 200 steps on the same sets as the real runs
    for j in &quick {
        let expected = if j.config.target.is_classification() { 200 } else { 0 };
        assert_eq!((j.config.eval.every, j.config.eval.sequences, j.config.eval.seed), (expected, 256, 999_983));
    }
}

/// A stored curve is subsampled to about 100 points but keeps every evaluated step.
#[test]
fn subsampled_curves_keep_every_held_out_point() {
    let e = Experiment::parse(
        r#"
name = "eval-points"
[defaults]
families = ["t5"]
seeds = [1]
steps = 250
batch = 2
eval = { every = 7, sequences = 4 }
[[grid]]
targets = [{ kind = "even-token", n = 4, vocab = 4 }]
depths = [1]
widths = [4]
"#,
    )
    .unwrap();
    let job = &e.jobs().unwrap()[0];
    let run = urpe::experiment::sweep::run_job(&e.name, job, &AtomicBool::new(false)).unwrap().unwrap();
    assert!(run.record.curve.len() < 250, "the curve was subsampled");
    let evaluated: Vec<usize> = run.record.curve.iter().filter(|p| p.eval.is_some()).map(|p| p.step).collect();
    assert_eq!(evaluated, (7..250).step_by(7).collect::<Vec<_>>());
    assert_eq!(run.record.evaluations().last().map(|e| e.0), Some(250), "the final metrics close the series");
}

/// The paper-scale experiment file parses into the paper's six runs (noPE, t5, t5 + URPE on
/// position-id and even-token) at the paper's sizes and 40k-step schedule, URPE first.
#[test]
fn the_paper_experiment_is_the_papers_setting() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/paper.toml")).unwrap();
    let jobs = Experiment::parse(&text).unwrap().jobs().unwrap();
    assert_eq!(jobs.len(), 6);
    assert_eq!(
        jobs.iter().map(|j| j.family.as_str()).collect::<Vec<_>>(),
        ["urpe", "urpe", "t5", "t5", "nope", "nope"]
    );
    for j in &jobs {
        let (c, m) = (&j.config, &j.config.model);
        assert_eq!((c.n, c.vocab, c.steps, c.batch), (128, 1000, 40_000, 128));
        assert_eq!((m.depth, m.width, m.heads, m.ffn, m.share_position), (3, 768, 12, 3072, true));
        assert_eq!((c.optim.lr, c.optim.warmup), (7e-5, 6000));
        assert_eq!(c.eval.every, 500);
    }
}
