//! Model configuration: typed, read from TOML or JSON, validated.
//!
//! A [`ModelSpec`] is what a user writes (optional fields take defaults, `family = "urpe"`
//! is accepted as shorthand); [`ModelSpec::resolve`] turns it into a complete, validated
//! [`ModelConfig`], the form stored in checkpoints.

mod variant;

pub use crate::error::ConfigError;
pub use crate::family::Family;
use crate::family::FamilyDims;
use crate::normaliser::Attention;
pub use variant::{ModelLabel, Variant};

use serde::{Deserialize, Serialize};

/// Where LayerNorm sits in a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Norm {
    /// h = LN(h + attn(h)); h = LN(h + ffn(h)).
    Post,
    /// h = h + attn(LN(h)); h = h + ffn(LN(h)); a final LN before the head.
    Pre,
    /// h = h + attn(h); h = h + ffn(h): no LayerNorm (the exact URPE witness needs it).
    None,
}

/// Activation of the feed-forward layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// GELU, exact form x·Φ(x) = x/2·(1 + erf(x/√2)).
    Gelu,
    /// max(x, 0).
    Relu,
}

/// What the model reads at each position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum InputKind {
    /// Integer token ids in 0..vocab, embedded by `embed.weight`.
    Tokens {
        /// Vocabulary size.
        vocab: usize,
    },
    /// Real vectors of d_in features, mapped by `input.weight`, `input.bias`.
    Real {
        /// Features per position.
        d_in: usize,
    },
}

/// What the model writes at each position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OutputKind {
    /// Logits over `classes` classes.
    Classes {
        /// Number of classes.
        classes: usize,
    },
    /// Real vectors of d_out features.
    Real {
        /// Features per position.
        d_out: usize,
    },
}

impl InputKind {
    /// Features (real) or vocabulary size (tokens).
    pub fn size(self) -> usize {
        match self {
            InputKind::Tokens { vocab } => vocab,
            InputKind::Real { d_in } => d_in,
        }
    }
}

impl OutputKind {
    /// Number of values the head writes per position.
    pub fn size(self) -> usize {
        match self {
            OutputKind::Classes { classes } => classes,
            OutputKind::Real { d_out } => d_out,
        }
    }
}

/// A model configuration as a user writes it; missing optional fields take defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Position family, as a variant label: a family, `urpe` (t5 with the gate) or
    /// `FAMILY+urpe`.
    pub family: Variant,
    /// URPE gate: multiply the attention probabilities by a learned Toeplitz C.
    #[serde(default)]
    pub urpe: bool,
    /// Number of blocks.
    pub depth: usize,
    /// Model width d.
    pub width: usize,
    /// Attention heads; must divide width.
    pub heads: usize,
    /// Feed-forward width (default 4·width).
    #[serde(default)]
    pub ffn: Option<usize>,
    /// Feed-forward activation (default gelu).
    #[serde(default)]
    pub activation: Option<Activation>,
    /// LayerNorm placement (default post).
    #[serde(default)]
    pub norm: Option<Norm>,
    /// Causal mask (default off).
    #[serde(default)]
    pub causal: bool,
    /// Longest sequence the model accepts (a training run defaults it to its n).
    #[serde(default)]
    pub n_max: Option<usize>,
    /// One set of position parameters for all layers (default true, as the official code).
    #[serde(default)]
    pub share_position: Option<bool>,
    /// Input kind and size (a training run derives it from its target).
    #[serde(default)]
    pub input: Option<InputKind>,
    /// Output kind and size (a training run derives it from its target).
    #[serde(default)]
    pub output: Option<OutputKind>,
    /// Buckets of t5-bucketed (default 32).
    #[serde(default)]
    pub t5_buckets: Option<usize>,
    /// Offset beyond which t5-bucketed saturates (default 128).
    #[serde(default)]
    pub t5_max_distance: Option<usize>,
    /// RoPE base θ: angle of pair k at position i is i·θ^(−2k/d_h) (default 10000).
    #[serde(default)]
    pub rope_base: Option<f64>,
    /// Attention normaliser: softmax (default), sink, sigmoid, relu, stick-breaking (causal
    /// only) or differential (an even head width, a family whose score term is a bias).
    #[serde(default)]
    pub attention: Option<Attention>,
    /// A learned vector placed before every sequence (default false).
    #[serde(default)]
    pub bos: bool,
}

