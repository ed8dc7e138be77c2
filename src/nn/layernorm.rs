//! LayerNorm over the features of each row.

use super::layout::NormIds;
use crate::float::Float;
use crate::params::Params;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Zip};

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
pub fn layernorm_forward<F: Float>(cache: &mut NormCache<F>, x: ArrayView2<F>, w: ArrayView1<F>, b: ArrayView1<F>) {
    let d = F::c(x.ncols() as f64);
    let eps = F::c(LN_EPS);
    Zip::from(cache.out.rows_mut())
        .and(cache.xhat.rows_mut())
        .and(&mut cache.mean)
        .and(&mut cache.rstd)
        .and(x.rows())
        .for_each(|mut y, mut xhat, mean, rstd, x| {
            let m = x.sum() / d;
            let var = x.iter().map(|&v| (v - m) * (v - m)).sum::<F>() / d;
            let r = F::one() / (var + eps).sqrt();
            Zip::from(&mut y).and(&mut xhat).and(&x).and(&w).and(&b).for_each(|y, xh, &x, &w, &b| {
                *xh = (x - m) * r;
                *y = *xh * w + b;
            });
            *mean = m;
            *rstd = r;
        });
}

/// Backward of [`layernorm_forward`]: with g = dy ⊙ w, dx += ρ·(g − mean(g) − x̂·mean(g ⊙ x̂));
/// ∂w += Σ_rows dy ⊙ x̂, ∂b += Σ_rows dy.
pub fn layernorm_backward<F: Float>(
    mut dx: ArrayViewMut2<F>,
    dparams: &mut Params<F>,
    ids: NormIds,
    dy: ArrayView2<F>,
    cache: &NormCache<F>,
    w: ArrayView1<F>,
) {
    let d = F::c(dy.ncols() as f64);
    Zip::from(dx.rows_mut()).and(dy.rows()).and(cache.xhat.rows()).and(&cache.rstd).for_each(|mut dx, dy, xhat, &r| {
        let (mut mean_g, mut mean_gx) = (F::zero(), F::zero());
        Zip::from(&dy).and(&w).and(&xhat).for_each(|&dy, &w, &xh| {
            mean_g += dy * w;
            mean_gx += dy * w * xh;
        });
        mean_g /= d;
        mean_gx /= d;
        Zip::from(&mut dx).and(&dy).and(&w).and(&xhat).for_each(|dx, &dy, &w, &xh| {
            *dx += r * (dy * w - mean_g - xh * mean_gx);
        });
    });
    {
        let mut dw = dparams.vec_mut(ids.weight);
        for (dy, xhat) in dy.rows().into_iter().zip(cache.xhat.rows()) {
            Zip::from(&mut dw).and(&dy).and(&xhat).for_each(|g, &dy, &xh| *g += dy * xh);
        }
    }
    let mut db = dparams.vec_mut(ids.bias);
    for dy in dy.rows() {
        db += &dy;
    }
}
