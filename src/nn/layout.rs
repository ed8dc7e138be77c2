//! Which tensors a configuration has, under which checkpoint names (README, "Checkpoint format"),
//! and typed handles to them for the forward and backward passes.

use crate::config::{InputKind, ModelConfig, Norm};
use crate::family::{FamilyIds, WEIGHT, gate};
use crate::normaliser::differential::{LAMBDA_STD, LAMBDA_TENSOR};
use crate::params::{Init, ParamLayout, TensorId};

/// Weight [in, out] and bias [out] of a token-wise affine map y = x·W + b.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearIds {
    /// `….weight`, [in, out].
    pub weight: TensorId,
    /// `….bias`, [out].
    pub bias: TensorId,
}

/// Gain and bias of a LayerNorm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormIds {
    /// `….weight`, [d], initialised to ones.
    pub weight: TensorId,
    /// `….bias`, [d], initialised to zeros.
    pub bias: TensorId,
}

/// Position tensors one attention layer uses (its own, or the shared set).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PositionIds {
    /// The family's own tensors (see its module in [`crate::family`]).
    pub family: FamilyIds,
    /// `pos.urpe`, the matrix C, [heads, 2·n_max − 1], when the gate is on.
    pub gate: Option<TensorId>,
}

/// λ's vectors of differential attention in one layer, and the layer (λ_init depends on it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DifferentialIds {
    /// `layers.{l}.attn.lambda`, [4, d_h/2]: rows λ_q1, λ_k1, λ_q2, λ_k2, N(0, 0.1²).
    pub lambda: TensorId,
    /// The layer l, from 0.
    pub layer: usize,
}

/// Tensors of one attention layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionIds {
    /// Query map.
    pub q: LinearIds,
    /// Key map.
    pub k: LinearIds,
    /// Value map.
    pub v: LinearIds,
    /// Output map.
    pub o: LinearIds,
    /// Position tensors.
    pub pos: PositionIds,
    /// The normaliser's learned scalar per head (`attn.sink`, [heads]), if it has one.
    pub normaliser: Option<TensorId>,
    /// Differential attention's λ (`attention = "differential"`).
    pub differential: Option<DifferentialIds>,
}

/// Tensors of one block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerIds {
    /// Attention.
    pub attn: AttentionIds,
    /// First LayerNorm (absent for `norm = none`).
    pub norm1: Option<NormIds>,
    /// Second LayerNorm (absent for `norm = none`).
    pub norm2: Option<NormIds>,
    /// FFN up-projection [d, f].
    pub up: LinearIds,
    /// FFN down-projection [f, d].
    pub down: LinearIds,
}

/// How the input rows are made.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InputIds {
    /// `embed.weight`, [vocab, d].
    Embed(TensorId),
    /// `input.weight` [d_in, d], `input.bias` [d].
    Linear(LinearIds),
}

/// Every tensor of a model, with typed handles.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelLayout {
    /// Names, shapes and offsets in the flat buffer.
    pub tensors: std::sync::Arc<ParamLayout>,
    /// Input map.
    pub input: InputIds,
    /// `bos`, [d]: the vector placed before every sequence (`bos = true` only).
    pub bos: Option<TensorId>,
    /// The family's tensors at the input (`pos.ape` of ape-learned), never per layer.
    pub input_pos: FamilyIds,
    /// Blocks.
    pub layers: Vec<LayerIds>,
    /// `final_norm` (pre-norm only).
    pub final_norm: Option<NormIds>,
    /// Output head [d, out].
    pub head: LinearIds,
}

fn linear(t: &mut ParamLayout, name: &str, n_in: usize, n_out: usize) -> LinearIds {
    LinearIds {
        weight: t.push(format!("{name}.weight"), &[n_in, n_out], WEIGHT),
        bias: t.push(format!("{name}.bias"), &[n_out], Init::Zeros),
    }
}

fn norm(t: &mut ParamLayout, name: &str, d: usize) -> NormIds {
    NormIds {
        weight: t.push(format!("{name}.weight"), &[d], Init::Ones),
        bias: t.push(format!("{name}.bias"), &[d], Init::Zeros),
    }
}

/// Declares the position tensors of `config` under `prefix` (`pos` or `layers.{l}.pos`):
/// the family's, then the gate's.
fn position(t: &mut ParamLayout, prefix: &str, c: &ModelConfig) -> PositionIds {
    let dims = c.family_dims();
    let family = c.family.def().declare(t, prefix, &dims);
    let gate = c.urpe.then(|| gate::declare(t, prefix, &dims));
    PositionIds { family, gate }
}

impl ModelLayout {
    /// The tensors of a validated configuration, in checkpoint order: input, `bos`, `pos.ape`,
    /// shared `pos.*`, then per layer attention, own `pos.*`, norm1, ffn, norm2, then
    /// `final_norm` and `head`.
    pub fn new(c: &ModelConfig) -> Self {
        let mut t = ParamLayout::default();
        let d = c.width;
        let input = match c.input {
            InputKind::Tokens { vocab } => InputIds::Embed(t.push("embed.weight", &[vocab, d], WEIGHT)),
            InputKind::Real { d_in } => InputIds::Linear(linear(&mut t, "input", d_in, d)),
        };
        let bos = c.bos.then(|| t.push("bos", &[d], WEIGHT));
        let input_pos = c.family.def().declare_input(&mut t, &c.family_dims());
        let shared = c.share_position.then(|| position(&mut t, "pos", c));
        let has_norm = c.norm != Norm::None;
        let layers = (0..c.depth)
            .map(|l| {
                let p = format!("layers.{l}");
                let attn = AttentionIds {
                    q: linear(&mut t, &format!("{p}.attn.q"), d, d),
                    k: linear(&mut t, &format!("{p}.attn.k"), d, d),
                    v: linear(&mut t, &format!("{p}.attn.v"), d, d),
                    o: linear(&mut t, &format!("{p}.attn.o"), d, d),
                    pos: shared.unwrap_or_else(|| position(&mut t, &format!("{p}.pos"), c)),
                    normaliser: c
                        .attention
                        .0
                        .learned_per_head()
                        .map(|name| t.push(format!("{p}.attn.{name}"), &[c.heads], Init::Zeros)),
                    differential: c.attention.0.differential().then(|| DifferentialIds {
                        lambda: t.push(
                            format!("{p}.attn.{LAMBDA_TENSOR}"),
                            &[4, c.head_dim() / 2],
                            Init::Normal(LAMBDA_STD),
                        ),
                        layer: l,
                    }),
                };
                let norm1 = has_norm.then(|| norm(&mut t, &format!("{p}.norm1"), d));
                let up = linear(&mut t, &format!("{p}.ffn.up"), d, c.ffn);
                let down = linear(&mut t, &format!("{p}.ffn.down"), c.ffn, d);
                let norm2 = has_norm.then(|| norm(&mut t, &format!("{p}.norm2"), d));
                LayerIds { attn, norm1, norm2, up, down }
            })
            .collect();
        let final_norm = (c.norm == Norm::Pre).then(|| norm(&mut t, "final_norm", d));
        let head = linear(&mut t, "head", d, c.output.size());
        ModelLayout { tensors: std::sync::Arc::new(t), input, bos, input_pos, layers, final_norm, head }
    }
}
