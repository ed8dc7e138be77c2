//! `urpe train`: one training run from flags or a run file, with progress, Ctrl-C, a
//! checkpoint and a metrics JSON.

use super::model_args::ModelArgs;
use super::outln;
use super::runtime::{EngineArgs, stop_flag, with_threads};
use crate::error::{Error, Result};
use crate::optim::{Decay, OptimConfig, OptimizerKind};
use crate::theory::{Floor, TargetKind};
use crate::train::{
    EvalConfig, Metrics, Outcome, RunRecord, SetMetrics, StepReport, TrainConfig, TrainSpec, Trainer, defaults,
};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Train a model on a target; writes DIR/model.safetensors and DIR/metrics.json.
#[derive(Debug, clap::Args)]
#[command(
    mut_arg("n_max", |a| a.help("Longest sequence the model accepts [default: --n]")),
    after_help = "\
Examples:
  urpe train --target prefix-sum --family urpe --depth 2 --width 32 --heads 4 --n 16 --out runs/x
  urpe train --target position-id --family t5 --depth 2 --width 32 --heads 4 --n 16 --out runs/pi
  urpe train --config run.toml --out runs/y      # a run file: see README, \"Training\"
  urpe train --resume --out runs/x               # continue a run stopped with Ctrl-C

Outputs: DIR/model.safetensors (the final model; on Ctrl-C the last one trained) and
DIR/metrics.json (config, seeds, curve, final metrics on constant and general inputs, the
target's floor, wall time). Same seeds give bit-identical metrics at any --threads. A run
stopped with Ctrl-C (or SIGTERM) also writes DIR/state.safetensors (parameters, Adam's
moments, the data stream's position, the curve): --resume continues it, bit-identically on
the ndarray engine.")]
pub struct Args {
    /// Run file (TOML, or JSON when the name ends in .json) instead of the run flags.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["target", "family"])]
    config: Option<PathBuf>,
    /// Target function.
    #[arg(long, value_enum)]
    target: Option<TargetKind>,
    /// Sequence length.
    #[arg(long)]
    n: Option<usize>,
    /// Features per position (real targets).
    #[arg(long, default_value_t = defaults::d())]
    d: usize,
    /// Vocabulary (token targets).
    #[arg(long, default_value_t = defaults::vocab())]
    vocab: usize,
    #[command(flatten)]
    model: ModelArgs,
    /// Not for train (the model's input follows the target): see --d and --vocab.
    #[arg(long, hide = true)]
    d_in: Option<usize>,
    /// Not for train (the model's output follows the target).
    #[arg(long, hide = true)]
    d_out: Option<usize>,
    /// Not for train (the model's output follows the target).
    #[arg(long, hide = true)]
    classes: Option<usize>,
    /// Optimiser steps.
    #[arg(long, default_value_t = defaults::steps())]
    steps: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = defaults::batch())]
    batch: usize,
    /// Share of constant sequences in each batch.
    #[arg(long, default_value_t = defaults::constant_fraction())]
    constant_fraction: f64,
    /// Optimiser.
    #[arg(long, value_enum, default_value_t = OptimConfig::default().kind)]
    optimizer: OptimizerKind,
    /// Peak learning rate.
    #[arg(long, default_value_t = OptimConfig::default().lr)]
    lr: f64,
    /// Weight decay (L2 for adam, decoupled for adamw).
    #[arg(long, default_value_t = OptimConfig::default().weight_decay)]
    weight_decay: f64,
    /// Linear warm-up steps.
    #[arg(long, default_value_t = OptimConfig::default().warmup)]
    warmup: usize,
    /// Decay after warm-up.
    #[arg(long, value_enum, default_value_t = OptimConfig::default().decay)]
    decay: Decay,
    /// Clip the gradient norm to this value.
    #[arg(long)]
    clip: Option<f64>,
    /// Seed of the initialisation and the data (see --init-seed, --data-seed).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Seed of the initialisation [default: --seed].
    #[arg(long)]
    init_seed: Option<u64>,
    /// Seed of the training batches [default: --seed].
    #[arg(long)]
    data_seed: Option<u64>,
    /// Evaluate every this many steps (0: at the end only).
    #[arg(long, default_value_t = EvalConfig::default().every)]
    eval_every: usize,
    /// Sequences in each held-out set (constant, general).
    #[arg(long, default_value_t = EvalConfig::default().sequences)]
    eval_sequences: usize,
    /// Worker threads [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    engine: EngineArgs,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Replace the outputs of an earlier run in --out.
    #[arg(long)]
    force: bool,
    /// Continue the run stopped in --out (from --out/state.safetensors, which a stopped run
    /// writes); the run's settings come from the state, so no run flags are needed.
    #[arg(long, conflicts_with_all = ["config", "target", "family", "force"])]
    resume: bool,
}

