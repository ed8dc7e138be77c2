//! `xl` (Transformer-XL): scores + u_h·k_j + (q_i + v_h)·R_{i−j}W_R, scaled by 1/√d_h like
//! the content term, with learned u, v [heads, d_h] (`{prefix}.xl_u`, `{prefix}.xl_v`),
//! W_R [d, d] (`{prefix}.xl_r`) and the fixed sinusoid R of the distance i − j.

use super::kernels::relative::{self, window, window_mut};
use super::kernels::sinusoid;
use super::{
    ConfigError, FamilyDims, FamilyIds, Head, Placement, PositionFamily, Terms, WEIGHT, Work, add_grad_block,
    grad_block, grad_block_ref,
};
use crate::float::Float;
use crate::params::{ParamLayout, Params};
use ndarray::linalg::{general_mat_mul, general_mat_vec_mul};
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis, Zip, s};

/// Transformer-XL's relative position terms.
pub struct Xl;

impl PositionFamily for Xl {
    fn name(&self) -> &'static str {
        "xl"
    }

    fn about(&self) -> &'static str {
        "Transformer-XL: content, content-position and the u, v bias terms in the scores"
    }

    fn placement(&self) -> Placement {
        Placement { inside_softmax_only: true, reason: "terms in the scores only" }
    }

    fn declare(&self, t: &mut ParamLayout, prefix: &str, dims: &FamilyDims) -> FamilyIds {
        let (h, dh, d) = (dims.heads, dims.head_dim, dims.width);
        FamilyIds::new(&[
            t.push(format!("{prefix}.xl_u"), &[h, dh], WEIGHT),
            t.push(format!("{prefix}.xl_v"), &[h, dh], WEIGHT),
            t.push(format!("{prefix}.xl_r"), &[d, d], WEIGHT),
        ])
    }

    fn validate(&self, dims: &FamilyDims) -> Result<(), ConfigError> {
        if !dims.width.is_multiple_of(2) {
            return Err(ConfigError::new(
                "width",
                dims.width,
                "xl pairs sine and cosine features of its relative table, so width must be even",
            ));
        }
        Ok(())
    }

    fn derived_shape(&self, dims: &FamilyDims) -> (usize, usize) {
        (dims.offsets(), dims.width)
    }

    fn grad_len(&self, dims: &FamilyDims) -> usize {
        2 * dims.heads * dims.head_dim + dims.offsets() * dims.width
    }

    #[cfg(feature = "candle")]
    fn candle(&self, dims: &FamilyDims) -> Option<Box<dyn super::candle::CandleTerms>> {
        Some(Box::new(on_candle::XlTerms(*dims)))
    }

    fn terms_f32(&self, dims: &FamilyDims) -> Box<dyn Terms<f32>> {
        Box::new(XlTerms::new(dims))
    }

    fn terms_f64(&self, dims: &FamilyDims) -> Box<dyn Terms<f64>> {
        Box::new(XlTerms::new(dims))
    }
}

const U: usize = 0;
const V: usize = 1;
const R: usize = 2;

/// The sinusoid of distances [2·n_max − 1, d] and the gradient layout: u, v, then the
/// projected table R·W_R [2·n_max − 1, d].
struct XlTerms<F> {
    sinusoid: Array2<F>,
    heads: usize,
    head_dim: usize,
}

impl<F: Float> XlTerms<F> {
    fn new(dims: &FamilyDims) -> Self {
        XlTerms {
            sinusoid: sinusoid::distance_table(dims.n_max, dims.width),
            heads: dims.heads,
            head_dim: dims.head_dim,
        }
    }

    fn uv_len(&self) -> usize {
        self.heads * self.head_dim
    }

    fn row<'a>(&self, head: &'a Head<F>, which: usize) -> ArrayView1<'a, F> {
        head.params.mat(head.ids.get(which)).index_axis_move(Axis(0), head.h)
    }
}

/// x = q + b row by row, written into `out` [n, d_h].
fn shifted<F: Float>(mut out: ArrayViewMut2<F>, q: ArrayView2<F>, b: ArrayView1<F>) {
    for (mut row, qi) in out.rows_mut().into_iter().zip(q.rows()) {
        Zip::from(&mut row).and(&qi).and(&b).for_each(|x, &q, &b| *x = q + b);
    }
}

impl<F: Float> Terms<F> for XlTerms<F> {
    fn derive(&self, p: &Params<F>, ids: &FamilyIds, mut out: ArrayViewMut2<F>) {
        general_mat_mul(F::one(), &self.sinusoid, &p.mat(ids.get(R)), F::zero(), &mut out);
    }

    fn scores(&self, head: &Head<F>, mut s: ArrayViewMut2<F>, work: &mut Work<F>) {
        // u term: S_ij += scale · u_h·k_j, the same for every row i
        general_mat_vec_mul(F::one(), &head.k, &self.row(head, U), F::zero(), &mut work.v);
        for mut row in s.rows_mut() {
            row.zip_mut_with(&work.v, |s, &w| *s += head.scale * w);
        }
        // position term: S_ij += scale · (q_i + v_h)·(R W_R)_{j−i}
        shifted(work.a.view_mut(), head.q, self.row(head, V));
        let win = window(head.derived.slice(s![.., head.cols.clone()]), head.n);
        relative::relative_scores_forward(s, work.a.view(), win, head.scale, work.skewed.view_mut());
    }

