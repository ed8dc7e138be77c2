//! Terms that pair rows with a relative table indexed by offset: Shaw et al.'s key and
//! value sides, Transformer-XL's position term, and the URPE gate. Tables are
//! [2·n_max − 1, k] with offset j − i at row (j − i) + n_max − 1; the gate's C is a row
//! of the same indexing.

use super::offset_index;
use crate::float::Float;
use crate::nn::kernels::{axpy, dot};
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

fn row<'a, F>(a: &'a ArrayView2<F>, i: usize) -> &'a [F] {
    a.row(i).to_slice().expect("rows of a head block are contiguous")
}

/// S_ij += scale · x_i · t_{j−i} on one head: x [n, k], `table` [2·n_max − 1, k].
pub fn relative_scores_forward<F: Float>(
    mut scores: ArrayViewMut2<F>,
    x: ArrayView2<F>,
    table: ArrayView2<F>,
    scale: F,
) {
    let n_max = table.nrows().div_ceil(2);
    for ((i, j), s) in scores.indexed_iter_mut() {
        *s += scale * dot(row(&x, i), row(&table, offset_index(i, j, n_max)));
    }
}

/// Backward of [`relative_scores_forward`]: dx_i += scale Σ_j dS_ij t_{j−i} and
/// dt_{j−i} += scale Σ dS_ij x_i.
pub fn relative_scores_backward<F: Float>(
    mut dx: ArrayViewMut2<F>,
    mut dtable: ArrayViewMut2<F>,
    dscores: ArrayView2<F>,
    x: ArrayView2<F>,
    table: ArrayView2<F>,
    scale: F,
) {
    let n_max = table.nrows().div_ceil(2);
    for ((i, j), &d) in dscores.indexed_iter() {
        let o = offset_index(i, j, n_max);
        let g = scale * d;
        axpy(dx.row_mut(i).into_slice().expect("contiguous"), g, row(&table, o));
        axpy(dtable.row_mut(o).into_slice().expect("contiguous"), g, row(&x, i));
    }
}

/// out_i += Σ_j P_ij · t_{j−i} on one head: P [n, n], `table` [2·n_max − 1, k], out [n, k].
pub fn relative_values_forward<F: Float>(mut out: ArrayViewMut2<F>, probs: ArrayView2<F>, table: ArrayView2<F>) {
    let n_max = table.nrows().div_ceil(2);
    for ((i, j), &p) in probs.indexed_iter() {
        axpy(out.row_mut(i).into_slice().expect("contiguous"), p, row(&table, offset_index(i, j, n_max)));
    }
}

/// Backward of [`relative_values_forward`]: dP_ij += dout_i · t_{j−i} and
/// dt_{j−i} += P_ij · dout_i.
pub fn relative_values_backward<F: Float>(
    mut dprobs: ArrayViewMut2<F>,
    mut dtable: ArrayViewMut2<F>,
    dout: ArrayView2<F>,
    probs: ArrayView2<F>,
    table: ArrayView2<F>,
) {
    let n_max = table.nrows().div_ceil(2);
    for ((i, j), dp) in dprobs.indexed_iter_mut() {
        let o = offset_index(i, j, n_max);
        *dp += dot(row(&dout, i), row(&table, o));
        axpy(dtable.row_mut(o).into_slice().expect("contiguous"), probs[[i, j]], row(&dout, i));
    }
}

/// URPE gate on one head: G_ij = A_ij · c[(j − i) + n_max − 1], no renormalisation.
pub fn gate_forward<F: Float>(mut gated: ArrayViewMut2<F>, probs: ArrayView2<F>, c: ArrayView1<F>, n_max: usize) {
    for ((i, j), g) in gated.indexed_iter_mut() {
        *g = probs[[i, j]] * c[offset_index(i, j, n_max)];
    }
}

/// Backward of [`gate_forward`], in place: on entry `d` holds ∂L/∂G, on exit ∂L/∂A =
/// ∂L/∂G ⊙ C; dc_{j−i} += ∂L/∂G_ij · A_ij.
pub fn gate_backward<F: Float>(
    mut d: ArrayViewMut2<F>,
    mut dc: ArrayViewMut1<F>,
    probs: ArrayView2<F>,
    c: ArrayView1<F>,
    n_max: usize,
) {
    for ((i, j), g) in d.indexed_iter_mut() {
        let o = offset_index(i, j, n_max);
        dc[o] += *g * probs[[i, j]];
        *g *= c[o];
    }
}