/// A complete, validated model configuration (the `config` metadata of a checkpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ModelSpec")]
pub struct ModelConfig {
    /// Position family (never the `urpe` shorthand: that is `t5` with `urpe = true`).
    pub family: Family,
    /// URPE gate on or off.
    pub urpe: bool,
    /// Number of blocks.
    pub depth: usize,
    /// Model width d.
    pub width: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward width.
    pub ffn: usize,
    /// Feed-forward activation.
    pub activation: Activation,
    /// LayerNorm placement.
    pub norm: Norm,
    /// Causal mask.
    pub causal: bool,
    /// Longest sequence the model accepts.
    pub n_max: usize,
    /// Position parameters shared across layers.
    pub share_position: bool,
    /// Input kind and size.
    pub input: InputKind,
    /// Output kind and size.
    pub output: OutputKind,
    /// Buckets of t5-bucketed.
    pub t5_buckets: usize,
    /// Saturation offset of t5-bucketed.
    pub t5_max_distance: usize,
    /// RoPE base.
    pub rope_base: f64,
    /// Attention normaliser (left out of the serialised form when softmax, so that the
    /// configurations, run ids and fingerprints of softmax models are those of before).
    #[serde(default, skip_serializing_if = "Attention::is_softmax")]
    pub attention: Attention,
    /// A learned vector b (`bos`, [d], N(0, 0.02²)) placed before every sequence: the blocks
    /// see n + 1 rows, row 0 the BOS and rows 1..=n the inputs; the head reads rows 1..=n
    /// (left out of the serialised form when false, so that earlier files read unchanged).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bos: bool,
}

impl TryFrom<ModelSpec> for ModelConfig {
    type Error = ConfigError;
    fn try_from(spec: ModelSpec) -> Result<Self, ConfigError> {
        spec.resolve()
    }
}

impl ModelSpec {
    /// A specification with the required fields; every optional field takes its default
    /// (set fields afterwards to change them).
    pub fn new(
        family: Family,
        depth: usize,
        width: usize,
        heads: usize,
        n_max: usize,
        input: InputKind,
        output: OutputKind,
    ) -> Self {
        ModelSpec {
            family: Variant::new(family, false),
            urpe: false,
            depth,
            width,
            heads,
            ffn: None,
            activation: None,
            norm: None,
            causal: false,
            n_max: Some(n_max),
            share_position: None,
            input: Some(input),
            output: Some(output),
            t5_buckets: None,
            t5_max_distance: None,
            rope_base: None,
            attention: None,
            bos: false,
        }
    }

    /// Fills n_max, input and output where the specification leaves them out (a training
    /// run supplies them from its target).
    pub fn complete(mut self, n_max: usize, input: InputKind, output: OutputKind) -> Self {
        self.n_max.get_or_insert(n_max);
        self.input.get_or_insert(input);
        self.output.get_or_insert(output);
        self
    }

    /// Fills defaults, expands the `urpe` shorthand and validates.
    pub fn resolve(self) -> Result<ModelConfig, ConfigError> {
        let missing =
            |field: &str, example: &str| ConfigError::new(field, "missing", format!("required, e.g. {example}"));
        let n_max = self.n_max.ok_or_else(|| missing("n_max", "n_max = 16"))?;
        let input = self.input.ok_or_else(|| missing("input", "input = { kind = \"real\", d_in = 8 }"))?;
        let output = self.output.ok_or_else(|| missing("output", "output = { kind = \"real\", d_out = 8 }"))?;
        let Variant { family, gate } = self.family;
        let urpe = gate || self.urpe;
        let config = ModelConfig {
            family,
            urpe,
            depth: self.depth,
            width: self.width,
            heads: self.heads,
            ffn: self.ffn.unwrap_or(4 * self.width),
            activation: self.activation.unwrap_or(Activation::Gelu),
            norm: self.norm.unwrap_or(Norm::Post),
            causal: self.causal,
            n_max,
            share_position: self.share_position.unwrap_or(true),
            input,
            output,
            t5_buckets: self.t5_buckets.unwrap_or(32),
            t5_max_distance: self.t5_max_distance.unwrap_or(128),
            rope_base: self.rope_base.unwrap_or(10_000.0),
            attention: self.attention.unwrap_or_default(),
            bos: self.bos,
        };
        config.validate()?;
        Ok(config)
    }
}

