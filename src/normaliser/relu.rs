//! `relu`: a_ij = ReLU(s_ij) / n, n the row's length; masked entries (−∞) get weight 0.
//! Rows do not sum to one.

use super::{Normaliser, Rows};
use crate::float::Float;

/// The element-wise ReLU divided by the row's length.
pub struct Relu;

impl<F: Float> Rows<F> for Relu {
    fn forward(&self, a: &mut [F], s: &[F], _beta: F) {
        let inv = F::c(1.0 / s.len() as f64);
        for (a, &x) in a.iter_mut().zip(s) {
            *a = x.max(F::zero()) * inv;
        }
    }

    /// ∂a/∂s = 1/n where s > 0 (a > 0), else 0.
    fn backward(&self, d: &mut [F], a: &[F], _s: &[F], _beta: F) -> F {
        let inv = F::c(1.0 / a.len() as f64);
        for (d, &a) in d.iter_mut().zip(a) {
            *d = if a > F::zero() { *d * inv } else { F::zero() };
        }
        F::zero()
    }
}

impl Normaliser for Relu {
    fn name(&self) -> &'static str {
        "relu"
    }

    fn about(&self) -> &'static str {
        "ReLU(s_ij) / n element-wise"
    }

    fn right_stochastic(&self) -> bool {
        false
    }

    fn reason(&self) -> &'static str {
        "each weight is a ReLU of its own score: a row's sum follows its scores"
    }

    #[cfg(feature = "candle")]
    fn candle(
        &self,
        z: &candle_core::Tensor,
        _beta: Option<&candle_core::Tensor>,
    ) -> Option<candle_core::Result<candle_core::Tensor>> {
        let n = z.dim(candle_core::D::Minus1).ok()? as f64;
        Some(z.relu().and_then(|x| x.affine(1.0 / n, 0.0)))
    }

    fn rows_f32(&self) -> &dyn Rows<f32> {
        self
    }

    fn rows_f64(&self) -> &dyn Rows<f64> {
        self
    }
}