fn run_config(a: &Args) -> Result<TrainConfig> {
    if let Some(path) = &a.config {
        let text = String::from_utf8(crate::io::read(path)?).map_err(|_| Error::file(path, "not UTF-8 text"))?;
        let json = path.extension().is_some_and(|e| e == "json");
        return TrainConfig::parse(&text, json).map_err(|e| Error::file(path, format!("invalid run: {e}")));
    }
    let target =
        a.target.ok_or_else(|| Error::Input("--target is required (or give a run file with --config FILE)".into()))?;
    let n = a.n.ok_or_else(|| Error::Input("--n is required".into()))?;
    for (flag, given) in [("--d-in", a.d_in), ("--d-out", a.d_out), ("--classes", a.classes)] {
        if let Some(v) = given {
            return Err(Error::Input(format!(
                "{flag} {v}: train sizes the model's input and output from the target; give the \
                 features per position with --d D (real targets, default {}) or the vocabulary with \
                 --vocab V (token targets, default {})",
                defaults::d(),
                defaults::vocab()
            )));
        }
    }
    let spec = TrainSpec {
        target,
        n,
        d: a.d,
        vocab: a.vocab,
        model: a.model.spec(None)?,
        steps: a.steps,
        batch: a.batch,
        constant_fraction: a.constant_fraction,
        optim: OptimConfig {
            kind: a.optimizer,
            lr: a.lr,
            weight_decay: a.weight_decay,
            warmup: a.warmup,
            decay: a.decay,
            clip: a.clip,
            ..OptimConfig::default()
        },
        seed: a.seed,
        init_seed: a.init_seed,
        data_seed: a.data_seed,
        eval: EvalConfig { every: a.eval_every, sequences: a.eval_sequences, ..EvalConfig::default() },
    };
    Ok(TrainConfig::try_from(spec)?)
}

/// One line summary of a set's metrics.
pub fn describe(m: &SetMetrics) -> String {
    match m {
        SetMetrics::Real { mse } => format!("mse {mse:.6}"),
        SetMetrics::Classes { accuracy, cross_entropy, .. } => {
            format!("accuracy {accuracy:.4}, cross-entropy {cross_entropy:.4}")
        }
    }
}

/// A floor value for reading: four decimals, or three significant digits below 0.01.
fn bound_value(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.01 { format!("{v:.2e}") } else { format!("{v:.4}") }
}

/// The target's limit on constant inputs in words: a floor on the error of real targets, a
/// ceiling on the accuracy (and a floor on the cross-entropy) of class targets.
pub fn describe_floor(floor: &Floor) -> String {
    match *floor {
        Floor::Mse { mse } => format!("floor on constant inputs: mse ≥ {}", bound_value(mse)),
        Floor::Classes { accuracy, cross_entropy } => format!(
            "ceiling on constant inputs: accuracy ≤ {}, cross-entropy ≥ {}",
            bound_value(accuracy),
            bound_value(cross_entropy)
        ),
    }
}

