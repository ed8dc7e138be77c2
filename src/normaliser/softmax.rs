//! `softmax`: a_ij = exp(s_ij − max s_i) / Σ_k exp(s_ik − max s_i); masked entries hold −∞
//! and get weight 0.

use super::{Normaliser, Rows};
use crate::float::Float;

/// The row-wise softmax.
pub struct Softmax;

impl<F: Float> Rows<F> for Softmax {
    fn forward(&self, a: &mut [F], s: &[F], _beta: F) {
        forward_with_sink(a, s, None);
    }

    fn backward(&self, d: &mut [F], a: &[F], _s: &[F], _beta: F) -> F {
        backward_scores(d, a);
        F::zero()
    }
}

/// a = softmax over the scores and, when given, one extra logit (the sink) that takes weight
/// but has no entry in `a`. The denominator is accumulated in f64 whatever F is, so in f32 a
/// row sums to 1 within about one ulp rather than n/2.
pub(super) fn forward_with_sink<F: Float>(a: &mut [F], s: &[F], sink: Option<F>) {
    let max = s.iter().fold(sink.unwrap_or(F::neg_infinity()), |m, &x| m.max(x));
    for (a, &x) in a.iter_mut().zip(s) {
        *a = (x - max).exp_fast();
    }
    let mut sum: f64 = a.iter().map(|v| v.f64()).sum();
    if let Some(b) = sink {
        sum += (b - max).exp_fast().f64();
    }
    let inv = F::c(1.0 / sum);
    a.iter_mut().for_each(|x| *x *= inv);
}

/// ∂L/∂s = a ⊙ (∂L/∂a − r) in place, r = ⟨∂L/∂a, a⟩, which it returns (the same with a
/// sink, whose own gradient follows from r).
pub(super) fn backward_scores<F: Float>(d: &mut [F], a: &[F]) -> F {
    let r = dot(d, a);
    for (d, &a) in d.iter_mut().zip(a) {
        *d = a * (*d - r);
    }
    r
}

impl Normaliser for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn about(&self) -> &'static str {
        "softmax over each row of scores"
    }

    fn right_stochastic(&self) -> bool {
        true
    }

    fn reason(&self) -> &'static str {
        "exponentials divided by their sum: every row sums to one"
    }

    fn rows_f32(&self) -> &dyn Rows<f32> {
        self
    }

    fn rows_f64(&self) -> &dyn Rows<f64> {
        self
    }
}

/// Σ_k x_k·y_k with eight partial sums (a fixed order, so results are reproducible).
#[inline]
fn dot<F: Float>(x: &[F], y: &[F]) -> F {
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
