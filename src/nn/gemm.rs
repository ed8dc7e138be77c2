//! Matrix multiply for the token-wise layers: C = α·A·B + β·C, split by rows of C over
//! the worker pool when the product is large enough to pay for it. Each element is
//! computed by the same arithmetic whatever the split, so results do not depend on the
//! number of threads.

use crate::float::Float;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};

/// Products below this many multiply-adds run on the calling thread.
const PARALLEL_MACS: usize = 1 << 20;

/// C = α·A·B + β·C (A [m, k], B [k, n], C [m, n]).
pub fn matmul<F: Float>(alpha: F, a: ArrayView2<F>, b: ArrayView2<F>, beta: F, mut c: ArrayViewMut2<F>) {
    let (m, k) = a.dim();
    let n = b.ncols();
    let threads = rayon::current_num_threads();
    if threads < 2 || m < 2 * 8 || m * k * n < PARALLEL_MACS {
        general_mat_mul(alpha, &a, &b, beta, &mut c);
        return;
    }
    // rows per task: a multiple of 8 (the kernel's row tile), about 2 tasks per thread
    let rows = m.div_ceil(2 * threads).next_multiple_of(8);
    let mut tasks: Vec<(ArrayView2<F>, ArrayViewMut2<F>)> =
        a.axis_chunks_iter(Axis(0), rows).zip(c.axis_chunks_iter_mut(Axis(0), rows)).collect();
    rayon::scope(|s| {
        for (a, mut c) in tasks.drain(..) {
            let b = b.view();
            s.spawn(move |_| general_mat_mul(alpha, &a, &b, beta, &mut c));
        }
    });
}
