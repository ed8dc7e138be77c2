//! Training runs end to end: determinism, divergence, the `train` command's outputs,
//! its errors, and Ctrl-C.

use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use urpe::config::{Family, ModelSpec};
use urpe::optim::OptimConfig;
use urpe::theory::{Target, TargetKind};
use urpe::train::{EvalConfig, Outcome, RunRecord, TrainConfig, Trainer};

fn config(kind: TargetKind, lr: f64) -> TrainConfig {
    let target = Target::new(kind, 6, 3, 5);
    let mut spec = ModelSpec::new(Family::Xl, 2, 8, 2, 6, target.input_kind(), target.output_kind());
    spec.urpe = true;
    TrainConfig {
        target: kind,
        n: 6,
        d: 3,
        vocab: 5,
        model: spec.resolve().unwrap(),
        steps: 40,
        batch: 8,
        constant_fraction: 0.5,
        optim: OptimConfig { lr, ..OptimConfig::default() },
        init_seed: 4,
        data_seed: 5,
        eval: EvalConfig { every: 10, sequences: 16, seed: 6 },
    }
}

fn train(c: TrainConfig) -> RunRecord {
    Trainer::new(c).unwrap().run(&AtomicBool::new(false), |_| {}).unwrap()
}

fn without_time(mut r: RunRecord) -> RunRecord {
    r.wall_seconds = 0.0;
    r
}

/// Same seeds give bit-identical curves and metrics, run to run and at 1 or 2 threads.
#[test]
fn same_seeds_give_identical_runs_at_any_thread_count() {
    for kind in [TargetKind::PositionShift, TargetKind::EvenToken] {
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let a = without_time(one.install(|| train(config(kind, 1e-2))));
        let b = without_time(one.install(|| train(config(kind, 1e-2))));
        let c = without_time(two.install(|| train(config(kind, 1e-2))));
        assert_eq!(a, b, "{kind}: two single-thread runs differ");
        assert_eq!(a, c, "{kind}: 1 and 2 threads differ");
        let mut other = config(kind, 1e-2);
        other.data_seed += 1;
        assert_ne!(a.curve, without_time(train(other)).curve, "{kind}: the data seed changes the run");
    }
}

/// A learning rate that blows up stops the run, marks it diverged, and keeps finite
/// parameters.
#[test]
fn a_divergent_run_is_marked_and_stops() {
    let mut c = config(TargetKind::PositionShift, 1e30);
    c.steps = 200;
    let mut trainer = Trainer::new(c).unwrap();
    let record = trainer.run(&AtomicBool::new(false), |_| {}).unwrap();
    assert_eq!(record.outcome, Outcome::Diverged);
    assert!(record.steps_done < 200 && record.metrics.is_none());
    assert!(trainer.model().unwrap().params.data.iter().all(|v| v.is_finite()));
}

fn urpe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_urpe"))
}

const RUN: [&str; 14] = [
    "train",
    "--target",
    "position-id",
    "--family",
    "t5",
    "--urpe",
    "--depth",
    "1",
    "--width",
    "8",
    "--heads",
    "2",
    "--n",
    "6",
];

