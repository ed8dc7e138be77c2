//! `t5`: scores + b_h[j − i], one learned value per offset and head (`{prefix}.t5`,
//! [heads, 2·n_max − 1], offset j − i at index (j − i) + n_max − 1).

use super::kernels::toeplitz;
use super::{FamilyDims, FamilyIds, Head, Placement, PositionFamily, Terms, WEIGHT, Work, add_grad_block, grad_block};
use crate::float::Float;
use crate::params::{ParamLayout, Params};
use ndarray::{ArrayView2, ArrayViewMut2, Axis};

/// T5 / RPE bias: one learned score bias per offset and head.
pub struct T5;

impl PositionFamily for T5 {
    fn name(&self) -> &'static str {
        "t5"
    }

    fn about(&self) -> &'static str {
        "T5 / RPE bias: scores + b_h[j − i], one learned value per offset and head"
    }

    fn placement(&self) -> Placement {
        Placement { inside_softmax_only: true, reason: "a term in the scores changes A, which stays right-stochastic" }
    }

    fn score_term_is_bias(&self) -> bool {
        true
    }

    fn declare(&self, t: &mut ParamLayout, prefix: &str, dims: &FamilyDims) -> FamilyIds {
        FamilyIds::new(&[t.push(format!("{prefix}.t5"), &[dims.heads, dims.offsets()], WEIGHT)])
    }

    fn grad_len(&self, dims: &FamilyDims) -> usize {
        dims.heads * dims.offsets()
    }

    #[cfg(feature = "candle")]
    fn candle(&self, _dims: &FamilyDims) -> Option<Box<dyn super::candle::CandleTerms>> {
        Some(Box::new(on_candle::LearnedBias))
    }

    fn terms_f32(&self, dims: &FamilyDims) -> Box<dyn Terms<f32>> {
        Box::new(LearnedOffsetBias { heads: dims.heads, offsets: dims.offsets() })
    }

    fn terms_f64(&self, dims: &FamilyDims) -> Box<dyn Terms<f64>> {
        Box::new(LearnedOffsetBias { heads: dims.heads, offsets: dims.offsets() })
    }
}

/// S_ij += b_h[(j − i) + n_max − 1] with b the family's first tensor [heads, offsets].
struct LearnedOffsetBias {
    heads: usize,

    offsets: usize,
}

impl<F: Float> Terms<F> for LearnedOffsetBias {
    fn scores(&self, head: &Head<F>, s: ArrayViewMut2<F>, _work: &mut Work<F>) {
        toeplitz::add_offset_rows(s, head.params.mat(head.ids.get(0)).row(head.h), head.n_max);
    }

    fn scores_backward(
        &self,
        head: &Head<F>,
        ds: ArrayView2<F>,
        _dq: ArrayViewMut2<F>,
        _dk: ArrayViewMut2<F>,
        grad: &mut [F],
        _work: &mut Work<F>,
    ) {
        let db = grad_block(grad, 0, self.heads, self.offsets).index_axis_move(Axis(0), head.h);
        toeplitz::offset_rows_backward(db, ds, head.n_max);
    }

    fn offset_bias(&self, p: &Params<F>, ids: &FamilyIds) -> Option<ndarray::Array2<F>> {
        Some(p.mat(ids.get(0)).to_owned())
    }

    fn fold_grads(&self, total: &[F], _p: &Params<F>, ids: &FamilyIds, _derived: ArrayView2<F>, grads: &mut Params<F>) {
        add_grad_block(grads, ids.get(0), total, 0);
    }
}

#[cfg(feature = "candle")]
mod on_candle {
    use crate::family::candle::{CandleCx, CandleTerms, expand};
    use candle_core::{Result, Tensor};

    /// The t5 table laid out [h, n, n].
    pub struct LearnedBias;

    impl CandleTerms for LearnedBias {
        fn learned_bias(&self, cx: &CandleCx) -> Result<Option<Tensor>> {
            Ok(Some(expand(cx.tensor(0), cx.offsets, cx.n)?))
        }
    }
}
