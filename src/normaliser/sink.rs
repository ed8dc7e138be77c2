//! `sink`: softmax with a learned sink logit β_h per head and layer in the denominator,
//! a_ij = e^{s_ij} / (e^{β_h} + Σ_k e^{s_ik}) (β = 0 is "softmax + 1"); masked entries get
//! weight 0. Row i sums to 1 − a_sink, a_sink = e^{β_h}/Z_i: less than one, by an amount
//! that follows the row's scores.

use super::{Normaliser, Rows, softmax};
use crate::float::Float;

/// Softmax over the scores and one extra logit β that takes weight but multiplies nothing.
pub struct Sink;

impl<F: Float> Rows<F> for Sink {
    /// As softmax, with the sink among the exponentials.
    fn forward(&self, a: &mut [F], s: &[F], beta: F) {
        softmax::forward_with_sink(a, s, Some(beta));
    }

    /// ∂L/∂s_j = a_j(∂L/∂a_j − r), r = ⟨∂L/∂a, a⟩, as softmax; ∂L/∂β = −a_sink·r with
    /// a_sink = 1 − Σ_j a_j.
    fn backward(&self, d: &mut [F], a: &[F], _s: &[F], _beta: F) -> F {
        let sink = F::one() - a.iter().copied().fold(F::zero(), |t, v| t + v);
        let r = softmax::backward_scores(d, a);
        -(sink * r)
    }
}

impl Normaliser for Sink {
    fn name(&self) -> &'static str {
        "sink"
    }

    fn about(&self) -> &'static str {
        "e^{s_ij} / (e^{β_h} + Σ_k e^{s_ik}), β_h learned per head (softmax + 1 at β = 0)"
    }

    fn right_stochastic(&self) -> bool {
        false
    }

    fn reason(&self) -> &'static str {
        "the sink takes a share e^β/Z_i of each row, and Z_i follows the row's scores"
    }

    fn learned_per_head(&self) -> Option<&'static str> {
        Some("sink")
    }

    /// e^{z − m} / (e^{β − m} + Σ e^{z − m}), m = max(max z, β) per row (held constant).
    #[cfg(feature = "candle")]
    fn candle(
        &self,
        z: &candle_core::Tensor,
        beta: Option<&candle_core::Tensor>,
    ) -> Option<candle_core::Result<candle_core::Tensor>> {
        let beta = beta?;
        let run = || -> candle_core::Result<candle_core::Tensor> {
            let (b, h, n, _) = z.dims4()?;
            let beta = beta.reshape((1, h, 1, 1))?.broadcast_as((b, h, n, 1))?;
            let m = z.max_keepdim(candle_core::D::Minus1)?.maximum(&beta)?.detach();
            let e = z.broadcast_sub(&m)?.exp()?;
            let sink = (beta - &m)?.exp()?;
            e.broadcast_div(&(e.sum_keepdim(candle_core::D::Minus1)? + sink)?)
        };
        Some(run())
    }

    fn rows_f32(&self) -> &dyn Rows<f32> {
        self
    }

    fn rows_f64(&self) -> &dyn Rows<f64> {
        self
    }
}
