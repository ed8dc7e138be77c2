//! Attention normalisers, one module each, and the list of them: what turns a row of
//! scores into the row of weights A (configuration field `attention`). A normaliser says
//! whether its rows always sum to one (right-stochastic A), or at least all to the same
//! number (what Proposition 1 needs), and gives its row forward and backward to the ndarray
//! engine. Differential attention builds A from two score matrices per head; see
//! [`differential`].

pub mod differential;
mod relu;
mod sigmoid;
mod sink;
mod softmax;
mod stick_breaking;

use crate::float::Float;
use ndarray::{ArrayView2, ArrayViewMut2};

/// A normaliser's row operations for float type `F`.
pub trait Rows<F: Float>: Send + Sync {
    /// a = normalise(s) for one row of scores (masked entries hold −∞); `beta` is the head's
    /// learned scalar of a normaliser that has one ([`Normaliser::learned_per_head`]), 0
    /// otherwise.
    fn forward(&self, a: &mut [F], s: &[F], beta: F);

    /// Backward in place: `d` holds ∂L/∂a on entry and ∂L/∂s on exit; `a` is the forward
    /// output and `s` its scores (read only by normalisers that say so in
    /// [`Normaliser::backward_reads_scores`]; others may be given an empty slice). Returns
    /// ∂L/∂beta (0 for a normaliser without one).
    fn backward(&self, d: &mut [F], a: &[F], s: &[F], beta: F) -> F;

    /// [`Rows::forward`] on every row of a head's [n, n] scores (contiguous rows). One call
    /// per head rather than per row: the row function is then called statically and inlined.
    fn forward_rows(&self, mut a: ArrayViewMut2<F>, s: ArrayView2<F>, beta: F) {
        for (a, s) in a.rows_mut().into_iter().zip(s.rows()) {
            self.forward(a.into_slice().expect("contiguous rows"), s.to_slice().expect("contiguous rows"), beta);
        }
    }

    /// [`Rows::backward`] on every row of a head's [n, n] matrices (contiguous rows); returns
    /// ∂L/∂beta summed over the rows in order.
    fn backward_rows(&self, mut d: ArrayViewMut2<F>, a: ArrayView2<F>, s: ArrayView2<F>, beta: F) -> F {
        let mut d_beta = F::zero();
        for (i, (d, a)) in d.rows_mut().into_iter().zip(a.rows()).enumerate() {
            let s = s.row(i);
            d_beta += self.backward(
                d.into_slice().expect("contiguous rows"),
                a.to_slice().expect("contiguous rows"),
                s.to_slice().expect("contiguous rows"),
                beta,
            );
        }
        d_beta
    }
}

/// An attention normaliser.
pub trait Normaliser: Send + Sync + 'static {
    /// The name as configuration files will spell it.
    fn name(&self) -> &'static str;

    /// One line: the formula.
    fn about(&self) -> &'static str;

    /// True when every row of A sums to one whatever the scores.
    fn right_stochastic(&self) -> bool;

    /// True when every row of the matrix that multiplies V sums to the same number whatever
    /// the scores and the mask (1 for a right-stochastic normaliser, 1 − λ for differential
    /// attention), and whatever the normaliser does after the product with V acts on each
    /// row alone and maps equal rows to equal rows: the condition of Proposition 1. Defaults
    /// to [`Normaliser::right_stochastic`].
    fn rows_sum_equal(&self) -> bool {
        self.right_stochastic()
    }

    /// True when each head's output rows are RMS-normalised after the product with V
    /// (differential attention): a positive factor on a row of M·V is removed, up to the
    /// norm's ε, so a gate that only scales rows on a constant input frees the layer only
    /// through the signs of those scales (and ε).
    fn normalises_head_rows(&self) -> bool {
        false
    }

    /// True for differential attention ([`differential`]): two score matrices per head, from
    /// the two halves of its queries and keys, each normalised by the rows of
    /// [`Normaliser::rows_f64`] (softmax) and combined as A = A¹ − λ·A², and the heads'
    /// outputs RMS-normalised. The engines run it on a path of their own, and the model has
    /// λ's vectors per layer (`layers.{l}.attn.lambda`).
    fn differential(&self) -> bool {
        false
    }

    /// True when the normaliser is defined for causal attention only (the model must set
    /// `causal`).
    fn causal_only(&self) -> bool {
        false
    }

    /// True when [`Rows::backward`] reads the scores.
    fn backward_reads_scores(&self) -> bool {
        false
    }

    /// The name of a learned scalar per head and layer (`layers.{l}.attn.NAME`, [heads],
    /// initialised to zeros), if the normaliser has one.
    fn learned_per_head(&self) -> Option<&'static str> {
        None
    }

    /// The same map in candle, as a graph the engine differentiates with candle's autograd:
    /// A from the scaled and biased scores z [b, h, n, n] (masked entries −∞) and the
    /// learned scalars β [h] of a normaliser that has them. `None` where the normaliser has
    /// no candle form (softmax has none here: the engine runs it as a fused kernel).
    #[cfg(feature = "candle")]
    fn candle(
        &self,
        _z: &candle_core::Tensor,
        _beta: Option<&candle_core::Tensor>,
    ) -> Option<candle_core::Result<candle_core::Tensor>> {
        None
    }

    /// Why, in one line.
    fn reason(&self) -> &'static str;

    /// The row operations in f32 (differential attention: those of each of its two score
    /// matrices).
    fn rows_f32(&self) -> &dyn Rows<f32>;

    /// The row operations in f64.
    fn rows_f64(&self) -> &dyn Rows<f64>;
}

