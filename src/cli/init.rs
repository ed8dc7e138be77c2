//! `urpe init`: a freshly initialised model saved as a checkpoint.

use super::model_args::{IoArgs, ModelArgs};
use super::outln;
use crate::error::{Error, Result};
use crate::nn::Model;
use std::path::PathBuf;

/// Initialise a model (N(0, 0.02) weights, zero biases, C = ones) and save it.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  urpe init --family t5 --depth 1 --width 8 --heads 2 --n-max 8 --d-in 4 --d-out 4 --out m.ckpt
  urpe init --config experiments/model.toml --seed 3 --out m.safetensors
  urpe init --config experiments/model.toml --out m.safetensors --force   # replace m.safetensors

An existing --out file is kept unless --force is given.")]
pub struct Args {
    /// Model configuration file, TOML (or JSON when the name ends in .json), instead of
    /// the model flags.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["family", "depth", "width", "heads", "n_max"])]
    config: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    io: IoArgs,
    /// Seed of the initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Checkpoint to write.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing --out file.
    #[arg(long)]
    force: bool,
}

pub fn run(a: Args) -> Result<()> {
    let config = match &a.config {
        Some(path) => super::model_args::read_config_file(path)?,
        None => a.model.resolve(&a.io)?,
    };
    if a.out.exists() && !a.force {
        return Err(Error::file(&a.out, "exists: choose another --out, or add --force to replace it"));
    }
    let model = Model::<f32>::new(config, a.seed)?;
    crate::checkpoint::save(&model, &a.out)?;
    outln!(
        "saved a {} model ({} tensors, {} parameters) to {}",
        model.config.label(),
        model.layout.tensors.specs().len(),
        model.layout.tensors.len(),
        a.out.display()
    )?;
    outln!("config: {}", model.config.to_json())?;
    Ok(())
}
