//! Row-wise softmax over attention scores; masked entries hold −∞ and get probability 0.

use crate::float::Float;
use ndarray::{ArrayView2, ArrayViewMut2, Zip};

/// A_i = exp(S_i − max S_i) / Σ_j exp(S_ij − max S_i) for every row i. The denominator
/// is accumulated in f64 whatever F is, so in f32 a row sums to 1 within about one ulp
/// rather than n/2 ulps.
pub fn softmax_forward<F: Float>(mut probs: ArrayViewMut2<F>, scores: ArrayView2<F>) {
    Zip::from(probs.rows_mut()).and(scores.rows()).for_each(|mut a, s| {
        let max = s.fold(F::neg_infinity(), |m, &x| m.max(x));
        let mut sum = 0.0f64;
        Zip::from(&mut a).and(&s).for_each(|a, &x| {
            *a = (x - max).exp();
            sum += a.f64();
        });
        let inv = F::c(1.0 / sum);
        a.mapv_inplace(|x| x * inv);
    });
}

/// Sets S_ij = −∞ for j > i (a position attends to itself and earlier ones only).
pub fn causal_mask<F: Float>(mut scores: ArrayViewMut2<F>) {
    for ((i, j), s) in scores.indexed_iter_mut() {
        if j > i {
            *s = F::neg_infinity();
        }
    }
}