    fn scores_backward(
        &self,
        head: &Head<F>,
        ds: ArrayView2<F>,
        mut dq: ArrayViewMut2<F>,
        mut dk: ArrayViewMut2<F>,
        grad: &mut [F],
        work: &mut Work<F>,
    ) {
        let (h, dh, uv) = (head.h, self.head_dim, self.uv_len());
        // u term: du_h += scale · Σ_j (Σ_i dS_ij) k_j; dk_j += scale · (Σ_i dS_ij) u_h
        // column sums of dS, in row order (as a sum over rows would give them)
        work.v.fill(F::zero());
        for row in ds.rows() {
            work.v += &row;
        }
        let (col_sums, u) = (&work.v, self.row(head, U));
        {
            let mut du = grad_block(grad, 0, self.heads, dh);
            let mut du = du.row_mut(h);
            for (c, kj) in col_sums.iter().zip(head.k.rows()) {
                du.zip_mut_with(&kj, |g, &k| *g += head.scale * *c * k);
            }
        }
        for (c, mut dkj) in col_sums.iter().zip(dk.rows_mut()) {
            dkj.zip_mut_with(&u, |g, &u| *g += head.scale * *c * u);
        }
        // position term: x = q + v_h; ∂L/∂x goes to dq and, summed over rows, to v_h
        shifted(work.a.view_mut(), head.q, self.row(head, V));
        work.b.fill(F::zero());
        let rel_len = self.sinusoid.len();
        let dwin = window_mut(
            grad_block(grad, 2 * uv, rel_len / self.sinusoid.ncols(), self.sinusoid.ncols())
                .slice_move(s![.., head.cols.clone()]),
            head.n,
        );
        let win = window(head.derived.slice(s![.., head.cols.clone()]), head.n);
        relative::relative_scores_backward(
            work.b.view_mut(),
            dwin,
            ds,
            work.a.view(),
            win,
            head.scale,
            work.skewed.view_mut(),
        );
        dq += &work.b;
        let mut dv = grad_block(grad, uv, self.heads, dh);
        let mut dv = dv.row_mut(h);
        for row in work.b.rows() {
            dv += &row;
        }
    }

    fn fold_grads(&self, total: &[F], _p: &Params<F>, ids: &FamilyIds, _derived: ArrayView2<F>, grads: &mut Params<F>) {
        let uv = self.uv_len();
        add_grad_block(grads, ids.get(U), total, 0);
        add_grad_block(grads, ids.get(V), total, uv);
        let (rows, cols) = self.sinusoid.dim();
        let drel = grad_block_ref(total, 2 * uv, rows, cols);
        general_mat_mul(F::one(), &self.sinusoid.t(), &drel, F::one(), &mut grads.mat_mut(ids.get(R)));
    }
}

#[cfg(feature = "candle")]
mod on_candle {
    use crate::family::FamilyDims;
    use crate::family::candle::{CandleCx, CandleTerms, ScoreTerms, tensor_from};
    use crate::family::kernels::sinusoid;
    use candle_core::{DType, Device, Result, Tensor};

    /// The sinusoid of distances [2·n_max − 1, d] as a constant.
    pub struct XlTerms(pub FamilyDims);

    impl CandleTerms for XlTerms {
        fn constants(&self, _n: usize, dtype: DType, device: &Device) -> Result<Vec<Tensor>> {
            let t = sinusoid::distance_table::<f64>(self.0.n_max, self.0.width);
            Ok(vec![tensor_from(t.as_slice().expect("contiguous"), &[t.nrows(), t.ncols()], dtype, device)?])
        }

        fn score_terms(&self, cx: &CandleCx, q: &Tensor, k: &Tensor) -> Result<Option<ScoreTerms>> {
            let (b, h, n, dh) = q.dims4()?;
            let head = |t: &Tensor| t.reshape((1, h, 1, dh));
            let (u, v, r) = (cx.tensor(super::U), cx.tensor(super::V), cx.tensor(super::R));
            let rel = cx.constants[0].matmul(r)?;
            let rel = rel.reshape((self.0.offsets(), h, dh))?.transpose(0, 1)?; // [h, offsets, dh]
            let win = cx.window(&rel, 1)?.contiguous()?;
            let x = q.broadcast_add(&head(v)?)?.transpose(0, 1)?.contiguous()?.reshape((h, b * n, dh))?;
            let m = x.matmul(&win.transpose(1, 2)?.contiguous()?)?.reshape((h, b, n, 2 * n - 1))?.transpose(0, 1)?;
            Ok(Some(ScoreTerms { q: q.broadcast_add(&head(u)?)?, k: k.clone(), extra: Some(cx.unskew(&m)?) }))
        }
    }
}
