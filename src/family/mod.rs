//! Position families, one module each, and the registry that lists them.
//!
//! A family says where position information enters attention and supplies everything the
//! engines need for it: its name and one-line description, its classification (all
//! position inside the softmax, so Proposition 1 binds it, or not, with the reason), its
//! learned tensors (names, shapes, initialisation), its fixed tables, and its terms: input
//! rows, a transform of queries and keys, a term added to the scores, a term added to the
//! values, each with a forward and a backward ([`Terms`]). Attention keeps only what every
//! family shares: content scores, the normaliser, the gate, the product with V.
//!
//! A family of one's own is a type implementing [`PositionFamily`] and one call to
//! [`register`]; the built-in ones are listed in [`Family::ALL`].

#[cfg(feature = "candle")]
pub mod candle;
pub mod gate;
pub mod kernels;

mod alibi;
mod ape_learned;
mod ape_sin;
mod cope;
mod fire;
mod kerple;
mod nope;
mod rope;
mod shaw_key;
mod shaw_value;
mod t5;
mod t5_bucketed;
mod xl;
mod xpos;

use crate::error::ConfigError;
use crate::float::Float;
use crate::params::{Init, ParamLayout, Params, TensorId};
use ndarray::{ArrayView2, ArrayViewMut2};
use std::fmt;
use std::sync::RwLock;

/// Standard deviation of the official normal initialisation of position tensors.
pub const INIT_STD: f64 = 0.02;

/// The official initialisation of a learned position tensor: N(0, 0.02²).
pub const WEIGHT: Init = Init::Normal(INIT_STD);

/// The sizes a family's tensors and tables depend on (from the model configuration).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FamilyDims {
    /// Attention heads.
    pub heads: usize,
    /// Width of one head, d / heads.
    pub head_dim: usize,
    /// Model width d.
    pub width: usize,
    /// Longest sequence the attention sees: the model's n_max, plus one with `bos` (the BOS
    /// row is position 0); Toeplitz tables hold 2·n_max − 1 offsets.
    pub n_max: usize,
    /// Causal mask on.
    pub causal: bool,
    /// t5-bucketed: number of buckets.
    pub t5_buckets: usize,
    /// t5-bucketed: offset beyond which the buckets saturate.
    pub t5_max_distance: usize,
    /// rope: base θ of the angles.
    pub rope_base: f64,
}

impl FamilyDims {
    /// Number of offsets j − i a Toeplitz table stores: 2·n_max − 1.
    pub fn offsets(&self) -> usize {
        2 * self.n_max - 1
    }
}

/// Where a family puts position information, which decides whether Proposition 1 binds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// All position information enters inside the softmax: attention stays right-stochastic
    /// and the values carry no position, so constant inputs give equal output rows.
    pub inside_softmax_only: bool,
    /// Why, in one line.
    pub reason: &'static str,
}

/// The learned tensors a family declared (at most [`FamilyIds::CAPACITY`]), in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FamilyIds {
    ids: [Option<TensorId>; FamilyIds::CAPACITY],
}

impl FamilyIds {
    /// The most tensors a family may declare at one place.
    pub const CAPACITY: usize = 6;

    /// The ids `ids`, in order.
    pub fn new(ids: &[TensorId]) -> Self {
        assert!(ids.len() <= Self::CAPACITY, "a family declares at most {} tensors", Self::CAPACITY);
        let mut out = FamilyIds::default();
        for (slot, &id) in out.ids.iter_mut().zip(ids) {
            *slot = Some(id);
        }
        out
    }

    /// The i-th declared tensor.
    pub fn get(&self, i: usize) -> TensorId {
        self.ids[i].expect("a tensor the family declared")
    }

    /// Every declared tensor.
    pub fn all(&self) -> impl Iterator<Item = TensorId> + '_ {
        self.ids.iter().flatten().copied()
    }

    /// True when the family declared nothing here.
    pub fn is_empty(&self) -> bool {
        self.ids[0].is_none()
    }
}

