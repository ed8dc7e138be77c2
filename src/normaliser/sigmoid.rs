//! `sigmoid` (Ramapuram et al. 2024): a_ij = σ(s_ij − log n), n the row's length; masked
//! entries (−∞) get weight 0. Rows do not sum to one.

use super::{Normaliser, Rows};
use crate::float::Float;

/// The element-wise sigmoid with the bias −log n.
pub struct Sigmoid;

impl<F: Float> Rows<F> for Sigmoid {
    fn forward(&self, a: &mut [F], s: &[F], _beta: F) {
        let shift = F::c((s.len() as f64).ln());
        for (a, &x) in a.iter_mut().zip(s) {
            *a = F::one() / (F::one() + (shift - x).exp_fast());
        }
    }

    /// ∂a/∂s = a·(1 − a).
    fn backward(&self, d: &mut [F], a: &[F], _s: &[F], _beta: F) -> F {
        for (d, &a) in d.iter_mut().zip(a) {
            *d *= a * (F::one() - a);
        }
        F::zero()
    }
}

impl Normaliser for Sigmoid {
    fn name(&self) -> &'static str {
        "sigmoid"
    }

    fn about(&self) -> &'static str {
        "σ(s_ij − log n) element-wise (Ramapuram et al. 2024)"
    }

    fn right_stochastic(&self) -> bool {
        false
    }

    fn reason(&self) -> &'static str {
        "each weight is a sigmoid of its own score: a row's sum follows its scores"
    }

    /// σ(x) = (tanh(x/2) + 1)/2, whose gradient stays finite (zero) at a masked −∞.
    #[cfg(feature = "candle")]
    fn candle(
        &self,
        z: &candle_core::Tensor,
        _beta: Option<&candle_core::Tensor>,
    ) -> Option<candle_core::Result<candle_core::Tensor>> {
        let shift = (z.dim(candle_core::D::Minus1).ok()? as f64).ln();
        Some(z.affine(0.5, -0.5 * shift).and_then(|x| x.tanh()).and_then(|x| x.affine(0.5, 0.5)))
    }

    fn rows_f32(&self) -> &dyn Rows<f32> {
        self
    }

    fn rows_f64(&self) -> &dyn Rows<f64> {
        self
    }
}
