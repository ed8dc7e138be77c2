//! Row-wise work on Toeplitz quantities. Row i of an [n, n] matrix meets the offsets
//! j − i = −i..n−1−i, so with a table indexed by (j − i) + n_max − 1 it reads the
//! contiguous slice starting at n_max − 1 − i; with the skewed layout W[i, j − i + n − 1]
//! (an [n, 2n − 1] matrix) it occupies columns n − 1 − i..2n − 1 − i.

use crate::float::Float;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

fn row<'a, F>(a: &'a ArrayView2<F>, i: usize) -> &'a [F] {
    a.row(i).to_slice().expect("contiguous rows")
}

fn row_mut<'a, F>(a: &'a mut ArrayViewMut2<F>, i: usize) -> &'a mut [F] {
    a.row_mut(i).into_slice().expect("contiguous rows")
}

/// The slice of an offset-indexed table that row i of an [n, n] matrix meets.
fn offsets_of_row<F>(table: &[F], i: usize, n: usize, n_max: usize) -> &[F] {
    &table[n_max - 1 - i..n_max - 1 - i + n]
}

/// S_ij += e[(j − i) + n_max − 1] (t5 biases, expanded buckets, ALiBi).
pub fn add_offset_rows<F: Float>(mut s: ArrayViewMut2<F>, e: ArrayView1<F>, n_max: usize) {
    let (n, e) = (s.ncols(), e.to_slice().expect("contiguous"));
    for i in 0..s.nrows() {
        for (s, &b) in row_mut(&mut s, i).iter_mut().zip(offsets_of_row(e, i, n, n_max)) {
            *s += b;
        }
    }
}

/// de[(j − i) + n_max − 1] += dS_ij: the gradient of [`add_offset_rows`] in offset space.
pub fn offset_rows_backward<F: Float>(mut de: ArrayViewMut1<F>, ds: ArrayView2<F>, n_max: usize) {
    let n = ds.ncols();
    let de = de.as_slice_mut().expect("contiguous");
    for i in 0..ds.nrows() {
        for (d, &g) in de[n_max - 1 - i..n_max - 1 - i + n].iter_mut().zip(row(&ds, i)) {
            *d += g;
        }
    }
}

/// URPE gate: G_ij = A_ij · c[(j − i) + n_max − 1], no renormalisation.
pub fn gate_forward<F: Float>(mut g: ArrayViewMut2<F>, a: ArrayView2<F>, c: ArrayView1<F>, n_max: usize) {
    let (n, c) = (a.ncols(), c.to_slice().expect("contiguous"));
    for i in 0..a.nrows() {
        for ((g, &a), &c) in row_mut(&mut g, i).iter_mut().zip(row(&a, i)).zip(offsets_of_row(c, i, n, n_max)) {
            *g = a * c;
        }
    }
}

/// Backward of [`gate_forward`], in place: `d` holds ∂L/∂G on entry and ∂L/∂A = ∂L/∂G ⊙ C
/// on exit; dc[(j − i) + n_max − 1] += ∂L/∂G_ij · A_ij.
pub fn gate_backward<F: Float>(
    mut d: ArrayViewMut2<F>,
    mut dc: ArrayViewMut1<F>,
    a: ArrayView2<F>,
    c: ArrayView1<F>,
    n_max: usize,
) {
    let (n, c) = (a.ncols(), c.to_slice().expect("contiguous"));
    let dc = dc.as_slice_mut().expect("contiguous");
    for i in 0..a.nrows() {
        let dc_row = &mut dc[n_max - 1 - i..n_max - 1 - i + n];
        for (((d, &a), &c), dc) in
            row_mut(&mut d, i).iter_mut().zip(row(&a, i)).zip(offsets_of_row(c, i, n, n_max)).zip(dc_row)
        {
            *dc += *d * a;
            *d *= c;
        }
    }
}

/// W[i, j − i + n − 1] = P_ij, other entries 0: P [n, n] laid out by offset, W [n, 2n − 1].
pub fn skew<F: Float>(mut w: ArrayViewMut2<F>, p: ArrayView2<F>) {
    let n = p.nrows();
    w.fill(F::zero());
    for i in 0..n {
        row_mut(&mut w, i)[n - 1 - i..2 * n - 1 - i].copy_from_slice(row(&p, i));
    }
}

/// P_ij += W[i, j − i + n − 1]: the inverse layout of [`skew`], accumulated.
pub fn unskew_add<F: Float>(mut p: ArrayViewMut2<F>, w: ArrayView2<F>) {
    let n = p.nrows();
    for i in 0..n {
        for (p, &w) in row_mut(&mut p, i).iter_mut().zip(&row(&w, i)[n - 1 - i..2 * n - 1 - i]) {
            *p += w;
        }
    }
}

/// The dense n × n Toeplitz matrix T_ij = t[(j − i) + N − 1] of a table of 2N − 1 offsets
/// (N = (len + 1)/2, n ≤ N).
pub fn dense<F: Float>(table: ArrayView1<F>, n: usize) -> ndarray::Array2<F> {
    let big = table.len().div_ceil(2);
    assert!(n <= big, "a table of {} offsets covers sequences of at most {big}", table.len());
    ndarray::Array2::from_shape_fn((n, n), |(i, j)| table[j + big - 1 - i])
}
