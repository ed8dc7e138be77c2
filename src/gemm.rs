//! Matrix products of the engine, C = α·A·B + β·C, through the `gemm` crate (kernels
//! chosen at run time for the CPU: AVX2/FMA, AVX-512; any strides, transposed views
//! included).
//!
//! - [`matmul`], the token-wise layers: split by rows of C over the worker pool when the
//!   product is large enough to pay for it.
//! - [`small_matmul`], the per-head products of attention (n × d_h by d_h × n and the like,
//!   a few thousand multiply-adds), on the calling thread: `gemm` runs such sizes without
//!   packing its operands, where ndarray's `general_mat_mul` packed them into freshly
//!   allocated buffers on every call (at head width 8 that was most of the product's time).
//!
//! Each element of C is a sum over k in an order set by k (`gemm` blocks k by a size
//! computed from k and the caches), not by how many rows of C a task holds, so results do
//! not depend on the number of threads (`tests/kernels.rs` checks it bit for bit on a
//! split product).

use crate::float::Float;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};

/// Products below this many multiply-adds run on the calling thread.
const PARALLEL_MACS: usize = 1 << 20;

/// C = α·A·B + β·C (A [m, k], B [k, n], C [m, n]).
pub fn matmul<F: Float>(alpha: F, a: ArrayView2<F>, b: ArrayView2<F>, beta: F, mut c: ArrayViewMut2<F>) {
    let (m, k) = a.dim();
    let n = b.ncols();
    let threads = rayon::current_num_threads();
    if threads < 2 || m < 2 * 8 || m * k * n < PARALLEL_MACS {
        product(alpha, a, b, beta, c);
        return;
    }
    // rows per task: a multiple of 8 (the kernel's row tile), about 2 tasks per thread
    let rows = m.div_ceil(2 * threads).next_multiple_of(8);
    let mut tasks: Vec<(ArrayView2<F>, ArrayViewMut2<F>)> =
        a.axis_chunks_iter(Axis(0), rows).zip(c.axis_chunks_iter_mut(Axis(0), rows)).collect();
    rayon::scope(|s| {
        for (a, c) in tasks.drain(..) {
            s.spawn(move |_| product(alpha, a, b, beta, c));
        }
    });
}

/// C = α·A·B + β·C (A [m, k], B [k, n], C [m, n]) for the small products of one attention
/// head, on the calling thread, through the `gemm` crate: any strides (transposed views
/// included), kernels chosen at run time for the CPU (AVX2/FMA, AVX-512), small sizes
/// without packing. As ndarray's `general_mat_mul`, β = 0 overwrites C whatever it held
/// (NaN included).
///
/// Panics when the shapes do not match.
///
/// ```
/// use ndarray::array;
/// let a = array![[1.0, 2.0], [3.0, 4.0]];
/// let b = array![[5.0, 6.0], [7.0, 8.0]];
/// let mut c = array![[f64::NAN, 0.0], [0.0, 0.0]];
/// urpe::gemm::small_matmul(1.0, a.view(), b.t(), 0.0, c.view_mut());
/// assert_eq!(c, array![[17.0, 23.0], [39.0, 53.0]]);
/// ```
pub fn small_matmul<F: Float>(alpha: F, a: ArrayView2<F>, b: ArrayView2<F>, beta: F, c: ArrayViewMut2<F>) {
    product(alpha, a, b, beta, c);
}

/// C = α·A·B + β·C on the calling thread through `gemm` (see [`small_matmul`]).
fn product<F: Float>(alpha: F, a: ArrayView2<F>, b: ArrayView2<F>, beta: F, mut c: ArrayViewMut2<F>) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert!(b.nrows() == k && c.dim() == (m, n), "matmul: shapes {:?} · {:?} → {:?}", a.dim(), b.dim(), c.dim());
    if m == 0 || n == 0 {
        return;
    }
    let (a_s, b_s, c_s) =
        ([a.strides()[0], a.strides()[1]], [b.strides()[0], b.strides()[1]], [c.strides()[0], c.strides()[1]]);
    // SAFETY: the three views are valid for every index within their shapes, which were
    // checked to agree above; C is borrowed mutably, so it overlaps neither A nor B; the
    // strides are the views' own.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_s[1],
            c_s[0],
            beta != F::zero(),
            a.as_ptr(),
            a_s[1],
            a_s[0],
            b.as_ptr(),
            b_s[1],
            b_s[0],
            beta,
            alpha,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}
