//! LayerNorm over the features of each row.

use super::layout::NormIds;
use crate::float::{Float, lane_dot, lane_sum};
use crate::params::Params;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2};

/// LayerNorm epsilon (PyTorch's default).
pub const LN_EPS: f64 = 1e-5;

/// Output of a LayerNorm and what its backward needs.
#[derive(Clone, Debug)]
pub struct NormCache<F> {
    /// y = x̂ ⊙ w + b, [rows, d].
    pub out: Array2<F>,
    /// Normalised input x̂ = (x − μ)·ρ, [rows, d].
    pub xhat: Array2<F>,
    /// Row means μ, [rows].
    pub mean: Array1<F>,
    /// Reciprocal standard deviations ρ = 1/√(σ² + ε) (biased σ²), [rows].
    pub rstd: Array1<F>,
}

impl<F: Float> NormCache<F> {
    /// Storage for `rows` rows of width `d`.
    pub fn new(rows: usize, d: usize) -> Self {
        NormCache {
            out: Array2::zeros((rows, d)),
            xhat: Array2::zeros((rows, d)),
            mean: Array1::zeros(rows),
            rstd: Array1::zeros(rows),
        }
    }
}

/// y_r = (x_r − μ_r)/√(σ_r² + ε) ⊙ w + b for every row r; caches x̂, μ and 1/√(σ² + ε).
/// Means are taken in eight lanes ([`lane_sum`]).
pub fn layernorm_forward<F: Float>(cache: &mut NormCache<F>, x: ArrayView2<F>, w: ArrayView1<F>, b: ArrayView1<F>) {
    let d = x.ncols();
    let inv_d = F::one() / F::c(d as f64);
    let eps = F::c(LN_EPS);
    let (w, b) = (w.as_slice().expect("contiguous gain"), b.as_slice().expect("contiguous bias"));
    let x = x.as_standard_layout();
    let rows = x.as_slice().expect("standard layout").chunks_exact(d);
    let out = cache.out.as_slice_mut().expect("contiguous").chunks_exact_mut(d);
    let xhat = cache.xhat.as_slice_mut().expect("contiguous").chunks_exact_mut(d);
    let stats = cache.mean.iter_mut().zip(cache.rstd.iter_mut());
    for (((x, y), xhat), (mean, rstd)) in rows.zip(out).zip(xhat).zip(stats) {
        let m = lane_sum(x) * inv_d;
        for (xh, &v) in xhat.iter_mut().zip(x) {
            *xh = v - m;
        }
        let var = lane_dot(xhat, xhat) * inv_d;
        let r = F::one() / (var + eps).sqrt();
        for ((y, xh), (&w, &b)) in y.iter_mut().zip(xhat.iter_mut()).zip(w.iter().zip(b)) {
            *xh *= r;
            *y = *xh * w + b;
        }
        *mean = m;
        *rstd = r;
    }
}

/// Backward of [`layernorm_forward`]: with g = dy ⊙ w, dx += ρ·(g − mean(g) − x̂·mean(g ⊙ x̂));
/// ∂w += Σ_rows dy ⊙ x̂, ∂b += Σ_rows dy (rows summed in order).
pub fn layernorm_backward<F: Float>(
    mut dx: ArrayViewMut2<F>,
    dparams: &mut Params<F>,
    ids: NormIds,
    dy: ArrayView2<F>,
    cache: &NormCache<F>,
    w: ArrayView1<F>,
) {
    let d = dy.ncols();
    let inv_d = F::one() / F::c(d as f64);
    let w = w.as_slice().expect("contiguous gain");
    let dy = dy.as_standard_layout();
    let dy = dy.as_slice().expect("standard layout");
    let xhat = cache.xhat.as_slice().expect("contiguous");
    let dx = dx.as_slice_mut().expect("dx is contiguous");
    let rows = dy.chunks_exact(d).zip(xhat.chunks_exact(d)).zip(dx.chunks_exact_mut(d)).zip(&cache.rstd);
    for (((dy, xhat), dx), &r) in rows {
        let (sum_g, sum_gx) = sums_of_g(dy, w, xhat);
        let (mean_g, mean_gx) = (sum_g * inv_d, sum_gx * inv_d);
        for ((dx, (&dy, &w)), &xh) in dx.iter_mut().zip(dy.iter().zip(w)).zip(xhat) {
            *dx += r * (dy * w - mean_g - xh * mean_gx);
        }
    }
    let mut dw = dparams.vec_mut(ids.weight);
    let dw = dw.as_slice_mut().expect("contiguous");
    for (dy, xhat) in dy.chunks_exact(d).zip(xhat.chunks_exact(d)) {
        for ((g, &dy), &xh) in dw.iter_mut().zip(dy).zip(xhat) {
            *g += dy * xh;
        }
    }
    let mut db = dparams.vec_mut(ids.bias);
    let db = db.as_slice_mut().expect("contiguous");
    for dy in dy.chunks_exact(d) {
        for (g, &dy) in db.iter_mut().zip(dy) {
            *g += dy;
        }
    }
}

/// (Σ_k g_k, Σ_k g_k·x̂_k) with g = dy ⊙ w, in eight lanes combined as [`lane_sum`].
#[inline]
fn sums_of_g<F: Float>(dy: &[F], w: &[F], xhat: &[F]) -> (F, F) {
    let (mut acc_g, mut acc_gx) = ([F::zero(); 8], [F::zero(); 8]);
    let chunks = dy.chunks_exact(8).zip(w.chunks_exact(8)).zip(xhat.chunks_exact(8));
    for ((dy, w), xh) in chunks {
        for k in 0..8 {
            let g = dy[k] * w[k];
            acc_g[k] += g;
            acc_gx[k] += g * xh[k];
        }
    }
    let (mut sum_g, mut sum_gx) = (lane_sum(&acc_g), lane_sum(&acc_gx));
    let done = dy.len() / 8 * 8;
    for ((&dy, &w), &xh) in dy[done..].iter().zip(&w[done..]).zip(&xhat[done..]) {
        sum_g += dy * w;
        sum_gx += dy * w * xh;
    }
    (sum_g, sum_gx)
}
