//! `differential` (Ye et al. 2024, "Differential Transformer", arXiv 2410.05258): attention as
//! the difference of two softmax maps, which cancels the weight both give to the same keys.
//!
//! Per layer l (from 0) and head h of width d_h (even), with the head's queries and keys split
//! into two halves of width d_h/2, q = [q¹ q²] and k = [k¹ k²]:
//!
//! - S^c = q^c·k^cᵀ/√(d_h/2) + B_h for c = 1, 2, where B_h is the family's score term as the
//!   engine adds it to one score matrix (called once on each half; the causal mask as usual).
//!   Only families whose score term is a bias B_h[i, j] that reads neither queries nor keys
//!   take part (`PositionFamily::score_term_is_bias`: nope, ape-*, t5, t5-bucketed, alibi,
//!   kerple, fire, shaw-value); rope, xpos, shaw-key, xl and cope, whose tensors and tables are sized for
//!   d_h, are a configuration error naming `family` and `attention`.
//! - A = softmax(S¹) − λ·softmax(S²), λ = exp(λ_q1·λ_k1) − exp(λ_q2·λ_k2) + λ_init, with
//!   λ_init = 0.8 − 0.6·exp(−0.3·l) (the paper's l − 1 is our l) and λ_q1, λ_k1, λ_q2, λ_k2
//!   learned vectors of width d_h/2 per layer, shared by its heads (`layers.{l}.attn.lambda`,
//!   [4, d_h/2], rows in that order, N(0, 0.1²) as the paper).
//! - With the URPE gate G = A ⊙ C, otherwise G = A; O = G·V (+ the family's value term),
//!   V of width d_h.
//! - Each row of each head's output is RMS-normalised and scaled:
//!   Y_i = (1 − λ_init)·O_i/√(mean_k O_ik² + ε), ε = 1e-5. The paper normalises each head
//!   with a GroupNorm (an RMSNorm in its code) with a learned gain; here without the gain, to
//!   keep the normaliser's tensors to λ's four vectors.
//!
//! Every row of A sums to 1 − λ, the same number for every row whatever the scores and the
//! mask, so A is not right-stochastic but its rows have equal sums; the RMS norm acts on each
//! row alone and maps equal rows to equal rows. So Proposition 1's argument goes through:
//! with position only in the scores and no gate, constant inputs give equal output rows.
//! The URPE gate frees it through less than the other normalisers: on a constant input G·V
//! has rows s_i·v with s_i = Σ_j G_ij, and the norm turns them into
//! sign(s_i)·v/√(mean v² + ε/s_i²), so position survives in the signs of the s_i and
//! otherwise only at the order of ε (random models with C > 0 show σ₁/‖h‖ of 1e-6 to 1e-3,
//! proportional to ε); a trained gate uses the signs (t5 with the gate learns position-id).
//!
//! The engines run it on paths of their own (`nn::attention::differential`,
//! `candle::differential`); its rows, each half's softmax, are softmax's.

use super::{Normaliser, Rows, softmax};
use crate::float::Float;
use ndarray::{ArrayView2, ArrayViewMut2};

/// Differential attention.
pub struct Differential;

/// Standard deviation of the initialisation of λ's vectors, N(0, 0.1²) as the paper.
pub const LAMBDA_STD: f64 = 0.1;

/// ε of the per-head RMS norm.
pub const RMS_EPS: f64 = 1e-5;

/// Name of λ's tensor under `layers.{l}.attn.`.
pub const LAMBDA_TENSOR: &str = "lambda";

/// λ_init = 0.8 − 0.6·exp(−0.3·l) for layer l, counted from 0.
pub fn lambda_init(layer: usize) -> f64 {
    0.8 - 0.6 * (-0.3 * layer as f64).exp()
}

/// λ = exp(λ_q1·λ_k1) − exp(λ_q2·λ_k2) + λ_init of one layer, with the two exponentials its
/// gradient needs.
#[derive(Clone, Copy, Debug)]
pub struct Lambda<F> {
    /// λ.
    pub value: F,
    /// exp(λ_q1·λ_k1).
    first: F,
    /// exp(λ_q2·λ_k2).
    second: F,
}

impl<F: Float> Lambda<F> {
    /// λ of layer `layer` from its vectors [4, d_h/2] (rows λ_q1, λ_k1, λ_q2, λ_k2).
    pub fn new(vectors: ArrayView2<F>, layer: usize) -> Self {
        let first = vectors.row(0).dot(&vectors.row(1)).exp();
        let second = vectors.row(2).dot(&vectors.row(3)).exp();
        Lambda { value: first - second + F::c(lambda_init(layer)), first, second }
    }

    /// Adds to `grad` [4, d_h/2] the gradient of the vectors for ∂L/∂λ = `d`:
    /// ∂λ/∂λ_q1 = exp(λ_q1·λ_k1)·λ_k1, ∂λ/∂λ_k1 = exp(λ_q1·λ_k1)·λ_q1, and the same with a
    /// minus sign for λ_q2, λ_k2.
    pub fn backward(&self, d: F, vectors: ArrayView2<F>, mut grad: ArrayViewMut2<F>) {
        for (row, other, weight) in [(0, 1, self.first), (1, 0, self.first), (2, 3, -self.second), (3, 2, -self.second)]
        {
            grad.row_mut(row).scaled_add(d * weight, &vectors.row(other));
        }
    }
}

impl Normaliser for Differential {
    fn name(&self) -> &'static str {
        "differential"
    }

    fn about(&self) -> &'static str {
        "softmax(S¹) − λ·softmax(S²) from the halves of each head's queries and keys, λ learned per layer; \
         each head's output RMS-normalised and scaled by 1 − λ_init"
    }

    fn right_stochastic(&self) -> bool {
        false
    }

    fn rows_sum_equal(&self) -> bool {
        true
    }

    fn differential(&self) -> bool {
        true
    }

    fn normalises_head_rows(&self) -> bool {
        true
    }

    fn reason(&self) -> &'static str {
        "every row of softmax(S¹) − λ·softmax(S²) sums to 1 − λ, one number per layer, and the per-row RMS \
         norm keeps equal rows equal (rope, xpos, shaw-key, xl and cope, whose terms read queries and keys, are refused)"
    }

    fn rows_f32(&self) -> &dyn Rows<f32> {
        &softmax::Softmax
    }

    fn rows_f64(&self) -> &dyn Rows<f64> {
        &softmax::Softmax
    }
}
