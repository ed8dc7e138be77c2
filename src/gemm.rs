//! Matrix products of the engine, C = α·A·B + β·C, through the `gemm` crate (kernels
//! chosen at run time for the CPU: AVX2/FMA, AVX-512; any strides, transposed views
//! included).
//!
//! - [`matmul`], the token-wise layers: split by rows of C over the worker pool when the
//!   product is large enough to pay for it.
//! - [`small_matmul`], the per-head products of attention (n × d_h by d_h × n and the like,
//!   a few thousand multiply-adds), on the calling thread: `gemm` runs such sizes without
//!   packing its operands, where ndarray's `general_mat_mul` packed them into freshly
//!   allocated buffers on every call (at head width 8 that was most of the product's time);
//!   the smallest go through this module's own register-tiled loop, below `gemm`'s fixed
//!   cost per call.
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
/// head, on the calling thread: the smallest ones (at most 16 × 16 × 16, rows of B and C
/// contiguous, n a multiple of 8) through a register-tiled loop of this module, the others
/// through the `gemm` crate: any strides (transposed views included), kernels chosen at run
/// time for the CPU (AVX2/FMA, AVX-512), small sizes without packing. As ndarray's
/// `general_mat_mul`, β = 0 overwrites C whatever it held (NaN included).
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
    let macs = a.nrows() * a.ncols() * b.ncols();
    if b.strides()[1] == 1 && c.strides()[1] == 1 && b.ncols().is_multiple_of(8) && macs <= ROW_PRODUCT_MACS {
        row_product(alpha, a, b, beta, c);
    } else {
        product(alpha, a, b, beta, c);
    }
}

/// C = α·A·Bᵀ + β·C (A [m, k], B [n, k], C [m, n]) for the per-head products whose right
/// operand is a transposed view (scores q·Kᵀ, ∂L/∂G = ∂L/∂O·Vᵀ): Bᵀ is first copied into
/// `buf` (at least k·n floats) as contiguous rows, which lets [`small_matmul`] run its row
/// kernels (2–2.5× faster at n 16, d_h 8–32 than on the transposed view).
///
/// Panics when the shapes do not match or `buf` is too short.
///
/// ```
/// use ndarray::array;
/// let a = array![[1.0, 2.0], [3.0, 4.0]];
/// let b = array![[5.0, 7.0], [6.0, 8.0]];
/// let mut c = array![[0.0, 0.0], [0.0, 0.0]];
/// let mut buf = [0.0; 4];
/// urpe::gemm::small_matmul_by_transpose(1.0, a.view(), b.view(), 0.0, c.view_mut(), &mut buf);
/// assert_eq!(c, array![[19.0, 22.0], [43.0, 50.0]]);
/// ```
pub fn small_matmul_by_transpose<F: Float>(
    alpha: F,
    a: ArrayView2<F>,
    b: ArrayView2<F>,
    beta: F,
    c: ArrayViewMut2<F>,
    buf: &mut [F],
) {
    let (n, k) = b.dim();
    let mut bt = ArrayViewMut2::from_shape((k, n), &mut buf[..k * n]).expect("a [k, n] buffer");
    bt.assign(&b.t());
    small_matmul(alpha, a, bt.view(), beta, c);
}

/// Products up to this many multiply-adds (16 × 16 × 16) run through [`row_product`] when
/// their layout allows: measured at n = 16 and d_h = 4-16, 1.4-2.4× faster than `gemm`'s
/// call (whose fixed cost dominates there); from 32 × 32 × 16 on, `gemm` is faster.
const ROW_PRODUCT_MACS: usize = 4096;

/// Rows of C per register tile of [`row_product`].
const TILE_ROWS: usize = 4;
/// Columns of C per register tile of [`row_product`] (wider tiles defeat the compiler's
/// vectoriser and spill).
const TILE_COLS: usize = 8;

/// C = α·A·B + β·C, rows of B and C contiguous, n a multiple of 8: C in tiles of four rows
/// by eight columns held in registers, C_i,j = Σ_p A_ip·B_pj with p in order, a multiply then an add each (no fused
/// multiply-add, so the result does not depend on the build's target CPU).
fn row_product<F: Float>(alpha: F, a: ArrayView2<F>, b: ArrayView2<F>, beta: F, mut c: ArrayViewMut2<F>) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert!(b.nrows() == k && c.dim() == (m, n), "matmul: shapes {:?} · {:?} → {:?}", a.dim(), b.dim(), c.dim());
    assert!(
        n.is_multiple_of(8) && b.strides()[1] == 1 && c.strides()[1] == 1,
        "row_product: rows of 8·j contiguous floats"
    );
    for i0 in (0..m).step_by(TILE_ROWS) {
        let rows = TILE_ROWS.min(m - i0);
        for j0 in (0..n).step_by(TILE_COLS) {
            row_tile(alpha, &a, &b, beta, &mut c, i0, rows, j0);
        }
    }
}

/// One tile of [`row_product`]: rows i0..i0 + rows (at most four) by columns j0..j0 + 8.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn row_tile<F: Float>(
    alpha: F,
    a: &ArrayView2<F>,
    b: &ArrayView2<F>,
    beta: F,
    c: &mut ArrayViewMut2<F>,
    i0: usize,
    rows: usize,
    j0: usize,
) {
    let k = a.ncols();
    let (a_rs, a_cs, b_rs) = (a.strides()[0], a.strides()[1], b.strides()[0]);
    let mut acc = [[F::zero(); TILE_COLS]; TILE_ROWS];
    for p in 0..k {
        // SAFETY: p < k and j0 + 8 ≤ n index B within its shape (checked by the caller);
        // the stride is the view's own.
        let b_row =
            unsafe { std::slice::from_raw_parts(b.as_ptr().offset(p as isize * b_rs + j0 as isize), TILE_COLS) };
        for (r, acc) in acc.iter_mut().enumerate() {
            // rows past m read row i0 again (their sums are dropped below)
            let i = i0 + if r < rows { r } else { 0 };
            // SAFETY: i < m and p < k index A within its shape.
            let a_ip = unsafe { *a.as_ptr().offset(i as isize * a_rs + p as isize * a_cs) };
            for (acc, &b) in acc.iter_mut().zip(b_row) {
                *acc += a_ip * b;
            }
        }
    }
    for (r, acc) in acc.iter().enumerate().take(rows) {
        let mut c_row = c.row_mut(i0 + r);
        let out = &mut c_row.as_slice_mut().expect("contiguous row")[j0..j0 + TILE_COLS];
        if beta == F::zero() {
            out.iter_mut().zip(acc).for_each(|(c, &v)| *c = alpha * v);
        } else {
            out.iter_mut().zip(acc).for_each(|(c, &v)| *c = alpha * v + beta * *c);
        }
    }
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