fn positive(field: &str, value: usize) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(field, value, "must be at least 1"));
    }
    Ok(())
}

impl ModelConfig {
    /// Reads a configuration from TOML text.
    ///
    /// Errors are one line: `line L, column C: message`.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml_from_str(text)
    }

    /// Reads a configuration from JSON text.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| in_user_words(&e.to_string()))
    }

    /// The configuration as one line of JSON (the checkpoint's `config` metadata).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a model configuration always serialises")
    }

    /// The sizes the position family's tensors and tables depend on (sized for the rows the
    /// blocks see: n_max + 1 with `bos`).
    pub fn family_dims(&self) -> FamilyDims {
        FamilyDims {
            heads: self.heads,
            head_dim: self.head_dim(),
            width: self.width,
            n_max: self.inner_n_max(),
            causal: self.causal,
            t5_buckets: self.t5_buckets,
            t5_max_distance: self.t5_max_distance,
            rope_base: self.rope_base,
        }
    }

    /// Width of one head, d / heads.
    pub fn head_dim(&self) -> usize {
        self.width / self.heads
    }

    /// Rows the blocks see per sequence of n inputs: n + 1 with `bos` (row 0 the BOS), n
    /// without.
    pub fn inner_len(&self, n: usize) -> usize {
        n + usize::from(self.bos)
    }

    /// The longest sequence the blocks see, [`Self::inner_len`] of n_max: what every position
    /// table is sized for.
    pub fn inner_n_max(&self) -> usize {
        self.inner_len(self.n_max)
    }

    /// Number of offsets j − i a Toeplitz table stores: 2·[`Self::inner_n_max`] − 1.
    pub fn offsets(&self) -> usize {
        2 * self.inner_n_max() - 1
    }

    /// The attention variant: family and gate.
    pub fn variant(&self) -> Variant {
        Variant::new(self.family, self.urpe)
    }

    /// True when the model maps constant inputs to equal output rows (see
    /// [`Self::barrier_verdict`]).
    pub fn barrier_bound(&self) -> bool {
        self.barrier_verdict().0
    }

    /// Whether the model maps constant inputs to equal output rows, with the reason in one
    /// line. Bound: all position information inside a normaliser whose rows all have the same
    /// sum (right-stochastic, or differential: [`crate::normaliser::Normaliser::rows_sum_equal`])
    /// and no gate (Proposition 1), or a normaliser whose row sums may differ over a model
    /// that carries no position at all (no family terms, no causal mask: every row of A is
    /// then the same row). Free otherwise; with the gate, a normaliser that RMS-normalises each
    /// head's output rows ([`crate::normaliser::Normaliser::normalises_head_rows`]) over a
    /// family with position only in the scores is free through less: on a constant input the
    /// gate scales row i of M·V by s_i = Σ_j M_ij, and the norm removes |s_i|, leaving the
    /// signs of the s_i and terms of the order of the norm's ε.
    ///
    /// With `bos` the input is no longer constant: it is (b, x, …, x). A family that carries
    /// position sees the BOS at offset −i from row i, a different offset for every row, so the
    /// rows weigh it differently (free); a causal mask lets row i see it among i copies of x,
    /// a share that changes with i (free, the way noPE learns position). Only a model that
    /// carries no position and has no mask keeps equal rows (bound, whatever the normaliser):
    /// by induction over the layers, rows 1..n hold one vector h, so each of them sees the
    /// same keys and values, the BOS row's and n copies of h's, and computes the same output.
    pub fn barrier_verdict(&self) -> (bool, String) {
        let (family, attention) = (self.family.def().placement(), self.attention.0);
        if self.urpe {
            let gate = format!("the gate: {}", crate::family::gate::PLACEMENT.reason);
            if family.inside_softmax_only && attention.normalises_head_rows() {
                return (
                    false,
                    format!(
                        "{gate}, but on a constant input it only scales row i of M·V by s_i = Σ_j M_ij, and {}'s per-head RMS norm removes |s_i|: position survives in the signs of the s_i, otherwise only at the order of the norm's ε",
                        attention.name()
                    ),
                );
            }
            return (false, gate);
        }
        if !family.inside_softmax_only {
            return (false, format!("{}: {}", self.family, family.reason));
        }
        if self.bos {
            return match (self.family.carries_position(), self.causal) {
                (true, _) => (
                    false,
                    format!(
                        "a distinct first token: {} places it differently from each row i (at offset −i; for cope, a count of i + 1 gates), so the rows weigh it differently",
                        self.family
                    ),
                ),
                (false, true) => (
                    false,
                    "a distinct first token and the mask: row i sees it among i copies of the input, a share that changes with i".into(),
                ),
                (false, false) => (
                    true,
                    format!(
                        "a distinct first token, but {} carries no position and there is no mask: rows 1..n see the same keys and values",
                        self.family
                    ),
                ),
            };
        }
        if attention.rows_sum_equal() {
            return (true, format!("{}: {}; {}: {}", self.family, family.reason, attention.name(), attention.reason()));
        }
        if !self.family.carries_position() && !self.causal {
            return (true, format!("{}: {}, and no mask: every row of A is the same row", self.family, family.reason));
        }
        let rows_differ = match (self.family.carries_position(), self.causal) {
            (true, true) => "the position terms and the mask make rows differ",
            (true, false) => "the position terms make rows differ",
            _ => "the mask gives rows of different lengths",
        };
        (false, format!("{}: {}; {rows_differ}", attention.name(), attention.reason()))
    }

    /// Name for reports: the variant's label (`t5`, `urpe`, `rope+urpe`, …), followed by
    /// the normaliser when it is not softmax (`t5 sigmoid`) and by `bos` with a BOS row
    /// (`nope bos`).
    pub fn label(&self) -> String {
        let mut label = self.variant().to_string();
        if !self.attention.is_softmax() {
            label = format!("{label} {}", self.attention);
        }
        if self.bos {
            label.push_str(" bos");
        }
        label
    }

    /// Checks every value and combination; the error names the field and what is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("depth", self.depth)?;
        positive("width", self.width)?;
        positive("heads", self.heads)?;
        positive("ffn", self.ffn)?;
        positive("n_max", self.n_max)?;
        if self.attention.0.causal_only() && !self.causal {
            return Err(ConfigError::new(
                "attention",
                self.attention,
                "a causal-only normaliser: set `causal = true` (--causal), or choose softmax, sink, sigmoid, relu or differential",
            ));
        }
        if self.family.causal_only() && !self.causal {
            return Err(ConfigError::new(
                "causal",
                self.causal,
                format!(
                    "family `{}` is causal only: set `causal = true` (--causal), or choose another family",
                    self.family
                ),
            ));
        }
        if !self.width.is_multiple_of(self.heads) {
            let divisors: Vec<String> =
                (1..=self.width).filter(|h| self.width.is_multiple_of(*h)).map(|h| h.to_string()).collect();
            return Err(ConfigError::new(
                "heads",
                self.heads,
                format!("width {} must be divisible by heads; allowed: {}", self.width, divisors.join(", ")),
            ));
        }
        match self.input {
            InputKind::Tokens { vocab } => positive("input.vocab", vocab)?,
            InputKind::Real { d_in } => positive("input.d_in", d_in)?,
        }
        match self.output {
            OutputKind::Classes { classes } => positive("output.classes", classes)?,
            OutputKind::Real { d_out } => positive("output.d_out", d_out)?,
        }
        if !(self.rope_base.is_finite() && self.rope_base > 1.0) {
            return Err(ConfigError::new("rope_base", self.rope_base, "a finite number above 1"));
        }
        if self.attention.0.differential() && !self.head_dim().is_multiple_of(2) {
            return Err(ConfigError::new(
                "attention",
                self.attention,
                format!(
                    "splits each head's queries and keys into two halves, so the head width `width`/`heads` = {}/{} = {} must be even: change `heads` or `width`",
                    self.width,
                    self.heads,
                    self.head_dim()
                ),
            ));
        }
        check_combination(self.family, self.attention)?;
        self.family.def().validate(&self.family_dims())?;
        Ok(())
    }

    /// Checks that a sequence of length `n` fits the model (1 ≤ n ≤ n_max).
    pub fn check_length(&self, n: usize) -> Result<(), ConfigError> {
        if n == 0 || n > self.n_max {
            return Err(ConfigError::new(
                "n",
                n,
                format!("sequence length must be between 1 and n_max = {}", self.n_max),
            ));
        }
        Ok(())
    }

    /// The fields in which `other` differs from `self`, as `field: ours vs theirs`.
    pub fn differences(&self, other: &ModelConfig) -> Vec<String> {
        let ours = serde_json::to_value(self).expect("serialisable");
        let theirs = serde_json::to_value(other).expect("serialisable");
        let (serde_json::Value::Object(a), serde_json::Value::Object(b)) = (ours, theirs) else {
            unreachable!("a configuration serialises to an object")
        };
        a.iter()
            .filter(|(k, v)| b.get(*k) != Some(v))
            .map(|(k, v)| format!("{k}: {v} vs {}", b.get(k).cloned().unwrap_or_default()))
            .collect()
    }
}

