//! The URPE gate: the attention probabilities multiplied entrywise by a learned Toeplitz
//! matrix C per head, G = A ⊙ C, with no renormalisation (`{prefix}.urpe`,
//! [heads, 2·n_max − 1], initialised to ones so that a gated model starts equal to its base
//! family). Any family takes it (`urpe = true`).

use super::kernels::toeplitz;
use super::{FamilyDims, Placement};
use crate::float::Float;
use crate::params::{Init, ParamLayout, TensorId};
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

/// Where the gate puts position, and why that frees every family it is added to.
pub const PLACEMENT: Placement =
    Placement { inside_softmax_only: false, reason: "the rows of M = A ⊙ C no longer sum to the same number" };

/// Declares C under `prefix`.
pub fn declare(t: &mut ParamLayout, prefix: &str, dims: &FamilyDims) -> TensorId {
    t.push(format!("{prefix}.urpe"), &[dims.heads, dims.offsets()], Init::Ones)
}

/// G_ij = A_ij · c[(j − i) + n_max − 1] for one head (c: that head's row of C).
pub fn forward<F: Float>(g: ArrayViewMut2<F>, a: ArrayView2<F>, c: ArrayView1<F>, n_max: usize) {
    toeplitz::gate_forward(g, a, c, n_max);
}

/// Backward of [`forward`], in place: `d` holds ∂L/∂G on entry and ∂L/∂A on exit; adds
/// ∂L/∂c to `dc`.
pub fn backward<F: Float>(d: ArrayViewMut2<F>, dc: ArrayViewMut1<F>, a: ArrayView2<F>, c: ArrayView1<F>, n_max: usize) {
    toeplitz::gate_backward(d, dc, a, c, n_max);
}
