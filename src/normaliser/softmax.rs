//! `softmax`: a_ij = exp(s_ij − max s_i) / Σ_k exp(s_ik − max s_i); masked entries hold −∞
//! and get weight 0.

use super::{Normaliser, Rows};
use crate::float::{Float, lane_dot, lane_max, lane_sum_f64};

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
/// row sums to 1 within about one ulp rather than n/2. The maximum and the sum run in eight
/// lanes (a fixed order, so results are reproducible) so that they vectorise.
pub(super) fn forward_with_sink<F: Float>(a: &mut [F], s: &[F], sink: Option<F>) {
    let max = lane_max(s, sink.unwrap_or(F::neg_infinity()));
    for (a, &x) in a.iter_mut().zip(s) {
        *a = (x - max).exp_fast();
    }
    let mut sum = lane_sum_f64(a);
    if let Some(b) = sink {
        sum += (b - max).exp_fast().f64();
    }
    let inv = F::c(1.0 / sum);
    a.iter_mut().for_each(|x| *x *= inv);
}

/// ∂L/∂s = a ⊙ (∂L/∂a − r) in place, r = ⟨∂L/∂a, a⟩, which it returns (the same with a
/// sink, whose own gradient follows from r).
pub(super) fn backward_scores<F: Float>(d: &mut [F], a: &[F]) -> F {
    let r = lane_dot(d, a);
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