/// Whether the normaliser `attention` takes the family `family`. Differential attention adds
/// the family's score term to each of its two score matrices, whose queries and keys have half
/// the head width, so it takes only families whose score term is a bias
/// ([`crate::family::PositionFamily::score_term_is_bias`]); the error names `family` and
/// `attention`.
pub fn check_combination(family: Family, attention: Attention) -> Result<(), ConfigError> {
    if attention.0.differential() && !family.score_term_is_bias() {
        let takes: Vec<&str> = Family::all().into_iter().filter(|f| f.score_term_is_bias()).map(|f| f.name()).collect();
        return Err(ConfigError::new(
            "family",
            family,
            format!(
                "`attention` = {attention} gives each half of a head its own score matrix, and this family's terms read or rotate queries and keys with tensors sized for the whole head; choose a family whose score term is a bias ({}) or another attention",
                takes.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Parses TOML into `T`; errors are one line: `line L, column C: message`.
pub fn toml_from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {}", in_user_words(e.message().trim_end()))
        }
        None => in_user_words(e.message().trim_end()),
    })
}

/// A deserialisation error with the internal type names (`expected struct OptimConfig`)
/// replaced by what the user writes (`expected a table like optim = { lr = 1e-3 }`).
pub fn in_user_words(message: &str) -> String {
    const SHAPES: [(&str, &str); 7] = [
        ("OptimConfig", "a table like `optim = { lr = 1e-3, warmup = 100 }`"),
        ("EvalConfig", "a table like `eval = { sequences = 512 }`"),
        ("ModelSpec", "a [model] table with family, depth, width and heads"),
        ("ModelConfig", "a model table with family, depth, width, heads, n_max, input and output"),
        ("Grid", "a table of lists ([defaults] or [[grid]])"),
        ("InputKind", "a table like `{ kind = \"real\", d_in = 8 }` or `{ kind = \"tokens\", vocab = 10 }`"),
        ("OutputKind", "a table like `{ kind = \"real\", d_out = 8 }` or `{ kind = \"classes\", classes = 16 }`"),
    ];
    let mut out = message.to_string();
    for (prefix, generic) in [
        ("expected internally tagged enum ", "a table with a `kind`"),
        ("expected struct ", "a table"),
        ("expected enum ", "a name in quotes"),
    ] {
        while let Some(at) = out.find(prefix) {
            let start = at + prefix.len();
            let end = out[start..].find(|c: char| !c.is_alphanumeric() && c != '_').map_or(out.len(), |k| start + k);
            let name = &out[start..end];
            let shape = SHAPES.iter().find(|(n, _)| *n == name).map_or(generic, |(_, shape)| shape);
            out = format!("{}expected {shape}{}", &out[..at], &out[end..]);
        }
    }
    out
}