/// What a family's score and value terms see of one head of one sequence.
pub struct Head<'a, F> {
    /// Head index.
    pub h: usize,
    /// Sequence length (the rows the attention sees: with `bos`, the BOS row too).
    pub n: usize,
    /// Longest sequence the attention sees ([`FamilyDims::n_max`]).
    pub n_max: usize,
    /// 1/√d_h, the scale of the content scores.
    pub scale: F,
    /// Queries of this head, [n, d_h] (after the family's transform).
    pub q: ArrayView2<'a, F>,
    /// Keys of this head, [n, d_h] (after the family's transform).
    pub k: ArrayView2<'a, F>,
    /// The columns of this head in a [·, d] matrix.
    pub cols: std::ops::Range<usize>,
    /// The model's parameters.
    pub params: &'a Params<F>,
    /// The tensors the family declared for this layer.
    pub ids: &'a FamilyIds,
    /// The layer's derived table ([`Terms::derive`]); empty if the family has none.
    pub derived: ArrayView2<'a, F>,
}

/// Workspace a term may use (allocated once per call, not per head): a skewed
/// [n, 2n − 1] matrix, two [n, d_h] matrices and a vector [n].
pub struct Work<'a, F> {
    /// [n, 2n − 1].
    pub skewed: ArrayViewMut2<'a, F>,
    /// [n, d_h].
    pub a: ArrayViewMut2<'a, F>,
    /// [n, d_h].
    pub b: ArrayViewMut2<'a, F>,
    /// [n].
    pub v: ndarray::ArrayViewMut1<'a, F>,
}

/// Length of the buffer [`Work::new`] splits for length n and head width d_h:
/// n(2n − 1) + 2n·d_h + n.
pub fn work_len(n: usize, dh: usize) -> usize {
    n * (2 * n - 1) + 2 * n * dh + n
}

impl<'a, F> Work<'a, F> {
    /// The workspace for length n and head width d_h, from a buffer at least [`work_len`]
    /// long.
    pub fn new(buf: &'a mut [F], n: usize, dh: usize) -> Self {
        let (skew, rest) = buf.split_at_mut(n * (2 * n - 1));
        let (a, rest) = rest.split_at_mut(n * dh);
        let (b, rest) = rest.split_at_mut(n * dh);
        Work {
            skewed: ArrayViewMut2::from_shape((n, 2 * n - 1), skew).expect("a workspace buffer"),
            a: ArrayViewMut2::from_shape((n, dh), a).expect("a workspace buffer"),
            b: ArrayViewMut2::from_shape((n, dh), b).expect("a workspace buffer"),
            v: ndarray::ArrayViewMut1::from(&mut rest[..n]),
        }
    }
}

/// Queries or keys, for a family's transform of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The queries.
    Query,
    /// The keys.
    Key,
}

/// A family's terms in the ndarray engine, for float type `F`. Every method has a default
/// that adds nothing, so a family writes only the terms it has. Backward methods add
/// gradients (never overwrite), the way the engine's layers do.
pub trait Terms<F: Float>: Send + Sync {
    /// Rows [n_max, d] added to the input rows at positions 0..n (absolute families; with
    /// `bos` the BOS row is position 0).
    fn input_rows<'a>(&'a self, _p: &'a Params<F>, _ids: &FamilyIds) -> Option<ArrayView2<'a, F>> {
        None
    }

    /// Backward of [`Terms::input_rows`]: `d` [n, d] is ∂L/∂(input rows) summed over the
    /// batch.
    fn input_rows_backward(&self, _d: ArrayView2<F>, _ids: &FamilyIds, _grads: &mut Params<F>) {}

    /// True when the family transforms queries and keys ([`Terms::transform`]).
    fn transforms(&self) -> bool {
        false
    }

    /// Transforms one head's queries or keys [n, d_h] in place; `transpose` applies the
    /// transpose instead (what the backward pass needs).
    fn transform(&self, _side: Side, _x: ArrayViewMut2<F>, _transpose: bool) {}

    /// Fills the per-layer table.
    fn derive(&self, _p: &Params<F>, _ids: &FamilyIds, _out: ArrayViewMut2<F>) {}

    /// S += the family's score term (before the mask and the softmax).
    fn scores(&self, _head: &Head<F>, _s: ArrayViewMut2<F>, _work: &mut Work<F>) {}