#[test]
fn train_writes_a_checkpoint_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = urpe().args(RUN).args(["--steps", "30", "--seed", "3", "--out", out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let record: RunRecord = serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!((record.outcome, record.steps_done, record.curve.len()), (Outcome::Finished, 30, 30));
    assert_eq!((record.config.init_seed, record.config.data_seed), (3, 3));
    let model: urpe::nn::Model<f32> = urpe::checkpoint::load(&out.join("model.safetensors")).unwrap();
    assert_eq!(model.config, record.config.model);
    // the same run again is refused without --force, accepted with it
    let again =
        urpe().args(RUN).args(["--steps", "30", "--seed", "3", "--out", out.to_str().unwrap()]).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let forced = urpe()
        .args(RUN)
        .args(["--steps", "30", "--seed", "3", "--force", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(forced.status.success());
    let second: RunRecord = serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(without_time(second), without_time(record), "the same seeds from the command line");
}

#[test]
fn train_rejects_bad_runs_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let cases: [(&[&str], &str); 5] = [
        (&["--ffn", "0"], "`ffn` = 0"),
        (&["--steps", "0"], "`steps` = 0"),
        (&["--lr=-1"], "`optim.lr` = -1"),
        (&["--n-max", "4"], "`n` = 6"),
        (&["--constant-fraction", "2"], "`constant_fraction` = 2"),
    ];
    for (extra, needle) in cases {
        let o = urpe().args(RUN).args(extra).args(["--out", out.to_str().unwrap()]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
    std::fs::write(dir.path().join("run.toml"), "target = \"position-id\"\nn = 6\nsteps = 5\n[model]\nfamily = \"t5\"\ndepth = 1\nwidth = 8\nheads = 2\nwidht = 3\n").unwrap();
    let o = urpe()
        .args(["train", "--config", dir.path().join("run.toml").to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("run.toml") && err.contains("widht") && err.contains("line 9"), "{err}");
    assert!(!out.exists(), "a rejected run wrote outputs");
}

#[test]
fn a_run_file_trains_like_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.toml");
    std::fs::write(&file, "target = \"position-id\"\nn = 6\nsteps = 30\nseed = 3\n[model]\nfamily = \"urpe\"\ndepth = 1\nwidth = 8\nheads = 2\n").unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    assert!(
        urpe()
            .args(["train", "--config", file.to_str().unwrap(), "--out", a.to_str().unwrap()])
            .output()
            .unwrap()
            .status
            .success()
    );
    assert!(
        urpe()
            .args(RUN)
            .args(["--steps", "30", "--seed", "3", "--out", b.to_str().unwrap()])
            .output()
            .unwrap()
            .status
            .success()
    );
    let read = |p: &std::path::Path| -> RunRecord {
        serde_json::from_slice(&std::fs::read(p.join("metrics.json")).unwrap()).unwrap()
    };
    assert_eq!(without_time(read(&a)), without_time(read(&b)));
}

/// Ctrl-C (SIGINT) stops after the current step, saves the model, marks the run and exits 130.
#[test]
fn ctrl_c_stops_cleanly_and_keeps_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut child = urpe()
        .args(RUN)
        .args(["--steps", "1000000", "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "an interrupted run exits 130: {status:?}");
    let record: RunRecord = serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(record.outcome, Outcome::Interrupted);
    assert!(record.steps_done > 0 && record.steps_done < 1_000_000);
    let model: urpe::nn::Model<f32> = urpe::checkpoint::load(&out.join("model.safetensors")).unwrap();
    assert!(model.params.data.iter().all(|v| v.is_finite()));
}

/// A run stopped between steps, saved, loaded and continued equals the run that was never
/// stopped, bit for bit (curve, metrics), wherever it was stopped.
#[test]
fn a_saved_and_resumed_run_equals_the_uninterrupted_one() {
    for kind in [TargetKind::PositionShift, TargetKind::PositionId] {
        let whole = without_time(train(config(kind, 3e-3)));
        for stop_at in [1, 17, 39] {
            let stop = AtomicBool::new(false);
            let mut first = Trainer::new(config(kind, 3e-3)).unwrap();
            let record = first
                .run(&stop, |r| {
                    if r.step == stop_at {
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                })
                .unwrap();
            assert_eq!((record.outcome, record.steps_done), (Outcome::Interrupted, stop_at));
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state.safetensors");
            urpe::train_state::save(&first.state().unwrap(), &path).unwrap();
            let state = urpe::train_state::load(&path).unwrap();
            assert_eq!(state, first.state().unwrap(), "save → load is exact");
            let mut second = Trainer::resume(state, &urpe::engine::Backend::Ndarray).unwrap();
            let resumed = without_time(second.run(&AtomicBool::new(false), |_| {}).unwrap());
            assert_eq!(resumed, whole, "{kind} stopped after step {stop_at}");
        }
    }
}

/// `urpe train` stopped by SIGINT writes its state; `--resume` finishes the run with the
/// metrics of an uninterrupted one; bad resumes exit 2.
#[test]
fn train_resume_continues_a_stopped_run() {
    let dir = tempfile::tempdir().unwrap();
    let (cut, whole) = (dir.path().join("cut"), dir.path().join("whole"));
    let steps = ["--steps", "4000", "--eval-sequences", "32"];
    let o = urpe().args(RUN).args(steps).args(["--out", whole.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut child = urpe()
        .args(RUN)
        .args(steps)
        .args(["--out", cut.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    assert_eq!(child.wait().unwrap().code(), Some(130), "an interrupted run exits 130");
    let read = |p: &std::path::Path| -> RunRecord {
        serde_json::from_slice(&std::fs::read(p.join("metrics.json")).unwrap()).unwrap()
    };
    let stopped = read(&cut);
    assert_eq!(stopped.outcome, Outcome::Interrupted, "the run finished before the signal: make it longer");
    assert!(cut.join("state.safetensors").exists());
    let o = urpe().args(["train", "--resume", "--out", cut.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!cut.join("state.safetensors").exists(), "a finished run removes its state");
    let (a, b) = (read(&cut), read(&whole));
    assert_eq!((a.outcome, a.steps_done), (Outcome::Finished, 4000));
    assert_eq!(a.metrics, b.metrics);
    assert_eq!(a.curve, b.curve);
    // nothing to resume, and a file that is not a state: exit 2 naming the file
    let o = urpe().args(["train", "--resume", "--out", cut.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("state.safetensors") && err.contains("--resume"), "{err}");
    std::fs::copy(cut.join("model.safetensors"), cut.join("state.safetensors")).unwrap();
    let o = urpe().args(["train", "--resume", "--out", cut.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("not a saved training state"), "{err}");
    assert!(err.contains("its `format` metadata is `urpe-checkpoint-v1`") && !err.contains("Some("), "{err}");
}

/// `urpe train`'s flags and a run file take their defaults from one place: a run given only
/// its target, length and model gets the same complete configuration either way.
#[test]
fn the_flags_and_a_run_file_share_their_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.toml");
    std::fs::write(
        &file,
        "target = \"position-id\"\nn = 6\n[model]\nfamily = \"urpe\"\ndepth = 1\nwidth = 8\nheads = 2\n",
    )
    .unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let o = urpe().args(["train", "--config", file.to_str().unwrap(), "--out", a.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = urpe().args(RUN).args(["--out", b.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |p: &std::path::Path| -> RunRecord {
        serde_json::from_slice(&std::fs::read(p.join("metrics.json")).unwrap()).unwrap()
    };
    let (from_file, from_flags) = (read(&a).config, read(&b).config);
    assert_eq!(from_file, from_flags);
    assert_eq!((from_file.steps, from_file.batch, from_file.optim.lr), (2000, 64, 1e-3), "the documented defaults");
}

/// The README's BOS runs (position-id, n = 8, vocabulary 8, 300 steps): with a BOS row and the
/// causal mask, nope learns the constant inputs to accuracy above 0.9 (1.00 measured); the
/// same model without the mask, and causal nope without the BOS row, are bound
/// (docs/theory.md §7) and stay at the ceiling 1/8 and the cross-entropy floor ln 8.
#[test]
fn a_bos_row_lets_causal_nope_learn_position_and_only_causal() {
    let dir = tempfile::tempdir().unwrap();
    let run = |flags: &[&str], name: &str| -> RunRecord {
        let out = dir.path().join(name);
        let o = Command::new(env!("CARGO_BIN_EXE_urpe"))
            .args(["train", "--target", "position-id", "--family", "nope", "--n", "8", "--vocab", "8", "--depth", "2"])
            .args(["--width", "32", "--heads", "4", "--steps", "300", "--lr", "3e-3", "--out"])
            .arg(&out)
            .args(flags)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap()
    };
    let constant = |r: &RunRecord| {
        let v = serde_json::to_value(&r.metrics).unwrap();
        (v["constant"]["accuracy"].as_f64().unwrap(), v["constant"]["cross_entropy"].as_f64().unwrap())
    };
    let free = run(&["--causal", "--bos"], "causal-bos");
    assert!(free.config.model.bos && !free.config.model.barrier_bound());
    assert!(constant(&free).0 > 0.9, "{:?}", constant(&free));
    for (flags, name) in [(&["--bos"][..], "bos"), (&["--causal"][..], "causal")] {
        let bound = run(flags, name);
        assert!(bound.config.model.barrier_bound(), "{name}");
        let (accuracy, cross_entropy) = constant(&bound);
        assert!(accuracy <= 0.125 + 1e-9, "{name}: accuracy {accuracy}");
        assert!(cross_entropy >= 8f64.ln() * (1.0 - 1e-6), "{name}: cross-entropy {cross_entropy}");
    }
}