/// softmax_j(s_ij), the default.
pub const SOFTMAX: &dyn Normaliser = &softmax::Softmax;

/// σ(s_ij − log n).
pub const SIGMOID: &dyn Normaliser = &sigmoid::Sigmoid;

/// ReLU(s_ij) / n.
pub const RELU: &dyn Normaliser = &relu::Relu;

/// Stick-breaking (causal only).
pub const STICK_BREAKING: &dyn Normaliser = &stick_breaking::StickBreaking;

/// Softmax with a learned sink logit per head.
pub const SINK: &dyn Normaliser = &sink::Sink;

/// Differential attention: softmax(S¹) − λ·softmax(S²), heads RMS-normalised.
pub const DIFFERENTIAL: &dyn Normaliser = &differential::Differential;

/// Every normaliser.
pub const ALL: [&dyn Normaliser; 6] = [SOFTMAX, SINK, SIGMOID, RELU, STICK_BREAKING, DIFFERENTIAL];

/// The attention normaliser of a model (configuration field `attention`, by name; default
/// softmax).
#[derive(Clone, Copy)]
pub struct Attention(pub &'static dyn Normaliser);

impl Attention {
    /// Softmax, the default.
    pub const SOFTMAX: Attention = Attention(SOFTMAX);

    /// The normaliser named `name`, if any.
    pub fn by_name(name: &str) -> Option<Attention> {
        ALL.into_iter().find(|n| n.name() == name).map(Attention)
    }

    /// True for softmax (what a configuration without the field means).
    pub fn is_softmax(&self) -> bool {
        self.0.name() == SOFTMAX.name()
    }

    /// Every name, for messages.
    pub fn names() -> String {
        ALL.map(|n| n.name()).join(", ")
    }
}

impl Default for Attention {
    fn default() -> Self {
        Attention::SOFTMAX
    }
}

impl PartialEq for Attention {
    fn eq(&self, other: &Self) -> bool {
        self.0.name() == other.0.name()
    }
}

impl std::fmt::Debug for Attention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name())
    }
}

impl std::fmt::Display for Attention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name())
    }
}

impl serde::Serialize for Attention {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

impl<'de> serde::Deserialize<'de> for Attention {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Attention::by_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown attention `{name}`: expected one of {}", Attention::names()))
        })
    }
}

/// `normaliser`'s row operations in float type `F` (f32 or f64, the two [`Float`] types).
pub fn rows<F: Float>(normaliser: &'static dyn Normaliser) -> &'static dyn Rows<F> {
    let any: &dyn std::any::Any = if std::any::TypeId::of::<F>() == std::any::TypeId::of::<f32>() {
        &normaliser.rows_f32() as &dyn std::any::Any
    } else {
        &normaliser.rows_f64() as &dyn std::any::Any
    };
    *any.downcast_ref::<&'static dyn Rows<F>>().expect("Float is f32 or f64")
}
