//! Training losses with their gradients with respect to the model output.

use crate::float::{Float, lane_max};
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, Zip};

/// Squared error averaged over `mean_over` entries, L = (1/N)·Σ (y − t)²; writes
/// ∂L/∂y = 2(y − t)/N. N is the whole batch's entry count, so the losses and gradients of
/// the parts of a batch add up to the batch's. The loss is accumulated in f64.
pub fn mse_loss<F: Float>(
    d_out: ArrayViewMut2<F>,
    pred: ArrayView2<F>,
    target: ArrayView2<F>,
    mean_over: usize,
) -> f64 {
    let count = mean_over as f64;
    let scale = F::c(2.0 / count);
    let mut sum = 0.0f64;
    Zip::from(d_out).and(pred).and(target).for_each(|d, &y, &t| {
        let e = y - t;
        sum += e.f64() * e.f64();
        *d = scale * e;
    });
    sum / count
}

/// Cross-entropy of logits z [rows, classes] with labels t [rows], averaged over
/// `mean_over` rows (R, the whole batch's), L = −(1/R)·Σ_r log softmax(z_r)[t_r]; writes
/// ∂L/∂z_r = (softmax(z_r) − e_{t_r})/R. The loss is accumulated in f64. Rows of the
/// logits and of their gradient must be contiguous (standard layout); panics otherwise, or
/// when the shapes do not match.
pub fn cross_entropy_loss<F: Float>(
    mut d_logits: ArrayViewMut2<F>,
    logits: ArrayView2<F>,
    labels: ArrayView1<usize>,
    mean_over: usize,
) -> f64 {
    let rows = mean_over as f64;
    let inv_rows = F::c(1.0 / rows);
    assert!(
        d_logits.dim() == logits.dim() && labels.len() == logits.nrows(),
        "cross-entropy: logits {:?}, their gradient {:?}, {} labels",
        logits.dim(),
        d_logits.dim(),
        labels.len()
    );
    let mut sum = 0.0f64;
    for ((mut d, z), &t) in d_logits.rows_mut().into_iter().zip(logits.rows()).zip(&labels) {
        let (d, z) = (d.as_slice_mut().expect("contiguous rows"), z.to_slice().expect("contiguous rows"));
        let max = lane_max(z, F::neg_infinity());
        // the exponentials in their own pass, so that it vectorises; their sum in order
        for (d, &x) in d.iter_mut().zip(z) {
            *d = (x - max).exp_fast();
        }
        let total = d.iter().fold(0.0f64, |s, e| s + e.f64());
        sum += total.ln() - (z[t] - max).f64();
        let inv = F::c(1.0 / total);
        d.iter_mut().for_each(|e| *e = *e * inv * inv_rows);
        d[t] -= inv_rows;
    }
    sum / rows
}
