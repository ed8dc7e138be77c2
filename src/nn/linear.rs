//! Token-wise affine map y = x·W + b (row-vector convention, W is [in, out]).

use crate::float::Float;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};

/// y = x·W + b for every row: x [rows, in], W [in, out], b [out], y [rows, out].
pub fn linear_forward<F: Float>(mut y: ArrayViewMut2<F>, x: ArrayView2<F>, w: ArrayView2<F>, b: ArrayView1<F>) {
    let dim = y.raw_dim();
    y.assign(&b.broadcast(dim).expect("bias matches the output width"));
    general_mat_mul(F::one(), &x, &w, F::one(), &mut y);
}
