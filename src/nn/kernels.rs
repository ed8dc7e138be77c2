//! Small vector kernels on slices, written so the compiler vectorises them: the
//! per-head products of attention are too small for a GEMM call to pay.

use crate::float::Float;

/// y += a·x.
#[inline]
pub fn axpy<F: Float>(y: &mut [F], a: F, x: &[F]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// Σ_k x_k·y_k with eight partial sums (a fixed order, so results are reproducible).
#[inline]
pub fn dot<F: Float>(x: &[F], y: &[F]) -> F {
    let mut acc = [F::zero(); 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for k in 0..8 {
            acc[k] += a[k] * b[k];
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (a, b) in xr.iter().zip(yr) {
        sum += *a * *b;
    }
    sum
}

/// y = x + b element-wise.
#[inline]
pub fn add_into<F: Float>(y: &mut [F], x: &[F], b: &[F]) {
    for ((y, &x), &b) in y.iter_mut().zip(x).zip(b) {
        *y = x + b;
    }
}
