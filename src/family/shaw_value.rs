//! `shaw-value` (Shaw et al., value side): out_i = Σ_j G_ij (v_j + a^V_{j−i}), one table
//! `{prefix}.shaw_value` [2·n_max − 1, d_h] shared by the heads.

use super::kernels::relative::{self, window, window_mut};
use super::{FamilyDims, FamilyIds, Head, Placement, PositionFamily, Terms, WEIGHT, Work, add_grad_block, grad_block};
use crate::float::Float;
use crate::params::{ParamLayout, Params};
use ndarray::{ArrayView2, ArrayViewMut2};

/// Shaw et al.'s relative positions on the value side.
pub struct ShawValue;

impl PositionFamily for ShawValue {
    fn name(&self) -> &'static str {
        "shaw-value"
    }

    fn about(&self) -> &'static str {
        "Shaw et al., value side: out_i = Σ_j A_ij (v_j + a^V_{j−i})"
    }

    fn placement(&self) -> Placement {
        Placement { inside_softmax_only: false, reason: "a position vector is added to the values, after the softmax" }
    }

    fn score_term_is_bias(&self) -> bool {
        true
    }

    fn declare(&self, t: &mut ParamLayout, prefix: &str, dims: &FamilyDims) -> FamilyIds {
        FamilyIds::new(&[t.push(format!("{prefix}.shaw_value"), &[dims.offsets(), dims.head_dim], WEIGHT)])
    }

    fn grad_len(&self, dims: &FamilyDims) -> usize {
        dims.offsets() * dims.head_dim
    }

    #[cfg(feature = "candle")]
    fn candle(&self, dims: &FamilyDims) -> Option<Box<dyn super::candle::CandleTerms>> {
        Some(Box::new(on_candle::ValueTable(dims.head_dim)))
    }

    fn terms_f32(&self, dims: &FamilyDims) -> Box<dyn Terms<f32>> {
        Box::new(ValueTable { offsets: dims.offsets(), head_dim: dims.head_dim })
    }

    fn terms_f64(&self, dims: &FamilyDims) -> Box<dyn Terms<f64>> {
        Box::new(ValueTable { offsets: dims.offsets(), head_dim: dims.head_dim })
    }
}

/// out_i += Σ_j G_ij t_{j−i} with t the family's table [offsets, d_h].
struct ValueTable {
    offsets: usize,
    head_dim: usize,
}

impl<F: Float> Terms<F> for ValueTable {
    fn values(&self, head: &Head<F>, mix: ArrayView2<F>, out: ArrayViewMut2<F>, work: &mut Work<F>) {
        let win = window(head.params.mat(head.ids.get(0)), head.n);
        relative::relative_values_forward(out, mix, win, work.skewed.view_mut());
    }

    fn values_backward(
        &self,
        head: &Head<F>,
        mix: ArrayView2<F>,
        dout: ArrayView2<F>,
        dmix: ArrayViewMut2<F>,
        grad: &mut [F],
        work: &mut Work<F>,
    ) {
        let dwin = window_mut(grad_block(grad, 0, self.offsets, self.head_dim), head.n);
        let win = window(head.params.mat(head.ids.get(0)), head.n);
        relative::relative_values_backward(dmix, dwin, dout, mix, win, work.skewed.view_mut());
    }

    fn fold_grads(&self, total: &[F], _p: &Params<F>, ids: &FamilyIds, _derived: ArrayView2<F>, grads: &mut Params<F>) {
        add_grad_block(grads, ids.get(0), total, 0);
    }
}

#[cfg(feature = "candle")]
mod on_candle {
    use crate::family::candle::{CandleCx, CandleTerms};
    use candle_core::{Result, Tensor};

    /// skew(G)·table [b, h, n, d_h].
    pub struct ValueTable(pub usize);

    impl CandleTerms for ValueTable {
        fn value_term(&self, cx: &CandleCx, mix: &Tensor) -> Result<Option<Tensor>> {
            let (b, h, n, _) = mix.dims4()?;
            let w = cx.skew(mix)?.reshape((b * h * n, 2 * n - 1))?;
            let win = cx.window(cx.tensor(0), 0)?;
            Ok(Some(w.matmul(&win)?.reshape((b, h, n, self.0))?))
        }
    }
}
