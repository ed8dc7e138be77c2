//! Terms that pair a row of queries or probabilities with a relative table indexed by
//! offset (Shaw et al. key and value sides, Transformer-XL's position term), and the
//! URPE gate.

use super::offset_index;
use crate::float::Float;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, Zip, s};

/// The rows of a relative table [2·n_max − 1, k] that sequences of length n use:
/// offsets −(n − 1)..=(n − 1), so window row o' is offset o' − (n − 1).
pub fn window<F>(table: ArrayView2<'_, F>, n: usize, n_max: usize) -> ArrayView2<'_, F> {
    table.slice_move(s![n_max - n..n_max + n - 1, ..])
}

/// S_ij += scale · q_i · a_{j−i} on one head: q [n, k], `table` [2·n_max − 1, k],
/// `scratch` [n, 2n − 1] receives q·windowᵀ.
pub fn add_relative_scores<F: Float>(
    mut scores: ArrayViewMut2<F>,
    q: ArrayView2<F>,
    table: ArrayView2<F>,
    scale: F,
    mut scratch: ArrayViewMut2<F>,
) {
    let n = q.nrows();
    let n_max = table.nrows().div_ceil(2);
    general_mat_mul(scale, &q, &window(table, n, n_max).t(), F::zero(), &mut scratch);
    for ((i, j), s) in scores.indexed_iter_mut() {
        *s += scratch[[i, offset_index(i, j, n)]];
    }
}

/// out_i += Σ_j P_ij · a_{j−i} on one head: P [n, n], `table` [2·n_max − 1, k], out [n, k];
/// `scratch` [n, 2n − 1] receives P laid out by offset.
pub fn add_relative_values<F: Float>(
    mut out: ArrayViewMut2<F>,
    probs: ArrayView2<F>,
    table: ArrayView2<F>,
    mut scratch: ArrayViewMut2<F>,
) {
    let n = probs.nrows();
    let n_max = table.nrows().div_ceil(2);
    scratch.fill(F::zero());
    for ((i, j), &p) in probs.indexed_iter() {
        scratch[[i, offset_index(i, j, n)]] = p;
    }
    general_mat_mul(F::one(), &scratch, &window(table, n, n_max), F::one(), &mut out);
}

/// URPE gate on one head: G_ij = A_ij · c[(j − i) + n_max − 1], no renormalisation.
pub fn gate_forward<F: Float>(gated: ArrayViewMut2<F>, probs: ArrayView2<F>, c: ArrayView1<F>, n_max: usize) {
    Zip::indexed(gated).and(probs).for_each(|(i, j), g, &a| *g = a * c[offset_index(i, j, n_max)]);
}
