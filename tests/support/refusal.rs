//! `urpe train` with a setting that must be refused: exit 2 and nothing written.

use std::process::Command;

/// Runs `urpe train --target position-id` with `args` and a tiny model into a fresh folder,
/// asserts exit code 2 and that the folder was not created, and returns the error text.
pub fn train_refused(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_urpe"))
        .args(["train", "--target", "position-id"])
        .args(args)
        .args(["--n", "8", "--vocab", "8", "--depth", "1", "--width", "8", "--heads", "2", "--steps", "2", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!out.exists(), "nothing written");
    err
}
