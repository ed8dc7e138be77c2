//! `urpe init`: a freshly initialised model saved as a checkpoint.

use super::model_args::ModelArgs;
use super::outln;
use crate::error::Result;
use crate::nn::Model;
use std::path::PathBuf;

/// Initialise a model (N(0, 0.02) weights, zero biases, C = ones) and save it.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  urpe init --family t5 --urpe --depth 2 --width 32 --heads 4 --n-max 16 --d-in 8 --d-out 8 --out m.safetensors
  urpe init --config experiments/model.toml --seed 3 --out m.safetensors")]
pub struct Args {
    /// Model configuration file, TOML (or JSON when the name ends in .json), instead of
    /// the model flags.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["family", "depth", "width", "heads", "n_max"])]
    config: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// Seed of the initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Checkpoint to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let config = match &a.config {
        Some(path) => super::model_args::read_config_file(path)?,
        None => a.model.resolve()?,
    };
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
