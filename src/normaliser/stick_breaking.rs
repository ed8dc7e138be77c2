//! `stick-breaking` (Tan et al. 2024), causal only: with β_ij = σ(s_ij), query i gives key
//! j < i the weight A_ij = β_ij·Π_{j<k<i}(1 − β_ik): the nearest key breaks off its share of
//! the stick first, and what is left goes on to the earlier ones. A query gives itself no
//! weight, so the first row is all zeros, and row i sums to 1 − Π_{j<i}(1 − β_ij) < 1.
//!
//! A row arrives with the causal mask applied: finite scores at j ≤ i, −∞ after; its last
//! finite entry is the query's own position i (the model's configuration requires the mask).

use super::{Normaliser, Rows};
use crate::float::Float;

/// Stick-breaking attention weights.
pub struct StickBreaking;

/// σ(x).
fn sigmoid<F: Float>(x: F) -> F {
    F::one() / (F::one() + (-x).exp_fast())
}

/// The query's own position in a causally masked row: its last finite entry.
fn own_position<F: Float>(s: &[F]) -> usize {
    s.iter().rposition(|v| v.is_finite()).unwrap_or(0)
}

impl<F: Float> Rows<F> for StickBreaking {
    fn forward(&self, a: &mut [F], s: &[F], _beta: F) {
        a.iter_mut().for_each(|v| *v = F::zero());
        let mut rest = F::one(); // Π_{j<k<i}(1 − β_k), from the nearest key back
        for j in (0..own_position(s)).rev() {
            let beta = sigmoid(s[j]);
            a[j] = beta * rest;
            rest *= F::one() - beta;
        }
    }

    /// With log A_j = log β_j + Σ_{j<k<i} log(1 − β_k): ∂A_j/∂s_j = A_j(1 − β_j) and
    /// ∂A_j/∂s_m = −A_j·β_m for j < m < i, so
    /// ∂L/∂s_m = (1 − β_m)·A_m·∂L/∂A_m − β_m·Σ_{j<m} A_j·∂L/∂A_j.
    fn backward(&self, d: &mut [F], a: &[F], s: &[F], _beta: F) -> F {
        let i = own_position(s);
        let mut before = F::zero(); // Σ_{j<m} A_j·∂L/∂A_j
        for m in 0..d.len() {
            if m >= i {
                d[m] = F::zero();
                continue;
            }
            let beta = sigmoid(s[m]);
            let own = a[m] * d[m];
            d[m] = (F::one() - beta) * own - beta * before;
            before += own;
        }
        F::zero()
    }
}

impl Normaliser for StickBreaking {
    fn name(&self) -> &'static str {
        "stick-breaking"
    }

    fn about(&self) -> &'static str {
        "A_ij = σ(s_ij)·Π_{j<k<i}(1 − σ(s_ik)) for keys j < i, causal (Tan et al. 2024)"
    }

    fn right_stochastic(&self) -> bool {
        false
    }

    fn reason(&self) -> &'static str {
        "row i sums to 1 − Π_{j<i}(1 − β_ij), which grows with the number of keys it sees"
    }

    fn causal_only(&self) -> bool {
        true
    }

    fn backward_reads_scores(&self) -> bool {
        true
    }

    /// exp(log β_ij + Σ_{j<k<i} log(1 − β_ik)) for j < i, with log β = −softplus(−z),
    /// log(1 − β) = −softplus(z), softplus(x) = relu(x) + log(1 + e^{−|x|}) (finite
    /// gradients at a masked −∞), the inner sum a product with a constant triangle.
    #[cfg(feature = "candle")]
    fn candle(
        &self,
        z: &candle_core::Tensor,
        _beta: Option<&candle_core::Tensor>,
    ) -> Option<candle_core::Result<candle_core::Tensor>> {
        use candle_core::Tensor;
        let run = || -> candle_core::Result<Tensor> {
            let (b, h, n, _) = z.dims4()?;
            let softplus =
                |x: &Tensor| -> candle_core::Result<Tensor> { x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()? };
            let triangle = |keep: &dyn Fn(usize, usize) -> bool| -> candle_core::Result<Tensor> {
                let v: Vec<f32> = (0..n * n).map(|k| if keep(k / n, k % n) { 1.0 } else { 0.0 }).collect();
                Tensor::from_vec(v, (n, n), z.device())?.to_dtype(z.dtype())
            };
            let earlier = triangle(&|i, j| j < i)?; // [query i, key j]: key strictly earlier
            let after = triangle(&|k, j| k > j)?; // [k, j]: k after j
            let log_rest = softplus(z)?.neg()?.broadcast_mul(&earlier)?;
            let later_rest = log_rest.reshape((b * h * n, n))?.matmul(&after)?.reshape((b, h, n, n))?;
            let log_beta = softplus(&z.neg()?)?.neg()?;
            (log_beta + later_rest)?.exp()?.broadcast_mul(&earlier)
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