    /// Backward of [`Terms::scores`] from ∂L/∂S: adds to ∂L/∂q, ∂L/∂k (of the
    /// transformed q and k) and to the family's slice of the gradient buffer.
    #[allow(clippy::too_many_arguments)]
    fn scores_backward(
        &self,
        _head: &Head<F>,
        _ds: ArrayView2<F>,
        _dq: ArrayViewMut2<F>,
        _dk: ArrayViewMut2<F>,
        _grad: &mut [F],
        _work: &mut Work<F>,
    ) {
    }

    /// out += the family's value term from the weights `mix` [n, n] that multiply V.
    fn values(&self, _head: &Head<F>, _mix: ArrayView2<F>, _out: ArrayViewMut2<F>, _work: &mut Work<F>) {}

    /// Backward of [`Terms::values`] from ∂L/∂out: adds to ∂L/∂mix and to the gradient buffer.
    fn values_backward(
        &self,
        _head: &Head<F>,
        _mix: ArrayView2<F>,
        _dout: ArrayView2<F>,
        _dmix: ArrayViewMut2<F>,
        _grad: &mut [F],
        _work: &mut Work<F>,
    ) {
    }

    /// The family's score bias per head and offset [heads, 2·n_max − 1], where it is one
    /// (the t5 families, ALiBi): what the Toeplitz probes read.
    fn offset_bias(&self, _p: &Params<F>, _ids: &FamilyIds) -> Option<ndarray::Array2<F>> {
        None
    }

    /// Adds the buffer summed over the batch (`total`) into the parameters' gradients.
    fn fold_grads(
        &self,
        _total: &[F],
        _p: &Params<F>,
        _ids: &FamilyIds,
        _derived: ArrayView2<F>,
        _grads: &mut Params<F>,
    ) {
    }
}

/// A position family: what it is, where it puts position, its tensors and its terms.
pub trait PositionFamily: Send + Sync + 'static {
    /// The name as the command line and configuration files spell it (kebab-case).
    fn name(&self) -> &'static str;

    /// One line: what the family adds, with its formula.
    fn about(&self) -> &'static str;

    /// Where position enters, and why that binds the family or frees it.
    fn placement(&self) -> Placement;

    /// False for a family that adds no position information anywhere (nope): its scores on
    /// a constant input are equal along every row, whatever the normaliser.
    fn carries_position(&self) -> bool {
        true
    }

    /// True for a family defined with the causal mask only (cope): the configuration then
    /// requires `causal = true`, and loops over every setting leave it out without the mask.
    fn causal_only(&self) -> bool {
        false
    }

    /// True when the family's score term, if it has one, is a bias B_h[i, j] that reads
    /// neither queries nor keys, and the family does not transform them (nope, ape-*, t5,
    /// t5-bucketed, alibi, kerple, fire, shaw-value): such a term does not depend on the head width
    /// and can be added to any score matrix of head h, as differential attention does to
    /// both of its halves. False (the default, the safe answer for a family of one's own)
    /// when its terms read or rotate q and k with tensors and tables sized for d_h (rope,
    /// xpos, shaw-key, xl, cope).
    fn score_term_is_bias(&self) -> bool {
        false
    }

    /// Checks the sizes the family needs (for example an even head width).
    fn validate(&self, _dims: &FamilyDims) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Declares the family's tensors of one attention layer under `prefix` (`pos` when
    /// shared by the layers, `layers.{l}.pos` otherwise).
    fn declare(&self, _t: &mut ParamLayout, _prefix: &str, _dims: &FamilyDims) -> FamilyIds {
        FamilyIds::default()
    }

    /// Declares the family's tensors at the input (`pos.*`, before any layer).
    fn declare_input(&self, _t: &mut ParamLayout, _dims: &FamilyDims) -> FamilyIds {
        FamilyIds::default()
    }

    /// Shape of the per-layer table [`Terms::derive`] fills; (0, 0) when there is none.
    fn derived_shape(&self, _dims: &FamilyDims) -> (usize, usize) {
        (0, 0)
    }

    /// Length of the per-sequence gradient buffer of the score and value terms.
    fn grad_len(&self, _dims: &FamilyDims) -> usize {
        0
    }

    /// The terms in the candle engine; `None` (the default) when the family has none, and
    /// the candle engine then refuses it with a message naming the family.
    #[cfg(feature = "candle")]
    fn candle(&self, _dims: &FamilyDims) -> Option<Box<dyn candle::CandleTerms>> {
        None
    }

    /// The terms in f32.
    fn terms_f32(&self, dims: &FamilyDims) -> Box<dyn Terms<f32>>;

    /// The terms in f64.
    fn terms_f64(&self, dims: &FamilyDims) -> Box<dyn Terms<f64>>;
}

