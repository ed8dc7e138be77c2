//! `shaw-key` (Shaw et al., key side): scores + q_i·a^K_{j−i}/√d_h, one table
//! `{prefix}.shaw_key` [2·n_max − 1, d_h] shared by the heads.

use super::kernels::relative::{self, window, window_mut};
use super::{FamilyDims, FamilyIds, Head, Placement, PositionFamily, Terms, WEIGHT, Work, add_grad_block, grad_block};
use crate::float::Float;
use crate::params::{ParamLayout, Params};
use ndarray::{ArrayView2, ArrayViewMut2};

/// Shaw et al.'s relative positions on the key side.
pub struct ShawKey;

impl PositionFamily for ShawKey {
    fn name(&self) -> &'static str {
        "shaw-key"
    }

    fn about(&self) -> &'static str {
        "Shaw et al., key side: scores + q_i·a^K_{j−i}/√d_h"
    }

    fn placement(&self) -> Placement {
        Placement { inside_softmax_only: true, reason: "a term in the scores" }
    }

    fn declare(&self, t: &mut ParamLayout, prefix: &str, dims: &FamilyDims) -> FamilyIds {
        FamilyIds::new(&[t.push(format!("{prefix}.shaw_key"), &[dims.offsets(), dims.head_dim], WEIGHT)])
    }

    fn grad_len(&self, dims: &FamilyDims) -> usize {
        dims.offsets() * dims.head_dim
    }

    #[cfg(feature = "candle")]
    fn candle(&self, _dims: &FamilyDims) -> Option<Box<dyn super::candle::CandleTerms>> {
        Some(Box::new(on_candle::KeyTable))
    }

    fn terms_f32(&self, dims: &FamilyDims) -> Box<dyn Terms<f32>> {
        Box::new(KeyTable { offsets: dims.offsets(), head_dim: dims.head_dim })
    }

    fn terms_f64(&self, dims: &FamilyDims) -> Box<dyn Terms<f64>> {
        Box::new(KeyTable { offsets: dims.offsets(), head_dim: dims.head_dim })
    }
}

/// S_ij += scale · q_i·t_{j−i} with t the family's table [offsets, d_h].
struct KeyTable {
    offsets: usize,
    head_dim: usize,
}

impl<F: Float> Terms<F> for KeyTable {
    fn scores(&self, head: &Head<F>, s: ArrayViewMut2<F>, work: &mut Work<F>) {
        let win = window(head.params.mat(head.ids.get(0)), head.n);
        relative::relative_scores_forward(s, head.q, win, head.scale, work.skewed.view_mut());
    }

    fn scores_backward(
        &self,
        head: &Head<F>,
        ds: ArrayView2<F>,
        dq: ArrayViewMut2<F>,
        _dk: ArrayViewMut2<F>,
        grad: &mut [F],
        work: &mut Work<F>,
    ) {
        let dwin = window_mut(grad_block(grad, 0, self.offsets, self.head_dim), head.n);
        let win = window(head.params.mat(head.ids.get(0)), head.n);
        relative::relative_scores_backward(dq, dwin, ds, head.q, win, head.scale, work.skewed.view_mut());
    }

    fn fold_grads(&self, total: &[F], _p: &Params<F>, ids: &FamilyIds, _derived: ArrayView2<F>, grads: &mut Params<F>) {
        add_grad_block(grads, ids.get(0), total, 0);
    }
}

#[cfg(feature = "candle")]
mod on_candle {
    use crate::family::candle::{CandleCx, CandleTerms, ScoreTerms, against_shared};
    use candle_core::{Result, Tensor};

    /// E = unskew(q · tableᵀ).
    pub struct KeyTable;

    impl CandleTerms for KeyTable {
        fn score_terms(&self, cx: &CandleCx, q: &Tensor, k: &Tensor) -> Result<Option<ScoreTerms>> {
            let m = against_shared(q, &cx.window(cx.tensor(0), 0)?)?;
            Ok(Some(ScoreTerms { q: q.clone(), k: k.clone(), extra: Some(cx.unskew(&m)?) }))
        }
    }
}
