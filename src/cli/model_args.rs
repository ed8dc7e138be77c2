//! Model-configuration flags shared by the commands that build a model.

use crate::config::{Activation, InputKind, ModelConfig, ModelSpec, Norm, OutputKind, Variant};
use crate::error::{Error, Result};
use crate::normaliser::Attention;

/// A model given by flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Position family: nope, ape-learned, ape-sin, t5, t5-bucketed, alibi, rope, shaw-key,
    /// shaw-value, xl, kerple, xpos, fire, cope (with --causal); `urpe` = t5 with the gate;
    /// FAMILY+urpe adds the gate to any family.
    #[arg(long, value_parser = parse_variant)]
    pub family: Option<Variant>,
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
    /// Attention normaliser: softmax, sink (a learned logit per head in the denominator),
    /// sigmoid (σ(s − log n)), relu (ReLU(s)/n), stick-breaking (with --causal) or
    /// differential (softmax(S¹) − λ·softmax(S²) from the halves of each head; an even head
    /// width, a family whose score term is a bias) [default: softmax].
    #[arg(long, value_parser = parse_attention)]
    pub attention: Option<Attention>,
    /// Place a learned vector (`bos`) before every sequence: the blocks see n + 1 rows, the
    /// output keeps n.
    #[arg(long)]
    pub bos: bool,
}

/// What a model reads and writes, given by flags (`urpe init`, `urpe analyze`; `urpe train`
/// takes both from the target).
#[derive(Debug, Clone, clap::Args)]
pub struct IoArgs {
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

impl IoArgs {
    /// The input the flags give, if any.
    pub fn input(&self) -> Option<InputKind> {
        match (self.vocab, self.d_in) {
            (Some(vocab), _) => Some(InputKind::Tokens { vocab }),
            (_, Some(d_in)) => Some(InputKind::Real { d_in }),
            (None, None) => None,
        }
    }

    /// The output the flags give, if any.
    pub fn output(&self) -> Option<OutputKind> {
        match (self.classes, self.d_out) {
            (Some(classes), _) => Some(OutputKind::Classes { classes }),
            (_, Some(d_out)) => Some(OutputKind::Real { d_out }),
            (None, None) => None,
        }
    }
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
    value
        .ok_or_else(|| Error::Input(format!("{flag} is required (or give the whole configuration with --config FILE)")))
}

impl ModelArgs {
    /// The flags as a specification; n_max, input and output (from `io`, when given) stay
    /// open where not given.
    pub fn spec(&self, io: Option<&IoArgs>) -> Result<ModelSpec> {
        let input = io.and_then(IoArgs::input);
        let output = io.and_then(IoArgs::output);
        Ok(ModelSpec {
            family: required(self.family, "--family")?,
            urpe: self.urpe,
            depth: required(self.depth, "--depth")?,
            width: required(self.width, "--width")?,
            heads: required(self.heads, "--heads")?,
            ffn: self.ffn,
            activation: self.activation,
            norm: self.norm,
            causal: self.causal,
            n_max: self.n_max,
            share_position: Some(!self.per_layer_position),
            input,
            output,
            t5_buckets: None,
            t5_max_distance: None,
            rope_base: None,
            attention: self.attention,
            bos: self.bos,
        })
    }

    /// The validated configuration; every field must be given.
    pub fn resolve(&self, io: &IoArgs) -> Result<ModelConfig> {
        let spec = self.spec(Some(io))?;
        required(spec.n_max, "--n-max")?;
        required(spec.input, "--vocab V (tokens) or --d-in D (real vectors)")?;
        required(spec.output, "--classes C or --d-out D")?;
        Ok(spec.resolve()?)
    }
}

/// `--attention`: a normaliser's name.
fn parse_attention(name: &str) -> std::result::Result<Attention, String> {
    Attention::by_name(name).ok_or_else(|| format!("expected one of {}", Attention::names()))
}

/// `--family`: a variant label (see [`Variant::parse`]).
fn parse_variant(label: &str) -> std::result::Result<Variant, String> {
    Variant::parse(label).map_err(|e| e.allowed)
}
