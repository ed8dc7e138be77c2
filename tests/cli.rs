//! The command line end to end: outputs of `bound` and `witness`, `init` → `predict`,
//! `analyze` on a trained checkpoint and on random models, and one bad input per case,
//! each exiting 2 with one clear line and writing nothing.

use std::path::Path;
use std::process::{Command, Output};
use urpe::npy::{NpyArray, npy_f32_bytes, read_npy};

fn urpe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_urpe")).args(args).output().expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs a command that must fail with exit code 2 and one error line containing `needle`.
fn fails_with(args: &[&str], needle: &str) {
    let o = urpe(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: exit code; stderr: {err}");
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line expected, got {err:?}");
}

/// A usage error found by the argument parser: exit 2, the first line names the problem
/// (the parser adds the usage line and a pointer to --help).
fn usage_error(args: &[&str], needle: &str) {
    let o = urpe(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: exit code; stderr: {err}");
    assert!(err.lines().next().unwrap_or("").contains(needle), "{args:?}: {err:?} lacks {needle:?}");
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn npy_i64(path: &Path, shape: &[usize], values: &[i64]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!("{{'descr': '<i8', 'fortran_order': False, 'shape': ({},), }}", dims.join(", "));
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    values.iter().for_each(|v| bytes.extend(v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn bound_prints_the_exact_floor() {
    let o = urpe(&["bound", "--target", "position-shift", "--n", "16"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("0.0830078125"), "{}", stdout(&o));
    let o = urpe(&["bound", "--target", "position-id", "--n", "128", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["floor"]["accuracy"], 1.0 / 128.0);
    assert_eq!(v["floor"]["cross_entropy"], (128f64).ln());
}

#[test]
fn witness_beats_the_floor_and_its_twin_does_not() {
    let o = urpe(&["witness", "--n", "16", "--d", "8", "--heads", "2", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let floor = v["floor"].as_f64().unwrap();
    assert_eq!(floor, 0.0830078125);
    assert!(v["witness"]["constant_mse"].as_f64().unwrap() <= 1e-6);
    assert!(v["witness"]["general_mse"].as_f64().unwrap() <= 1e-6);
    assert!(v["t5_twin"]["constant_mse"].as_f64().unwrap() >= floor);
    let text = stdout(&urpe(&["witness", "--n", "12", "--d", "4"]));
    assert!(text.contains("below floor/1000") && text.contains("at or above the floor"), "{text}");
}

#[test]
fn init_then_predict_runs_the_saved_model() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("m.safetensors");
    let ckpt_s = ckpt.to_str().unwrap();
    let o = urpe(&[
        "init", "--family", "rope", "--urpe", "--depth", "2", "--width", "8", "--heads", "2", "--n-max", "6", "--d-in",
        "3", "--d-out", "2", "--out", ckpt_s,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let x = dir.path().join("x.npy");
    let values: Vec<f32> = (0..2 * 5 * 3).map(|i| (i as f32 * 0.37).sin()).collect();
    std::fs::write(&x, npy_f32_bytes(&[2, 5, 3], values.iter().copied())).unwrap();
    let y = dir.path().join("y.npy");
    let o = urpe(&["predict", "--checkpoint", ckpt_s, "--input", x.to_str().unwrap(), "--output", y.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let NpyArray::Float32(out) = read_npy(&y).unwrap() else { panic!("float32 output") };
    let model: urpe::nn::Model<f32> = urpe::checkpoint::load(&ckpt).unwrap();
    let input = ndarray::Array3::from_shape_vec((2, 5, 3), values).unwrap();
    let expected = model.predict(&urpe::nn::ModelInput::Real(input.view())).unwrap();
    assert_eq!(out.shape(), &[2, 5, 2]);
    assert_eq!(out.iter().copied().collect::<Vec<_>>(), expected.iter().copied().collect::<Vec<_>>());

    // token model: integer ids in, logits out
    let tok = dir.path().join("t.safetensors");
    let o = urpe(&[
        "init",
        "--family",
        "alibi",
        "--depth",
        "1",
        "--width",
        "4",
        "--heads",
        "2",
        "--n-max",
        "8",
        "--vocab",
        "5",
        "--classes",
        "3",
        "--out",
        tok.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let ids = dir.path().join("ids.npy");
    npy_i64(&ids, &[3, 4], &[0, 1, 2, 3, 4, 4, 4, 4, 1, 1, 2, 2]);
    let o = urpe(&[
        "predict",
        "--checkpoint",
        tok.to_str().unwrap(),
        "--input",
        ids.to_str().unwrap(),
        "--output",
        y.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read_npy(&y).unwrap().shape(), &[3, 4, 3]);
}

#[test]
fn bad_inputs_exit_2_with_one_clear_message_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let model_flags = ["--depth", "1", "--width", "8", "--heads", "2", "--n-max", "6", "--d-in", "3", "--d-out", "2"];
    let init = |family: &str, extra: &[&str], out: &str| {
        let mut args = vec!["init", "--family", family, "--out", out];
        args.extend_from_slice(&model_flags);
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };

    // configuration errors, from flags and from files
    fails_with(
        &[
            "init",
            "--family",
            "t5",
            "--depth",
            "1",
            "--width",
            "8",
            "--heads",
            "3",
            "--n-max",
            "6",
            "--d-in",
            "3",
            "--d-out",
            "2",
            "--out",
            &path("a.safetensors"),
        ],
        "`heads` = 3",
    );
    fails_with(
        &[
            "init",
            "--family",
            "t5",
            "--depth",
            "0",
            "--width",
            "8",
            "--heads",
            "2",
            "--n-max",
            "6",
            "--d-in",
            "3",
            "--d-out",
            "2",
            "--out",
            &path("a.safetensors"),
        ],
        "`depth` = 0",
    );
    usage_error(&["init", "--family", "fourier", "--out", &path("a.safetensors")], "invalid value 'fourier'");
    fails_with(&["init", "--family", "t5", "--out", &path("a.safetensors")], "--depth is required");
    std::fs::write(path("bad.toml"), "family = \"fourier\"\ndepth = 1\nwidth = 8\nheads = 2\nn_max = 4\ninput = { kind = \"real\", d_in = 2 }\noutput = { kind = \"real\", d_out = 2 }\n").unwrap();
    fails_with(&["init", "--config", &path("bad.toml"), "--out", &path("a.safetensors")], "unknown family `fourier`");
    std::fs::write(path("odd.toml"), "family = \"rope\"\ndepth = 1\nwidth = 6\nheads = 2\nn_max = 4\ninput = { kind = \"real\", d_in = 2 }\noutput = { kind = \"real\", d_out = 2 }\n").unwrap();
    fails_with(
        &["init", "--config", &path("odd.toml"), "--out", &path("a.safetensors")],
        "`heads` = 2: rope rotates pairs",
    );
    assert!(!Path::new(&path("a.safetensors")).exists(), "a failed init wrote a checkpoint");

    // checkpoint errors
    let ok = path("ok.safetensors");
    assert!(urpe(&refs(&init("xl", &[], &ok))).status.success());
    let x = path("x.npy");
    std::fs::write(&x, npy_f32_bytes(&[1, 4, 3], (0..12).map(|i| i as f32))).unwrap();
    let y = path("y.npy");
    fails_with(
        &["predict", "--checkpoint", &path("none.safetensors"), "--input", &x, "--output", &y],
        "none.safetensors: cannot read",
    );
    std::fs::write(path("junk.safetensors"), b"junk").unwrap();
    fails_with(
        &["predict", "--checkpoint", &path("junk.safetensors"), "--input", &x, "--output", &y],
        "not a safetensors file",
    );
    let bytes = std::fs::read(&ok).unwrap();
    std::fs::write(path("cut.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    fails_with(&["predict", "--checkpoint", &path("cut.safetensors"), "--input", &x, "--output", &y], "truncated");

    // input errors
    std::fs::write(path("wide.npy"), npy_f32_bytes(&[1, 4, 5], (0..20).map(|i| i as f32))).unwrap();
    fails_with(
        &["predict", "--checkpoint", &ok, "--input", &path("wide.npy"), "--output", &y],
        "5 features per position but the model reads d_in = 3",
    );
    std::fs::write(path("long.npy"), npy_f32_bytes(&[1, 7, 3], (0..21).map(|i| i as f32))).unwrap();
    fails_with(&["predict", "--checkpoint", &ok, "--input", &path("long.npy"), "--output", &y], "n_max = 6");
    std::fs::write(path("flat.npy"), npy_f32_bytes(&[12], (0..12).map(|i| i as f32))).unwrap();
    fails_with(
        &["predict", "--checkpoint", &ok, "--input", &path("flat.npy"), "--output", &y],
        "float32 of shape [12], but the model",
    );
    npy_i64(Path::new(&path("ids.npy")), &[1, 4], &[0, 1, 2, 3]);
    fails_with(
        &["predict", "--checkpoint", &ok, "--input", &path("ids.npy"), "--output", &y],
        "integer of shape [1, 4], but the model",
    );
    std::fs::write(path("notnpy.npy"), b"1,2,3\n").unwrap();
    fails_with(&["predict", "--checkpoint", &ok, "--input", &path("notnpy.npy"), "--output", &y], "not a .npy file");
    let tok = path("tok.safetensors");
    assert!(
        urpe(&[
            "init",
            "--family",
            "t5",
            "--depth",
            "1",
            "--width",
            "4",
            "--heads",
            "1",
            "--n-max",
            "8",
            "--vocab",
            "5",
            "--classes",
            "3",
            "--out",
            &tok
        ])
        .status
        .success()
    );
    npy_i64(Path::new(&path("big.npy")), &[1, 4], &[0, 1, 5, 3]);
    fails_with(
        &["predict", "--checkpoint", &tok, "--input", &path("big.npy"), "--output", &y],
        "token id 5 is out of range",
    );
    npy_i64(Path::new(&path("neg.npy")), &[1, 2], &[0, -1]);
    fails_with(
        &["predict", "--checkpoint", &tok, "--input", &path("neg.npy"), "--output", &y],
        "token id -1 is negative",
    );
    assert!(!Path::new(&y).exists(), "a failed predict wrote an output");

    // command-line value errors
    fails_with(&["bound", "--target", "position-shift", "--n", "0"], "--n must be at least 1");
    fails_with(&["witness", "--n", "8", "--d", "6", "--heads", "4"], "`heads` = 4");
}

/// Splits a command line written as one string (no quoting needed in these tests).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// `urpe analyze` on a checkpoint from `urpe train` (text, JSON, figures) and on random
/// models of a barrier-bound and a free family; bad input exits 2 and writes nothing.
#[test]
fn analyze_a_trained_checkpoint_and_random_models() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let train = "train --target position-shift --family urpe --depth 2 --width 8 --heads 2 --n 8 --steps 30 --seed 1";
    let o = urpe(&[words(train), vec!["--out", run.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ckpt = run.join("model.safetensors");
    let ckpt = ckpt.to_str().unwrap();
    let o = urpe(&["analyze", "--checkpoint", ckpt]);
    let text = stdout(&o);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for needle in [
        "positional rank on 256 constant inputs",
        "row sums of A ⊙ C, block 1 head 1,",
        "row sums of A ⊙ C, block 2 head 2,",
        "pos.urpe",
        "block 2",
        "docs/theory.md: not barrier-bound",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    assert!(!text.contains("layer 0") && !text.contains("head 0"), "blocks and heads count from 1:\n{text}");
    let figs = dir.path().join("figs");
    let o = urpe(&["analyze", "--checkpoint", ckpt, "--json", "--figures", figs.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["models"][0]["rank"].as_array().unwrap().len(), 4, "input, 2 blocks, output");
    assert_eq!(v["barrier_bound_by_theory"], false);
    let heads = |kind: &str| -> Vec<(u64, u64)> {
        let list = v["models"][0][kind].as_array().unwrap();
        list.iter().map(|h| (h["block"].as_u64().unwrap(), h["head"].as_u64().unwrap())).collect()
    };
    assert_eq!(heads("heads_constant"), [(1, 1), (1, 2), (2, 1), (2, 2)], "JSON counts from 1 too");
    let spectra = v["models"][0]["spectra"].as_array().unwrap();
    assert_eq!(spectra.iter().map(|s| s["head"].as_u64().unwrap()).min(), Some(1));
    for name in ["positional_rank", "toeplitz_spectra"] {
        for ext in ["png", "svg"] {
            assert!(figs.join(format!("{name}.{ext}")).metadata().unwrap().len() > 1000, "{name}.{ext}");
        }
    }
    let o = urpe(&words("analyze --family rope --depth 2 --width 8 --heads 2 --random-init 2"));
    let text = stdout(&o);
    assert!(
        o.status.success() && text.contains("rope: barrier-bound: positional rank 0 at every stage in 2 of 2"),
        "{text}"
    );
    let o = urpe(&words("analyze --family ape-learned --depth 1 --width 8 --heads 2 --random-init 2"));
    let text = stdout(&o);
    assert!(o.status.success() && text.contains("NOT barrier-bound: positive positional rank in 2 of 2"), "{text}");
    fails_with(&["analyze"], "give --checkpoint FILE");
    fails_with(&["analyze", "--checkpoint", "missing.safetensors"], "missing.safetensors");
    fails_with(&words("analyze --family t5 --random-init 2"), "--depth is required");
    fails_with(&words("analyze --family t5 --depth 1 --width 8 --heads 2 --random-init 0"), "--random-init");
    fails_with(&words("analyze --family t5 --depth 1 --width 8 --heads 3 --random-init 1"), "heads");
    fails_with(&["analyze", "--checkpoint", ckpt, "--n", "99"], "99");
    let empty = dir.path().join("nothing");
    fails_with(
        &["analyze", "--checkpoint", ckpt, "--rank-inputs", "0", "--figures", empty.to_str().unwrap()],
        "--rank-inputs",
    );
    assert!(!empty.exists(), "a failed analyze wrote its figures folder");
}

/// Every help's "Examples:" block (the top level's and each subcommand's, rendered at the
/// default 100 columns): each line is one whole command, never wrapped or continued with a
/// backslash, and parses as written, so a pasted line runs.
#[test]
fn every_help_example_is_one_line_that_parses() {
    use clap::{CommandFactory, Parser};
    let subcommands: Vec<String> =
        urpe::cli::Cli::command().get_subcommands().map(|c| c.get_name().to_string()).collect();
    assert!(subcommands.len() >= 11, "{subcommands:?}");
    let mut checked = 0;
    for args in std::iter::once(vec!["--help"]).chain(subcommands.iter().map(|s| vec![s.as_str(), "--help"])) {
        let o = Command::new(env!("CARGO_BIN_EXE_urpe")).args(&args).env("COLUMNS", "100").output().unwrap();
        assert!(o.status.success(), "{args:?}");
        let help = stdout(&o);
        let (_, examples) = (help.split_once("Examples:\n").or_else(|| help.split_once("Example:\n")))
            .unwrap_or_else(|| panic!("{args:?}: no examples"));
        for line in examples.lines().take_while(|l| !l.trim().is_empty()) {
            let command = line.trim();
            assert!(line.chars().count() <= 100, "{args:?}: {line:?} is longer than 100 columns");
            if command.starts_with("python ") {
                continue; // predict's example makes its input with numpy
            }
            assert!(command.starts_with("urpe "), "{args:?}: {line:?} is not a whole command (wrapped?)");
            assert!(!command.ends_with('\\'), "{args:?}: {line:?} continues on the next line");
            // what the shell passes on: no comment, no redirection
            let command = command.split(" #").next().unwrap().split(" > ").next().unwrap();
            if let Err(e) = urpe::cli::Cli::try_parse_from(command.split_whitespace()) {
                panic!("{args:?}: {command:?} does not parse:\n{e}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} example lines found");
}

/// `init` keeps an existing file unless --force is given, as `train` does.
#[test]
fn init_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let out_s = out.to_str().unwrap();
    let init = "init --family t5 --depth 1 --width 8 --heads 2 --n-max 8 --d-in 4 --d-out 4 --out";
    assert!(urpe(&[words(init), vec![out_s]].concat()).status.success());
    let first = std::fs::read(&out).unwrap();
    let again = [words(init), vec![out_s, "--seed", "7"]].concat();
    fails_with(&again, "m.safetensors: exists: choose another --out, or add --force");
    assert_eq!(std::fs::read(&out).unwrap(), first, "the refused init changed the file");
    assert!(urpe(&[again.clone(), vec!["--force"]].concat()).status.success());
    assert_ne!(std::fs::read(&out).unwrap(), first, "--force replaced the file");
}

/// `train` prints the target's limit in words: a floor on the error, a ceiling on the
/// accuracy; flags that do not apply to train name the ones that do.
#[test]
fn train_speaks_of_floors_ceilings_and_the_flags_the_user_types() {
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let model = "--family t5 --depth 1 --width 8 --heads 2 --steps 3 --eval-sequences 16";
    let o = urpe(&[words(&format!("train --target position-shift --n 8 {model} --out")), vec![&out("a")]].concat());
    let text = stdout(&o);
    assert!(o.status.success() && text.contains("floor on constant inputs: mse ≥ 0.0820\n"), "{text}");
    assert!(!text.contains('{'), "no raw JSON: {text}");
    let o = urpe(&[words(&format!("train --target position-id --n 16 {model} --out")), vec![&out("b")]].concat());
    let text = stdout(&o);
    assert!(
        o.status.success() && text.contains("ceiling on constant inputs: accuracy ≤ 0.0625, cross-entropy ≥ 2.7726\n"),
        "{text}"
    );
    let wrong = format!("train --target position-shift --n 8 {model} --d-in 4 --out");
    fails_with(&[words(&wrong), vec![&out("c")]].concat(), "--d-in 4: train sizes the model's input and output");
    fails_with(&[words(&wrong), vec![&out("c")]].concat(), "--d D");
    assert!(!dir.path().join("c").exists());
}

/// Each command's help lists each flag once and says what applies to that command.
#[test]
fn each_help_says_what_applies_to_its_command() {
    let help = |command: &str| stdout(&urpe(&[command, "--help"]));
    let train = help("train");
    assert_eq!(train.matches("--vocab <").count(), 1, "{train}");
    assert!(!train.contains("--d-in") && !train.contains("--classes"), "{train}");
    assert!(train.contains("Longest sequence the model accepts [default: --n]"), "{train}");
    for command in ["init", "analyze"] {
        let text = help(command);
        assert!(!text.contains("train:"), "{command}: {text}");
        assert_eq!(text.matches("--n-max <").count(), 1, "{command}: {text}");
    }
    assert!(help("analyze").contains("Longest sequence the model accepts [default: 16]"));
    let sweep = help("sweep");
    assert!(sweep.contains("DIR/partial/") && !sweep.contains("run again on resume"), "{sweep}");
}

/// A sweep says how many stopped runs it continues from DIR/partial/, and its progress
/// percentages are shares of the runs.
#[test]
fn a_sweep_reports_the_stopped_runs_it_continues_and_counts_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exp.toml");
    let text = r#"
name = "progress"
[[grid]]
targets = [{ kind = "position-shift", n = 4, d = 2 }]
families = ["t5", "urpe"]
depths = [1]
widths = [4]
seeds = [1, 2, 3, 4, 5]
steps = 20
batch = 4
eval = { sequences = 8 }
"#;
    std::fs::write(&file, text).unwrap();
    let out = dir.path().join("results");
    let e = urpe::experiment::Experiment::parse(text).unwrap();
    let jobs = e.jobs().unwrap();
    let store = urpe::experiment::Store::open(&out).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut trainer = urpe::train::Trainer::new(jobs[3].config.clone()).unwrap();
    trainer.run(&stop, |r| stop.store(r.step == 5, std::sync::atomic::Ordering::Relaxed)).unwrap();
    let partial = store.partial_for(&jobs[3].id);
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    urpe::train_state::save(&trainer.state().unwrap(), &partial).unwrap();
    let o = urpe(&["sweep", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--threads", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let continuing = format!("continuing 1 stopped run from {}", out.join("partial").display());
    assert!(err.contains(&continuing), "{err}");
    assert!(err.contains("10/10 runs (100%)"), "{err}");
    assert!(!partial.exists(), "the continued run's state is removed once stored");
}

/// `urpe plot` on a `urpe train` folder draws that run's curves (into DIR/figures or
/// --out); a folder that does not exist says so, and is not created.
#[test]
fn plot_a_training_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let train = "train --target position-id --family t5 --depth 1 --width 8 --heads 2 --n 6 --vocab 6 --steps 20 --eval-every 5 --eval-sequences 16 --seed 1";
    let o = urpe(&[words(train), vec!["--out", run.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = urpe(&["plot", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for ext in ["png", "svg"] {
        assert!(run.join("figures").join(format!("training_run.{ext}")).is_file(), "no training_run.{ext}");
    }
    assert!(stdout(&o).contains("training_run.png"), "{}", stdout(&o));
    let svg = std::fs::read_to_string(run.join("figures/training_run.svg")).unwrap();
    assert!(svg.contains("held-out accuracy") && svg.contains("accuracy ceiling on constant inputs"));
    let out = dir.path().join("elsewhere");
    assert!(urpe(&["plot", run.to_str().unwrap(), "--out", out.to_str().unwrap()]).status.success());
    assert!(out.join("training_run.png").is_file());

    let missing = dir.path().join("missing");
    fails_with(&["plot", missing.to_str().unwrap()], "missing: does not exist");
    assert!(!missing.exists(), "plot created the folder it was given");
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    fails_with(&["plot", dir.path().join("empty").to_str().unwrap()], "holds no runs");
    std::fs::write(run.join("metrics.json"), "{}").unwrap();
    fails_with(&["plot", run.to_str().unwrap()], "not the metrics.json of a `urpe train` run");
}

/// A store of a tiny two-target sweep (a real target, a token task evaluated every 2 steps),
/// written into `dir` through the library as `urpe sweep` writes it.
fn tiny_store(dir: &Path) -> Vec<urpe::experiment::StoredRun> {
    use urpe::experiment::{Experiment, Store, sweep::run_job};
    let e = Experiment::parse(
        r#"
name = "export-test"
[defaults]
families = ["t5", "urpe"]
seeds = [1, 2]
depths = [1]
widths = [4]
steps = 4
batch = 4
eval = { every = 2, sequences = 8 }
[[grid]]
targets = [{ kind = "position-shift", n = 4, d = 2 }, { kind = "even-token", n = 4, vocab = 4 }]
"#,
    )
    .unwrap();
    let store = Store::open(dir).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let runs: Vec<_> = e.jobs().unwrap().iter().map(|job| run_job(&e.name, job, &stop).unwrap().unwrap()).collect();
    runs.iter().for_each(|r| store.append(&store.file_for(None), r).unwrap());
    runs
}

/// Rows of a CSV written by `urpe export` (no cell in these tests needs quoting).
fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().map(|l| l.split(',').map(String::from).collect()).collect()
}

#[test]
fn export_writes_one_row_per_run_and_the_curves() {
    use urpe::export::{CURVE_COLUMNS, RUN_COLUMNS};
    use urpe::train::SetMetrics;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let runs = tiny_store(&store);
    let (csv, curves) = (dir.path().join("out/runs.csv"), dir.path().join("out/curves.csv"));
    let o = urpe(&[
        "export",
        store.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--curves",
        curves.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("(8 rows)"), "{}", stdout(&o));

    let rows = csv_rows(&csv);
    assert_eq!(rows[0], RUN_COLUMNS);
    assert_eq!(rows.len(), 1 + runs.len());
    let col = |name: &str| RUN_COLUMNS.iter().position(|c| *c == name).unwrap();
    for (row, run) in rows[1..].iter().zip(&runs) {
        assert_eq!(row.len(), RUN_COLUMNS.len());
        let c = &run.record.config;
        assert_eq!((row[col("run_id")].as_str(), row[col("family")].as_str()), (run.id.as_str(), run.family.as_str()));
        assert_eq!(row[col("target")], c.target.to_string());
        assert_eq!((row[col("norm")].as_str(), row[col("decay")].as_str()), ("post", "linear"));
        assert_eq!((row[col("outcome")].as_str(), row[col("steps_done")].as_str()), ("finished", "4"));
        assert_eq!(row[col("lr")].parse::<f64>().unwrap(), c.optim.lr);
        assert_eq!(row[col("git")], run.git);
        let m = run.record.metrics.as_ref().unwrap();
        match (&m.constant, &m.general) {
            (SetMetrics::Real { mse: constant }, SetMetrics::Real { mse: general }) => {
                assert_eq!(row[col("constant_mse")].parse::<f64>().unwrap(), *constant);
                assert_eq!(row[col("general_mse")].parse::<f64>().unwrap(), *general);
                assert!(row[col("constant_accuracy")].is_empty() && row[col("ceiling_accuracy")].is_empty());
                assert!(row[col("vocab")].is_empty() && row[col("d")] == "2");
                assert!(row[col("floor_mse")].parse::<f64>().unwrap() > 0.0);
            }
            (SetMetrics::Classes { accuracy, cross_entropy, .. }, SetMetrics::Classes { .. }) => {
                assert_eq!(row[col("constant_accuracy")].parse::<f64>().unwrap(), *accuracy);
                assert_eq!(row[col("constant_cross_entropy")].parse::<f64>().unwrap(), *cross_entropy);
                assert!(row[col("constant_mse")].is_empty() && row[col("floor_mse")].is_empty());
                assert!(row[col("d")].is_empty() && row[col("vocab")] == "4");
                assert_eq!(row[col("ceiling_accuracy")], "0.5");
            }
            _ => panic!("mixed metrics"),
        }
    }

    let rows = csv_rows(&curves);
    assert_eq!(rows[0], CURVE_COLUMNS);
    assert_eq!(rows.len(), 1 + runs.iter().map(|r| r.record.curve.len()).sum::<usize>());
    let general_cell = |row: &Vec<String>| !row[6].is_empty() || !row[8].is_empty();
    for run in &runs {
        let of: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == run.id).collect();
        assert_eq!(of.iter().map(|r| r[1].as_str()).collect::<Vec<_>>(), ["1", "2", "3", "4"]);
        // evaluated at step 2 (eval.every) and at the end (the final metrics), nowhere else
        assert_eq!(of.iter().map(|r| general_cell(r)).collect::<Vec<_>>(), [false, true, false, true]);
    }

    // bad input: exit 2, one line naming the path, nothing written
    let fresh = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    fails_with(&["export", &fresh("nowhere"), "--csv", &fresh("a.csv")], "nowhere: does not exist");
    assert!(!dir.path().join("nowhere").exists() && !dir.path().join("a.csv").exists());
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    fails_with(&["export", &fresh("empty"), "--csv", &fresh("a.csv")], "empty: holds no runs");
    std::fs::write(dir.path().join("file"), "not a folder").unwrap();
    let store = store.to_str().unwrap();
    let under_file = fresh("file/curves.csv");
    fails_with(&["export", store, "--csv", &fresh("a.csv"), "--curves", &under_file], "file: cannot create the folder");
    assert!(!dir.path().join("a.csv").exists(), "--csv was written although --curves failed");
    fails_with(&["export", store, "--csv", &fresh("out")], "out: is a folder");
    fails_with(&["export", store, "--csv", &fresh("a.csv"), "--curves", &fresh("a.csv")], "is also the --csv file");
    assert!(!dir.path().join("a.csv").exists());
    usage_error(&["export", store], "required arguments were not provided");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers.len(), 2, "only runs.csv and curves.csv: {leftovers:?}");
}