/// `family`'s terms in float type `F` (f32 or f64, the two [`Float`] types).
pub fn terms<F: Float>(family: Family, dims: &FamilyDims) -> Box<dyn Terms<F>> {
    let made: Box<dyn std::any::Any> = if std::any::TypeId::of::<F>() == std::any::TypeId::of::<f32>() {
        Box::new(family.0.terms_f32(dims))
    } else {
        Box::new(family.0.terms_f64(dims))
    };
    *made.downcast::<Box<dyn Terms<F>>>().expect("Float is f32 or f64")
}

/// A model's family terms, shared by its copies.
#[derive(Clone)]
pub struct PositionTerms<F>(std::sync::Arc<dyn Terms<F>>);

impl<F: Float> PositionTerms<F> {
    /// The terms of `family` for `dims`.
    pub fn new(family: Family, dims: &FamilyDims) -> Self {
        PositionTerms(std::sync::Arc::from(terms::<F>(family, dims)))
    }
}

impl<F> std::ops::Deref for PositionTerms<F> {
    type Target = dyn Terms<F>;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl<F> fmt::Debug for PositionTerms<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PositionTerms")
    }
}

/// A family with no terms at all (nope, and a base for families with few).
pub struct NoTerms;

impl<F: Float> Terms<F> for NoTerms {}

/// A handle to a registered position family; compares, hashes and prints by name.
#[derive(Clone, Copy)]
pub struct Family(&'static dyn PositionFamily);

#[allow(non_upper_case_globals)]
impl Family {
    /// No position information at all.
    pub const Nope: Family = Family(&nope::Nope);
    /// Learned absolute positions p_i added to the input rows.
    pub const ApeLearned: Family = Family(&ape_learned::ApeLearned);
    /// Sinusoidal absolute positions added to the input rows.
    pub const ApeSin: Family = Family(&ape_sin::ApeSin);
    /// T5 / RPE bias: scores + b_h[j − i], one learned value per offset and head.
    pub const T5: Family = Family(&t5::T5);
    /// T5 bias with T5's logarithmic offset buckets.
    pub const T5Bucketed: Family = Family(&t5_bucketed::T5Bucketed);
    /// ALiBi: scores − m_h·|j − i| with fixed geometric slopes.
    pub const Alibi: Family = Family(&alibi::Alibi);
    /// Rotary embeddings: q_i and k_j rotated by angles ∝ i and j.
    pub const Rope: Family = Family(&rope::Rope);
    /// Shaw et al., key side: scores + q_i·a^K_{j−i}/√d_h.
    pub const ShawKey: Family = Family(&shaw_key::ShawKey);
    /// Shaw et al., value side: out_i = Σ_j A_ij (v_j + a^V_{j−i}).
    pub const ShawValue: Family = Family(&shaw_value::ShawValue);
    /// Transformer-XL: content, content-position and the u, v bias terms in the logits.
    pub const Xl: Family = Family(&xl::Xl);
    /// KERPLE, logarithmic: scores − r₁·log(1 + r₂·|j − i|) with learned r₁, r₂ > 0.
    pub const Kerple: Family = Family(&kerple::Kerple);
    /// xPos: RoPE with rotated queries and keys scaled by ζ^{±i/γ}.
    pub const Xpos: Family = Family(&xpos::Xpos);
    /// FIRE: scores + f_θ(ψ̃(i − j)/ψ(max(L, i)))_h, a learned MLP of the warped offset.
    pub const Fire: Family = Family(&fire::Fire);
    /// CoPE: scores + q_i·e[p_ij]/√d_h at contextual positions p_ij = Σ_{k=j..i} σ(c_ik); causal only.
    pub const Cope: Family = Family(&cope::Cope);

    /// The built-in families, in catalogue order.
    pub const ALL: [Family; 14] = [
        Family::Nope,
        Family::ApeLearned,
        Family::ApeSin,
        Family::T5,
        Family::T5Bucketed,
        Family::Alibi,
        Family::Rope,
        Family::ShawKey,
        Family::ShawValue,
        Family::Xl,
        Family::Kerple,
        Family::Xpos,
        Family::Fire,
        Family::Cope,
    ];

    /// The family's definition.
    pub fn def(self) -> &'static dyn PositionFamily {
        self.0
    }

    /// The name as the CLI and the configuration files spell it.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// True when all position information enters inside the softmax, so Proposition 1
    /// applies: constant inputs give equal output rows.
    pub fn inside_softmax_only(self) -> bool {
        self.0.placement().inside_softmax_only
    }

    /// False when the family adds no position information anywhere (see
    /// [`PositionFamily::carries_position`]).
    pub fn carries_position(self) -> bool {
        self.0.carries_position()
    }

    /// True when the family is defined with the causal mask only (see
    /// [`PositionFamily::causal_only`]).
    pub fn causal_only(self) -> bool {
        self.0.causal_only()
    }

    /// True when the family's score term is a bias that reads neither queries nor keys (see
    /// [`PositionFamily::score_term_is_bias`]).
    pub fn score_term_is_bias(self) -> bool {
        self.0.score_term_is_bias()
    }

    /// Every family: the built-in ones, then those registered, in registration order.
    pub fn all() -> Vec<Family> {
        let extra = REGISTERED.read().expect("family registry");
        Family::ALL.iter().copied().chain(extra.iter().copied()).collect()
    }

    /// The family named `name`, if any.
    pub fn by_name(name: &str) -> Option<Family> {
        Family::all().into_iter().find(|f| f.name() == name)
    }

    /// Position in [`Family::all`] (the catalogue order).
    pub fn index(self) -> usize {
        Family::all().iter().position(|&f| f == self).expect("a registered family")
    }
}