fn progress_line(r: &StepReport, start: Instant) -> String {
    let elapsed = start.elapsed().as_secs_f64();
    let eta = elapsed / r.step as f64 * (r.total - r.step) as f64;
    format!(
        "step {}/{} loss {:.6} lr {:.2e} ({:.1} s, ETA {:.1} s)",
        r.step, r.total, r.point.loss, r.point.lr, elapsed, eta
    )
}

/// Writes the checkpoint and the metrics of a finished (or stopped) run into `out`.
pub fn save_run(out: &Path, trainer: &Trainer, record: &RunRecord) -> Result<()> {
    crate::checkpoint::save(&trainer.model()?, &out.join("model.safetensors"))?;
    let json = serde_json::to_vec_pretty(record).map_err(|e| Error::Internal(e.to_string()))?;
    crate::io::write_atomic(&out.join("metrics.json"), &json)
}

fn report(record: &RunRecord, metrics: Option<&Metrics>) -> Result<()> {
    outln!(
        "{}: {} after {} steps in {:.1} s",
        record.config.model.label(),
        match record.outcome {
            Outcome::Finished => "finished",
            Outcome::Diverged => "DIVERGED (non-finite loss; the checkpoint is the last finite model)",
            Outcome::Interrupted => "interrupted",
        },
        record.steps_done,
        record.wall_seconds
    )?;
    outln!("{}", describe_floor(&record.floor))?;
    if let Some(m) = metrics {
        outln!("constant inputs: {}", describe(&m.constant))?;
        outln!("general inputs:  {}", describe(&m.general))?;
    }
    Ok(())
}

pub fn run(a: Args) -> Result<()> {
    let metrics_path = a.out.join("metrics.json");
    let state_path = a.out.join("state.safetensors");
    let backend = a.engine.backend()?;
    let mut trainer = if a.resume {
        if !state_path.exists() {
            return Err(Error::file(
                &state_path,
                "does not exist: --resume continues a run that was stopped (Ctrl-C) in --out",
            ));
        }
        Trainer::resume(crate::train_state::load(&state_path)?, &backend)?
    } else {
        let config = run_config(&a)?;
        if metrics_path.exists() && !a.force {
            return Err(Error::file(
                &metrics_path,
                "exists: an earlier run is there; choose another --out, add --force, or --resume a stopped one",
            ));
        }
        Trainer::with_backend(config, &backend)?
    };
    let stop = stop_flag()?;
    let start = Instant::now();
    let total = trainer.config.steps;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_position(trainer.steps_done() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} steps  loss {msg}  {elapsed} elapsed, ETA {eta}",
            )
            .expect("a valid template"),
        );
        bar
    });
    let every = (total / 20).max(1);
    let record = with_threads(a.threads, || {
        trainer.run(&stop, |r| match &bar {
            Some(bar) => {
                bar.set_position(r.step as u64);
                bar.set_message(format!("{:.6}", r.point.loss));
            }
            None if r.step.is_multiple_of(every) || r.step == r.total => eprintln!("{}", progress_line(&r, start)),
            None => {}
        })
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    save_run(&a.out, &trainer, &record)?;
    report(&record, record.metrics.as_ref())?;
    outln!("wrote {} and {}", a.out.join("model.safetensors").display(), metrics_path.display())?;
    match record.outcome {
        Outcome::Interrupted => {
            crate::train_state::save(&trainer.state()?, &state_path)?;
            return Err(Error::Interrupted(format!(
                "saved the training state; continue with: urpe train --resume --out {}",
                a.out.display()
            )));
        }
        _ if state_path.exists() => {
            std::fs::remove_file(&state_path).map_err(|e| Error::file(&state_path, format!("cannot remove: {e}")))?
        }
        _ => {}
    }
    if record.outcome == Outcome::Diverged {
        return Err(Error::Diverged(format!(
            "non-finite loss or gradient at step {}; the record is in {}",
            record.steps_done,
            metrics_path.display()
        )));
    }
    Ok(())
}
