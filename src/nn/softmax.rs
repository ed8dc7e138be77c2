//! Row-wise softmax over attention scores; masked entries hold −∞ and get probability 0.

use crate::float::Float;

/// a = exp(s − max s) / Σ_j exp(s_j − max s) for one row. The denominator is accumulated
/// in f64 whatever F is, so in f32 a row sums to 1 within about one ulp rather than n/2.
pub fn softmax_row_forward<F: Float>(a: &mut [F], s: &[F]) {
    let max = s.iter().fold(F::neg_infinity(), |m, &x| m.max(x));
    for (a, &x) in a.iter_mut().zip(s) {
        *a = (x - max).exp_fast();
    }
    let sum: f64 = a.iter().map(|v| v.f64()).sum();
    let inv = F::c(1.0 / sum);
    a.iter_mut().for_each(|x| *x *= inv);
}

/// Softmax backward for one row, in place: on entry `d` holds ∂L/∂a, on exit ∂L/∂s =
/// a ⊙ (∂L/∂a − ⟨∂L/∂a, a⟩).
pub fn softmax_row_backward<F: Float>(d: &mut [F], a: &[F]) {
    let r = super::kernels::dot(d, a);
    for (d, &a) in d.iter_mut().zip(a) {
        *d = a * (*d - r);
    }
}
