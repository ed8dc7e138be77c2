//! Terms that pair rows with a relative table indexed by offset: Shaw et al.'s key and
//! value sides and Transformer-XL's position term. Tables are [2·n_max − 1, k] with offset
//! j − i at row (j − i) + n_max − 1; sequences of length n use the window of offsets
//! −(n − 1)..=n − 1 ([`window`]), and the [n, n] terms go through the skewed [n, 2n − 1]
//! layout of [`super::toeplitz`] so that every product is one matrix multiply.

use super::toeplitz::{skew, unskew_add};
use crate::float::Float;
use crate::gemm::small_matmul;
use ndarray::{ArrayView2, ArrayViewMut2, s};

/// The rows of a relative table [2·n_max − 1, k] that sequences of length n use.
pub fn window<F>(table: ArrayView2<'_, F>, n: usize) -> ArrayView2<'_, F> {
    let n_max = table.nrows().div_ceil(2);
    table.slice_move(s![n_max - n..n_max + n - 1, ..])
}

/// [`window`] of a mutable table.
pub fn window_mut<F>(table: ArrayViewMut2<'_, F>, n: usize) -> ArrayViewMut2<'_, F> {
    let n_max = table.nrows().div_ceil(2);
    table.slice_move(s![n_max - n..n_max + n - 1, ..])
}

/// S_ij += scale · x_i · t_{j−i} on one head: x [n, k], `win` the table's window
/// [2n − 1, k]; `scratch` [n, 2n − 1].
pub fn relative_scores_forward<F: Float>(
    s: ArrayViewMut2<F>,
    x: ArrayView2<F>,
    win: ArrayView2<F>,
    scale: F,
    mut scratch: ArrayViewMut2<F>,
) {
    small_matmul(scale, x.view(), win.t(), F::zero(), scratch.view_mut());
    unskew_add(s, scratch.view());
}

/// Backward of [`relative_scores_forward`]: dx += scale · Σ_j dS_ij t_{j−i} and
/// dt_{j−i} += scale · Σ dS_ij x_i.
pub fn relative_scores_backward<F: Float>(
    mut dx: ArrayViewMut2<F>,
    mut dwin: ArrayViewMut2<F>,
    ds: ArrayView2<F>,
    x: ArrayView2<F>,
    win: ArrayView2<F>,
    scale: F,
    mut scratch: ArrayViewMut2<F>,
) {
    skew(scratch.view_mut(), ds);
    small_matmul(scale, scratch.view(), win.view(), F::one(), dx.view_mut());
    small_matmul(scale, scratch.t(), x.view(), F::one(), dwin.view_mut());
}

/// out_i += Σ_j P_ij · t_{j−i} on one head: P [n, n], out [n, k].
pub fn relative_values_forward<F: Float>(
    mut out: ArrayViewMut2<F>,
    p: ArrayView2<F>,
    win: ArrayView2<F>,
    mut scratch: ArrayViewMut2<F>,
) {
    skew(scratch.view_mut(), p);
    small_matmul(F::one(), scratch.view(), win.view(), F::one(), out.view_mut());
}

/// Backward of [`relative_values_forward`]: dP_ij += dout_i · t_{j−i} and
/// dt_{j−i} += P_ij · dout_i.
pub fn relative_values_backward<F: Float>(
    dp: ArrayViewMut2<F>,
    mut dwin: ArrayViewMut2<F>,
    dout: ArrayView2<F>,
    p: ArrayView2<F>,
    win: ArrayView2<F>,
    mut scratch: ArrayViewMut2<F>,
) {
    small_matmul(F::one(), dout.view(), win.t(), F::zero(), scratch.view_mut());
    unskew_add(dp, scratch.view());
    skew(scratch.view_mut(), p);
    small_matmul(F::one(), scratch.t(), dout.view(), F::one(), dwin.view_mut());
}
