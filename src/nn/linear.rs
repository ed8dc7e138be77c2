//! Token-wise affine map y = x·W + b (row-vector convention, W is [in, out]).

use super::layout::LinearIds;
use crate::float::Float;
use crate::gemm::matmul;
use crate::params::Params;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};

/// y = x·W + b for every row: x [rows, in], W [in, out], b [out], y [rows, out].
pub fn linear_forward<F: Float>(mut y: ArrayViewMut2<F>, x: ArrayView2<F>, w: ArrayView2<F>, b: ArrayView1<F>) {
    assert_eq!(b.len(), y.ncols(), "bias matches the output width");
    let b = b.to_slice().expect("contiguous bias");
    for mut row in y.rows_mut() {
        match row.as_slice_mut() {
            Some(row) => row.copy_from_slice(b),
            None => row.iter_mut().zip(b).for_each(|(y, &b)| *y = b),
        }
    }
    matmul(F::one(), x, w, F::one(), y);
}

/// Where [`linear_backward`] puts ∂L/∂x = dy·Wᵀ.
pub enum InputGrad<'a, F> {
    /// Overwrites the view (whatever it held).
    Write(ArrayViewMut2<'a, F>),
    /// Adds to the view, so that residual branches can share it.
    Add(ArrayViewMut2<'a, F>),
}

/// Backward of [`linear_forward`]: ∂W += xᵀ·dy, ∂b += Σ_rows dy (rows in order), and
/// ∂L/∂x = dy·Wᵀ written or added as `dx` says.
pub fn linear_backward<F: Float>(
    dx: InputGrad<F>,
    dparams: &mut Params<F>,
    ids: LinearIds,
    dy: ArrayView2<F>,
    x: ArrayView2<F>,
    w: ArrayView2<F>,
) {
    matmul(F::one(), x.t(), dy, F::one(), dparams.mat_mut(ids.weight));
    let mut db = dparams.vec_mut(ids.bias);
    let db = db.as_slice_mut().expect("contiguous bias");
    for row in dy.rows() {
        // a contiguous row as a slice, so that the sum vectorises
        match row.as_slice() {
            Some(row) => add_row(db, row),
            None => add_row(db, row),
        }
    }
    match dx {
        InputGrad::Write(dx) => matmul(F::one(), dy, w.t(), F::zero(), dx),
        InputGrad::Add(dx) => matmul(F::one(), dy, w.t(), F::one(), dx),
    }
}

/// acc_j += row_j.
fn add_row<'a, F: Float + 'a>(acc: &mut [F], row: impl IntoIterator<Item = &'a F>) {
    acc.iter_mut().zip(row).for_each(|(g, &d)| *g += d);
}
