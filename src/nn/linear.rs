//! Token-wise affine map y = x·W + b (row-vector convention, W is [in, out]).

use super::layout::LinearIds;
use crate::float::Float;
use crate::gemm::matmul;
use crate::params::Params;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};

/// y = x·W + b for every row: x [rows, in], W [in, out], b [out], y [rows, out].
pub fn linear_forward<F: Float>(mut y: ArrayViewMut2<F>, x: ArrayView2<F>, w: ArrayView2<F>, b: ArrayView1<F>) {
    let dim = y.raw_dim();
    y.assign(&b.broadcast(dim).expect("bias matches the output width"));
    matmul(F::one(), x, w, F::one(), y);
}

/// Backward of [`linear_forward`]: ∂W += xᵀ·dy, ∂b += Σ_rows dy, and dx += dy·Wᵀ when `dx`
/// is given (the input's gradient accumulates, so residual branches can share it).
pub fn linear_backward<F: Float>(
    dx: Option<ArrayViewMut2<F>>,
    dparams: &mut Params<F>,
    ids: LinearIds,
    dy: ArrayView2<F>,
    x: ArrayView2<F>,
    w: ArrayView2<F>,
) {
    matmul(F::one(), x.t(), dy, F::one(), dparams.mat_mut(ids.weight));
    let mut db = dparams.vec_mut(ids.bias);
    for row in dy.rows() {
        db += &row;
    }
    if let Some(dx) = dx {
        matmul(F::one(), dy, w.t(), F::one(), dx);
    }
}
