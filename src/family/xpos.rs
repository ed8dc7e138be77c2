//! `xpos` (Sun et al. 2022): RoPE whose rotated queries are scaled by ζ_k^{i/γ} and rotated
//! keys by ζ_k^{−j/γ}, so that q_iᵀk_j gains ζ_k^{(i−j)/γ} per feature pair k: a decay with
//! distance that stays relative. ζ_k = (k/(d_h/2) + 0.4)/1.4 for pair k (features k and
//! k + d_h/2, RoPE's half-split pairing), γ = 512, positions from 0.

use super::kernels::rope::RopeTables;
use super::{ConfigError, FamilyDims, Placement, PositionFamily, Side, Terms, rope};
use crate::float::Float;
use ndarray::{Array2, ArrayViewMut2};

/// xPos: rotary embeddings with a relative exponential scale.
pub struct Xpos;

/// The scale base γ.
pub const SCALE_BASE: f64 = 512.0;

/// ζ_k^{i/γ} for positions i < n and pairs k < d_h/2, [n, d_h/2].
pub fn scales(n: usize, head_dim: usize) -> Array2<f64> {
    let half = head_dim / 2;
    Array2::from_shape_fn((n, half), |(i, k)| ((k as f64 / half as f64 + 0.4) / 1.4).powf(i as f64 / SCALE_BASE))
}

impl PositionFamily for Xpos {
    fn name(&self) -> &'static str {
        "xpos"
    }

    fn about(&self) -> &'static str {
        "xPos: RoPE with rotated q_i scaled by ζ^{i/γ} and k_j by ζ^{−j/γ}, γ = 512"
    }

    fn placement(&self) -> Placement {
        Placement {
            inside_softmax_only: true,
            reason: "only the scores q_iᵀk_j change (rotated and scaled); V does not",
        }
    }

    fn validate(&self, dims: &FamilyDims) -> Result<(), ConfigError> {
        rope::Rope.validate(dims)
    }

    #[cfg(feature = "candle")]
    fn candle(&self, dims: &FamilyDims) -> Option<Box<dyn super::candle::CandleTerms>> {
        Some(Box::new(on_candle::ScaledRotation(*dims)))
    }

    fn terms_f32(&self, dims: &FamilyDims) -> Box<dyn Terms<f32>> {
        Box::new(ScaledRotation::new(dims))
    }

    fn terms_f64(&self, dims: &FamilyDims) -> Box<dyn Terms<f64>> {
        Box::new(ScaledRotation::new(dims))
    }
}

/// Rotation by position, then the scale ζ^{±i/γ} (+ for queries, − for keys).
struct ScaledRotation<F> {
    rotation: RopeTables<F>,
    /// ζ_k^{i/γ}, [n_max, d_h/2].
    scale: Array2<F>,
}

impl<F: Float> ScaledRotation<F> {
    fn new(dims: &FamilyDims) -> Self {
        ScaledRotation {
            rotation: RopeTables::new(dims.n_max, dims.head_dim, dims.rope_base),
            scale: scales(dims.n_max, dims.head_dim).mapv(F::c),
        }
    }

    /// Multiplies row i, features k and k + d_h/2, by ζ_k^{i/γ} (queries) or its inverse (keys).
    fn scale(&self, side: Side, mut x: ArrayViewMut2<F>) {
        let half = x.ncols() / 2;
        for (i, mut row) in x.rows_mut().into_iter().enumerate() {
            for k in 0..half {
                let z = match side {
                    Side::Query => self.scale[[i, k]],
                    Side::Key => F::one() / self.scale[[i, k]],
                };
                row[k] *= z;
                row[k + half] *= z;
            }
        }
    }
}

impl<F: Float> Terms<F> for ScaledRotation<F> {
    fn transforms(&self) -> bool {
        true
    }

    /// x ← D·R·x row by row; the transpose is Rᵀ·D·x (D is diagonal).
    fn transform(&self, side: Side, mut x: ArrayViewMut2<F>, transpose: bool) {
        if transpose {
            self.scale(side, x.view_mut());
            self.rotation.rotate(x, -F::one());
        } else {
            self.rotation.rotate(x.view_mut(), F::one());
            self.scale(side, x);
        }
    }
}

#[cfg(feature = "candle")]
mod on_candle {
    use super::scales;
    use crate::family::FamilyDims;
    use crate::family::candle::{CandleCx, CandleTerms, ScoreTerms, tensor_from};
    use crate::family::kernels::rope::RopeTables;
    use crate::family::rope::on_candle::rotate;
    use candle_core::{DType, Device, Result, Tensor};

    /// cos, sin and the query and key scales [n, d_h] (each half repeated) as constants.
    pub struct ScaledRotation(pub FamilyDims);

    impl CandleTerms for ScaledRotation {
        fn constants(&self, n: usize, dtype: DType, device: &Device) -> Result<Vec<Tensor>> {
            let dh = self.0.head_dim;
            let t = RopeTables::<f64>::new(n, dh, self.0.rope_base);
            let z = scales(n, dh);
            let full = |m: &ndarray::Array2<f64>, f: &dyn Fn(f64) -> f64| -> Vec<f64> {
                (0..n * dh).map(|k| f(m[[k / dh, (k % dh) % (dh / 2)]])).collect()
            };
            Ok(vec![
                tensor_from(&full(&t.cos, &|v| v), &[n, dh], dtype, device)?,
                tensor_from(&full(&t.sin, &|v| v), &[n, dh], dtype, device)?,
                tensor_from(&full(&z, &|v| v), &[n, dh], dtype, device)?,
                tensor_from(&full(&z, &|v| 1.0 / v), &[n, dh], dtype, device)?,
            ])
        }

        fn score_terms(&self, cx: &CandleCx, q: &Tensor, k: &Tensor) -> Result<Option<ScoreTerms>> {
            let [cos, sin, up, down] = cx.constants else { unreachable!("four constants") };
            let q = rotate(q, cos, sin)?.broadcast_mul(up)?;
            let k = rotate(k, cos, sin)?.broadcast_mul(down)?;
            Ok(Some(ScoreTerms { q, k, extra: None }))
        }
    }
}
