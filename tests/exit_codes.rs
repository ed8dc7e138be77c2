//! The exit-code table of `urpe --help` applied by the commands: 0 success (also when the
//! reader closes standard output early), 2 bad input, 3 a diverged training run, 130 an
//! interrupted train or sweep.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn urpe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_urpe"))
}

const TRAIN: [&str; 13] = [
    "train",
    "--target",
    "position-shift",
    "--family",
    "t5",
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
fn help_prints_the_exit_code_table() {
    let o = urpe().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    for line in ["0    success", "1    internal failure", "2    bad input", "3    `urpe train`", "130  interrupted"] {
        assert!(text.contains(line), "--help lacks {line:?}:\n{text}");
    }
}

/// A learning rate of 1e30 makes the loss non-finite: the record is saved and marked
/// diverged, and the command exits 3 (not 0, not the bad-input 2).
#[test]
fn a_diverged_train_exits_3_and_keeps_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o =
        urpe().args(TRAIN).args(["--steps", "200", "--lr", "1e30", "--out", out.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "stderr: {err}");
    assert!(err.contains("diverged"), "{err}");
    let record: urpe::train::RunRecord =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(record.outcome, urpe::train::Outcome::Diverged);
    // a healthy run of the same model exits 0: the code above is about divergence
    let ok = urpe().args(TRAIN).args(["--steps", "5", "--force", "--out", out.to_str().unwrap()]).output().unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
}

/// `urpe bound … | head -1`: the reader closes the pipe after one line; the command ends
/// quietly with 0, no panic message.
#[test]
fn a_closed_stdout_ends_quietly() {
    for args in [
        &["analyze", "--family", "t5", "--depth", "1", "--width", "8", "--heads", "2", "--random-init", "2"][..],
        &["bound", "--target", "position-shift", "--n", "16"][..],
    ] {
        let mut child = urpe().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        // the reader is dropped here: the pipe is closed with output still to come
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!first.is_empty(), "{args:?}: no first line");
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
    }
}

/// SIGINT stops a sweep: the stopped job's state is saved, the command exits 130 and names
/// what is left and where its state is (continuing it is tested in tests/sweep.rs).
#[test]
fn an_interrupted_sweep_exits_130_and_keeps_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exp.toml");
    let text = r#"
name = "stop"
[defaults]
families = ["t5"]
seeds = [1]
steps = 200000
batch = 8
eval = { sequences = 16 }
[[grid]]
targets = [{ kind = "position-shift", n = 8, d = 2 }]
depths = [1]
widths = [8]
"#;
    std::fs::write(&file, text).unwrap();
    let out = dir.path().join("results");
    let child = urpe()
        .args(["sweep", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("1 runs left") && err.contains("partial"), "{err}");
    assert_eq!(std::fs::read_dir(out.join("partial")).unwrap().count(), 1, "the stopped job's state is saved");
}
