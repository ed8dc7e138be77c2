//! The BOS row (`bos = true`): a learned vector b [d] placed before every sequence. The
//! blocks see m = n + 1 rows per sequence, row 0 the BOS and rows 1..=n the inputs; the
//! head reads rows 1..=n only, so outputs and targets keep their n rows per sequence.
//!
//! Matrices hold sequences one after another: `rows` [batch·n, k] without the BOS rows,
//! `inner` [batch·(n + 1), k] with them.

use crate::float::Float;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, s};

/// Sequences in `inner`: one row more per sequence than in `rows`.
fn sequences(inner: usize, rows: usize) -> usize {
    assert!(inner > rows, "the inner rows hold one more row per sequence");
    inner - rows
}

/// inner ← per sequence, `first` (zeros when `None`) and then that sequence's n rows of
/// `rows`. With b it places the BOS; with `None` it is the backward of
/// [`without_first_rows`] (the BOS rows get no gradient from the head).
pub fn with_first_rows<F: Float>(mut inner: ArrayViewMut2<F>, rows: ArrayView2<F>, first: Option<ArrayView1<F>>) {
    let batch = sequences(inner.nrows(), rows.nrows());
    let n = rows.nrows() / batch;
    for (mut seq, from) in inner.axis_chunks_iter_mut(Axis(0), n + 1).zip(rows.axis_chunks_iter(Axis(0), n)) {
        match first {
            Some(b) => seq.row_mut(0).assign(&b),
            None => seq.row_mut(0).fill(F::zero()),
        }
        seq.slice_mut(s![1.., ..]).assign(&from);
    }
}

/// rows ← rows 1..=n of every sequence of `inner`: the BOS rows left out (what the head and
/// the probes read; also the input rows' share of ∂L/∂inner in the backward pass).
pub fn without_first_rows<F: Float>(mut rows: ArrayViewMut2<F>, inner: ArrayView2<F>) {
    let batch = sequences(inner.nrows(), rows.nrows());
    let n = rows.nrows() / batch;
    for (mut to, seq) in rows.axis_chunks_iter_mut(Axis(0), n).zip(inner.axis_chunks_iter(Axis(0), n + 1)) {
        to.assign(&seq.slice(s![1.., ..]));
    }
}

/// ∂L/∂b += Σ over sequences of row 0 of ∂L/∂inner (sequences of m rows): the backward of
/// placing b before every sequence.
pub fn first_rows_backward<F: Float>(mut d_first: ArrayViewMut1<F>, d_inner: ArrayView2<F>, m: usize) {
    for seq in d_inner.axis_chunks_iter(Axis(0), m) {
        d_first += &seq.row(0);
    }
}
