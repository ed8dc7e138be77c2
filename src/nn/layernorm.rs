//! LayerNorm over the features of each row.

use crate::float::Float;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Zip};

/// LayerNorm epsilon (PyTorch's default).
pub const LN_EPS: f64 = 1e-5;

/// Output of a LayerNorm and the statistics its backward needs.
#[derive(Clone, Debug)]
pub struct NormCache<F> {
    /// y = (x − μ)·ρ ⊙ w + b, [rows, d].
    pub out: Array2<F>,
    /// Row means μ, [rows].
    pub mean: Array1<F>,
    /// Reciprocal standard deviations ρ = 1/√(σ² + ε) (biased σ²), [rows].
    pub rstd: Array1<F>,
}

impl<F: Float> NormCache<F> {
    /// Storage for `rows` rows of width `d`.
    pub fn new(rows: usize, d: usize) -> Self {
        NormCache { out: Array2::zeros((rows, d)), mean: Array1::zeros(rows), rstd: Array1::zeros(rows) }
    }
}

/// y_r = (x_r − μ_r)/√(σ_r² + ε) ⊙ w + b for every row r; caches μ and 1/√(σ² + ε).
pub fn layernorm_forward<F: Float>(cache: &mut NormCache<F>, x: ArrayView2<F>, w: ArrayView1<F>, b: ArrayView1<F>) {
    let d = F::c(x.ncols() as f64);
    let eps = F::c(LN_EPS);
    Zip::from(cache.out.rows_mut()).and(&mut cache.mean).and(&mut cache.rstd).and(x.rows()).for_each(
        |mut y, mean, rstd, x| {
            let m = x.sum() / d;
            let var = x.iter().map(|&v| (v - m) * (v - m)).sum::<F>() / d;
            let r = F::one() / (var + eps).sqrt();
            Zip::from(&mut y).and(&x).and(&w).and(&b).for_each(|y, &x, &w, &b| *y = (x - m) * r * w + b);
            *mean = m;
            *rstd = r;
        },
    );
}
