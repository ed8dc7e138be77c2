//! `alibi`: scores − m_h·|j − i| with fixed geometric slopes m_h (no parameters).

use super::kernels::{alibi, toeplitz};
use super::{FamilyDims, Head, Placement, PositionFamily, Terms, Work};
use crate::float::Float;
use ndarray::{Array2, ArrayViewMut2};

/// ALiBi: a fixed linear penalty on distance per head.
pub struct Alibi;

impl PositionFamily for Alibi {
    fn name(&self) -> &'static str {
        "alibi"
    }

    fn about(&self) -> &'static str {
        "ALiBi: scores − m_h·|j − i| with fixed geometric slopes"
    }

    fn placement(&self) -> Placement {
        Placement { inside_softmax_only: true, reason: "a fixed term in the scores" }
    }

    fn score_term_is_bias(&self) -> bool {
        true
    }

    #[cfg(feature = "candle")]
    fn candle(&self, dims: &FamilyDims) -> Option<Box<dyn super::candle::CandleTerms>> {
        Some(Box::new(on_candle::FixedBias(*dims)))
    }

    fn terms_f32(&self, dims: &FamilyDims) -> Box<dyn Terms<f32>> {
        Box::new(FixedBias(alibi::offset_bias(dims.heads, dims.n_max)))
    }

    fn terms_f64(&self, dims: &FamilyDims) -> Box<dyn Terms<f64>> {
        Box::new(FixedBias(alibi::offset_bias(dims.heads, dims.n_max)))
    }
}

/// S_ij += e_h[(j − i) + n_max − 1] with a fixed table e [heads, offsets].
struct FixedBias<F>(Array2<F>);

impl<F: Float> Terms<F> for FixedBias<F> {
    fn scores(&self, head: &Head<F>, s: ArrayViewMut2<F>, _work: &mut Work<F>) {
        toeplitz::add_offset_rows(s, self.0.row(head.h), head.n_max);
    }

    fn offset_bias(&self, _p: &crate::params::Params<F>, _ids: &super::FamilyIds) -> Option<Array2<F>> {
        Some(self.0.clone())
    }
}

#[cfg(feature = "candle")]
mod on_candle {
    use crate::family::FamilyDims;
    use crate::family::candle::{CandleCx, CandleTerms, tensor_from};
    use crate::family::kernels::alibi;
    use candle_core::{DType, Device, Result, Tensor};

    /// −m_h·|j − i| laid out [h, n, n].
    pub struct FixedBias(pub FamilyDims);

    impl CandleTerms for FixedBias {
        fn constants(&self, n: usize, dtype: DType, device: &Device) -> Result<Vec<Tensor>> {
            let (heads, n_max) = (self.0.heads, self.0.n_max);
            let a = alibi::offset_bias::<f64>(heads, n_max);
            let values: Vec<f64> =
                (0..heads * n * n).map(|k| a[[k / (n * n), (k % n) + n_max - 1 - (k / n) % n]]).collect();
            Ok(vec![tensor_from(&values, &[heads, n, n], dtype, device)?])
        }

        fn fixed_bias(&self, cx: &CandleCx) -> Option<Tensor> {
            Some(cx.constants[0].clone())
        }
    }
}