static REGISTERED: RwLock<Vec<Family>> = RwLock::new(Vec::new());

/// Adds a family of one's own to the registry, so that configurations, experiments and
/// every test that loops over [`Family::all`] know it; registering the same name twice
/// returns the first family.
pub fn register(family: &'static dyn PositionFamily) -> Result<Family, ConfigError> {
    let name = family.name();
    let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid || name == "urpe" || name.contains("+") {
        return Err(ConfigError::new("family", name, "a kebab-case name other than urpe"));
    }
    if let Some(existing) = Family::by_name(name) {
        return Ok(existing);
    }
    let f = Family(family);
    REGISTERED.write().expect("family registry").push(f);
    Ok(f)
}

impl PartialEq for Family {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Family {}

impl std::hash::Hash for Family {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state)
    }
}

impl fmt::Debug for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Family({})", self.name())
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Family {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Family {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Family::by_name(&name).ok_or_else(|| {
            let names: Vec<&str> = Family::all().iter().map(|f| f.name()).collect();
            serde::de::Error::custom(format!("unknown family `{name}`: expected one of {}", names.join(", ")))
        })
    }
}

/// Rows × cols of a flat gradient buffer from `start`, as a matrix.
pub fn grad_block<F>(buf: &mut [F], start: usize, rows: usize, cols: usize) -> ArrayViewMut2<'_, F> {
    ArrayViewMut2::from_shape((rows, cols), &mut buf[start..start + rows * cols]).expect("a gradient block")
}

/// Rows × cols of a flat buffer from `start`, read only.
pub fn grad_block_ref<F>(buf: &[F], start: usize, rows: usize, cols: usize) -> ArrayView2<'_, F> {
    ArrayView2::from_shape((rows, cols), &buf[start..start + rows * cols]).expect("a gradient block")
}

/// grads[id] += the block of `total` from `start` with the tensor's shape [rows, cols].
pub fn add_grad_block<F: Float>(grads: &mut Params<F>, id: TensorId, total: &[F], start: usize) {
    let mut g = grads.mat_mut(id);
    let (rows, cols) = g.dim();
    g.zip_mut_with(&grad_block_ref(total, start, rows, cols), |a, &b| *a += b);
}
