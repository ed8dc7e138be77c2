//! `rope`: queries and keys rotated by angles proportional to their positions (Su et al.),
//! so that q_iᵀk_j depends on j − i only.

use super::kernels::rope::RopeTables;
use super::{ConfigError, FamilyDims, Placement, PositionFamily, Side, Terms};
use crate::float::Float;
use ndarray::ArrayViewMut2;

/// Rotary embeddings: q_i and k_j rotated by angles ∝ i and j.
pub struct Rope;

impl PositionFamily for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn about(&self) -> &'static str {
        "rotary embeddings: q_i and k_j rotated by angles i·θ_k and j·θ_k"
    }

    fn placement(&self) -> Placement {
        Placement { inside_softmax_only: true, reason: "only the scores q_iᵀk_j change; V does not" }
    }

    fn validate(&self, dims: &FamilyDims) -> Result<(), ConfigError> {
        if !dims.head_dim.is_multiple_of(2) {
            return Err(ConfigError::new(
                "heads",
                dims.heads,
                format!(
                    "rope rotates pairs of features, so width / heads must be even (now {} / {} = {})",
                    dims.width, dims.heads, dims.head_dim
                ),
            ));
        }
        Ok(())
    }

    #[cfg(feature = "candle")]
    fn candle(&self, dims: &FamilyDims) -> Option<Box<dyn super::candle::CandleTerms>> {
        Some(Box::new(on_candle::Rotation(*dims)))
    }

    fn terms_f32(&self, dims: &FamilyDims) -> Box<dyn Terms<f32>> {
        Box::new(Rotation(RopeTables::new(dims.n_max, dims.head_dim, dims.rope_base)))
    }

    fn terms_f64(&self, dims: &FamilyDims) -> Box<dyn Terms<f64>> {
        Box::new(Rotation(RopeTables::new(dims.n_max, dims.head_dim, dims.rope_base)))
    }
}

/// The rotation of queries and keys by their positions.
struct Rotation<F>(RopeTables<F>);

impl<F: Float> Terms<F> for Rotation<F> {
    fn transforms(&self) -> bool {
        true
    }

    fn transform(&self, _side: Side, x: ArrayViewMut2<F>, transpose: bool) {
        self.0.rotate(x, if transpose { -F::one() } else { F::one() });
    }
}

#[cfg(feature = "candle")]
pub(super) mod on_candle {
    use crate::family::FamilyDims;
    use crate::family::candle::{CandleCx, CandleTerms, ScoreTerms, tensor_from};
    use crate::family::kernels::rope::RopeTables;
    use candle_core::{D, DType, Device, Result, Tensor};

    /// cos and sin [n, d_h] (each half repeated) as constants.
    pub struct Rotation(pub FamilyDims);

    /// Half-split rotation of the last axis: x·cos + rotate_half(x)·sin, with
    /// rotate_half(a, b) = (−b, a).
    pub fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let half = x.dim(D::Minus1)? / 2;
        let (a, b) = (x.narrow(D::Minus1, 0, half)?, x.narrow(D::Minus1, half, half)?);
        let turned = Tensor::cat(&[&b.neg()?, &a], D::Minus1)?;
        x.broadcast_mul(cos)?.broadcast_add(&turned.broadcast_mul(sin)?)
    }

    impl CandleTerms for Rotation {
        fn constants(&self, n: usize, dtype: DType, device: &Device) -> Result<Vec<Tensor>> {
            let dh = self.0.head_dim;
            let t = RopeTables::<f64>::new(n, dh, self.0.rope_base);
            let full = |m: &ndarray::Array2<f64>| -> Vec<f64> {
                (0..n * dh).map(|k| m[[k / dh, (k % dh) % (dh / 2)]]).collect()
            };
            Ok(vec![
                tensor_from(&full(&t.cos), &[n, dh], dtype, device)?,
                tensor_from(&full(&t.sin), &[n, dh], dtype, device)?,
            ])
        }

        fn score_terms(&self, cx: &CandleCx, q: &Tensor, k: &Tensor) -> Result<Option<ScoreTerms>> {
            let (cos, sin) = (&cx.constants[0], &cx.constants[1]);
            Ok(Some(ScoreTerms { q: rotate(q, cos, sin)?, k: rotate(k, cos, sin)?, extra: None }))
        }
    }
}
