//! `ape-learned`: a learned vector p_i added to input row i (`pos.ape`, [n_max, d]).

use super::{FamilyDims, FamilyIds, Placement, PositionFamily, Terms, WEIGHT};
use crate::float::Float;
use crate::params::{ParamLayout, Params};
use ndarray::{ArrayView2, s};

/// Learned absolute positions p_i added to the input rows.
pub struct ApeLearned;

impl PositionFamily for ApeLearned {
    fn name(&self) -> &'static str {
        "ape-learned"
    }

    fn about(&self) -> &'static str {
        "learned absolute positions: input row i + p_i"
    }

    fn placement(&self) -> Placement {
        Placement { inside_softmax_only: false, reason: "the rows of a constant input differ before the first layer" }
    }

    fn score_term_is_bias(&self) -> bool {
        true
    }

    fn declare_input(&self, t: &mut ParamLayout, dims: &FamilyDims) -> FamilyIds {
        FamilyIds::new(&[t.push("pos.ape", &[dims.n_max, dims.width], WEIGHT)])
    }

    #[cfg(feature = "candle")]
    fn candle(&self, _dims: &FamilyDims) -> Option<Box<dyn super::candle::CandleTerms>> {
        Some(Box::new(on_candle::LearnedRows))
    }

    fn terms_f32(&self, _: &FamilyDims) -> Box<dyn Terms<f32>> {
        Box::new(LearnedRows)
    }

    fn terms_f64(&self, _: &FamilyDims) -> Box<dyn Terms<f64>> {
        Box::new(LearnedRows)
    }
}

/// The input term of `ape-learned`.
struct LearnedRows;

impl<F: Float> Terms<F> for LearnedRows {
    fn input_rows<'a>(&'a self, p: &'a Params<F>, ids: &FamilyIds) -> Option<ArrayView2<'a, F>> {
        Some(p.mat(ids.get(0)))
    }

    fn input_rows_backward(&self, d: ArrayView2<F>, ids: &FamilyIds, grads: &mut Params<F>) {
        let n = d.nrows();
        grads.mat_mut(ids.get(0)).slice_mut(s![..n, ..]).zip_mut_with(&d, |g, &d| *g += d);
    }
}

#[cfg(feature = "candle")]
mod on_candle {
    use crate::family::candle::{CandleCx, CandleTerms};
    use candle_core::{Result, Tensor};

    /// `pos.ape` rows 0..n.
    pub struct LearnedRows;

    impl CandleTerms for LearnedRows {
        fn input_rows(&self, cx: &CandleCx) -> Result<Option<Tensor>> {
            Ok(Some(cx.tensor(0).narrow(0, 0, cx.n)?))
        }
    }
}
