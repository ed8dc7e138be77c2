//! Model-configuration flags shared by the commands that build a model.

use crate::config::{Activation, Family, InputKind, ModelConfig, ModelSpec, Norm, OutputKind};
use crate::error::{Error, Result};
use std::path::PathBuf;

/// A model, from a configuration file or from flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Model configuration file, TOML (or JSON when the name ends in .json); replaces the
    /// model flags below.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["family", "depth", "width", "heads", "n_max"])]
    pub config: Option<PathBuf>,
    /// Position family (`urpe` = t5 with the gate).
    #[arg(long, value_enum)]
    pub family: Option<Family>,
    /// Add the URPE gate (Toeplitz C after the softmax) to the family.
    #[arg(long)]
    pub urpe: bool,
    /// Number of blocks.
    #[arg(long)]
    pub depth: Option<usize>,
    /// Model width d.
    #[arg(long)]
    pub width: Option<usize>,
    /// Attention heads (must divide the width).
    #[arg(long)]
    pub heads: Option<usize>,
    /// Feed-forward width [default: 4·width].
    #[arg(long)]
    pub ffn: Option<usize>,
    /// Feed-forward activation [default: gelu].
    #[arg(long, value_enum)]
    pub activation: Option<Activation>,
    /// LayerNorm placement [default: post].
    #[arg(long, value_enum)]
    pub norm: Option<Norm>,
    /// Causal attention mask.
    #[arg(long)]
    pub causal: bool,
    /// Longest sequence the model accepts.
    #[arg(long)]
    pub n_max: Option<usize>,
    /// Give every layer its own position parameters (default: shared across layers).
    #[arg(long)]
    pub per_layer_position: bool,
    /// Token input with this vocabulary.
    #[arg(long, conflicts_with = "d_in")]
    pub vocab: Option<usize>,
    /// Real input with this many features.
    #[arg(long)]
    pub d_in: Option<usize>,
    /// Class output with this many classes.
    #[arg(long, conflicts_with = "d_out")]
    pub classes: Option<usize>,
    /// Real output with this many features.
    #[arg(long)]
    pub d_out: Option<usize>,
}

/// Reads a model configuration file (TOML, or JSON for `.json`).
pub fn read_config_file(path: &std::path::Path) -> Result<ModelConfig> {
    let bytes = crate::io::read(path)?;
    let text = String::from_utf8(bytes).map_err(|_| Error::file(path, "not UTF-8 text"))?;
    let parsed = if path.extension().is_some_and(|e| e == "json") {
        ModelConfig::from_json(&text)
    } else {
        ModelConfig::from_toml(&text)
    };
    parsed.map_err(|e| Error::file(path, format!("invalid model configuration: {}", e.trim_end())))
}

fn required<T>(value: Option<T>, flag: &str) -> Result<T> {
    value.ok_or_else(|| Error::Input(format!("{flag} is required (or give the whole model with --config FILE)")))
}

impl ModelArgs {
    /// The validated configuration. `io` supplies input and output kinds when the flags
    /// leave them out (e.g. from a target).
    pub fn resolve(&self, io: Option<(InputKind, OutputKind)>) -> Result<ModelConfig> {
        if let Some(path) = &self.config {
            return read_config_file(path);
        }
        let (family, depth) = (required(self.family, "--family")?, required(self.depth, "--depth")?);
        let (width, heads) = (required(self.width, "--width")?, required(self.heads, "--heads")?);
        let n_max = required(self.n_max, "--n-max")?;
        let input = match (self.vocab, self.d_in, io) {
            (Some(vocab), _, _) => InputKind::Tokens { vocab },
            (_, Some(d_in), _) => InputKind::Real { d_in },
            (None, None, Some((input, _))) => input,
            (None, None, None) => {
                return Err(Error::Input("give the input with --vocab V (tokens) or --d-in D (real vectors)".into()));
            }
        };
        let output = match (self.classes, self.d_out, io) {
            (Some(classes), _, _) => OutputKind::Classes { classes },
            (_, Some(d_out), _) => OutputKind::Real { d_out },
            (None, None, Some((_, output))) => output,
            (None, None, None) => return Err(Error::Input("give the output with --classes C or --d-out D".into())),
        };
        Ok(ModelSpec {
            family,
            urpe: self.urpe,
            depth,
            width,
            heads,
            ffn: self.ffn,
            activation: self.activation,
            norm: self.norm,
            causal: self.causal,
            n_max,
            share_position: Some(!self.per_layer_position),
            input,
            output,
            t5_buckets: None,
            t5_max_distance: None,
            rope_base: None,
        }
        .resolve()?)
    }
}
