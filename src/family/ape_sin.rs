//! `ape-sin`: the sinusoid of position i (counted from 0) added to input row i.

use super::kernels::sinusoid;
use super::{ConfigError, FamilyDims, FamilyIds, Placement, PositionFamily, Terms};
use crate::float::Float;
use crate::params::Params;
use ndarray::{Array2, ArrayView2};

/// Sinusoidal absolute positions added to the input rows.
pub struct ApeSin;

impl PositionFamily for ApeSin {
    fn name(&self) -> &'static str {
        "ape-sin"
    }

    fn about(&self) -> &'static str {
        "sinusoidal absolute positions: input row i + sin/cos(i·ω_k)"
    }

    fn placement(&self) -> Placement {
        Placement { inside_softmax_only: false, reason: "the rows of a constant input differ before the first layer" }
    }

    fn score_term_is_bias(&self) -> bool {
        true
    }

    fn validate(&self, dims: &FamilyDims) -> Result<(), ConfigError> {
        if !dims.width.is_multiple_of(2) {
            return Err(ConfigError::new(
                "width",
                dims.width,
                "ape-sin pairs sine and cosine features, so width must be even",
            ));
        }
        Ok(())
    }

    #[cfg(feature = "candle")]
    fn candle(&self, dims: &FamilyDims) -> Option<Box<dyn super::candle::CandleTerms>> {
        Some(Box::new(on_candle::SinRows(*dims)))
    }

    fn terms_f32(&self, dims: &FamilyDims) -> Box<dyn Terms<f32>> {
        Box::new(SinRows::new(dims))
    }

    fn terms_f64(&self, dims: &FamilyDims) -> Box<dyn Terms<f64>> {
        Box::new(SinRows::new(dims))
    }
}

/// The fixed input rows of `ape-sin`, [n_max, d].
struct SinRows<F>(Array2<F>);

impl<F: Float> SinRows<F> {
    fn new(dims: &FamilyDims) -> Self {
        SinRows(sinusoid::position_table(dims.n_max, dims.width))
    }
}

impl<F: Float> Terms<F> for SinRows<F> {
    fn input_rows<'a>(&'a self, _p: &'a Params<F>, _ids: &FamilyIds) -> Option<ArrayView2<'a, F>> {
        Some(self.0.view())
    }
}

#[cfg(feature = "candle")]
mod on_candle {
    use crate::family::FamilyDims;
    use crate::family::candle::{CandleCx, CandleTerms, tensor_from};
    use crate::family::kernels::sinusoid;
    use candle_core::{DType, Device, Result, Tensor};

    /// The sinusoid rows [n, d] as a constant.
    pub struct SinRows(pub FamilyDims);

    impl CandleTerms for SinRows {
        fn constants(&self, n: usize, dtype: DType, device: &Device) -> Result<Vec<Tensor>> {
            let t = sinusoid::position_table::<f64>(n, self.0.width);
            Ok(vec![tensor_from(t.as_slice().expect("contiguous"), &[n, self.0.width], dtype, device)?])
        }

        fn input_rows(&self, cx: &CandleCx) -> Result<Option<Tensor>> {
            Ok(Some(cx.constants[0].clone()))
        }
    }
}
