//! T5 / RPE bias: scores + b_h[j − i], one value per offset (`t5`) or per log bucket
//! (`t5-bucketed`, Raffel et al.'s bucketing).

use super::offset_index;
use crate::float::Float;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

/// T5's bucket of the relative position j − i. Bidirectional: half of the buckets for
/// j > i; each side maps offsets below half its buckets exactly and larger ones
/// logarithmically up to `max_distance`. Causal: only j ≤ i gets distinct buckets.
/// Computed in f32, as the reference implementation does, so boundaries agree with it.
pub fn bucket(rel: i64, bidirectional: bool, num_buckets: usize, max_distance: usize) -> usize {
    let (mut per_side, mut out) = (num_buckets, 0usize);
    let dist = if bidirectional {
        per_side /= 2;
        if rel > 0 {
            out += per_side;
        }
        rel.unsigned_abs() as usize
    } else {
        (-rel.min(0)) as usize
    };
    let max_exact = per_side / 2;
    if dist < max_exact {
        return out + dist;
    }
    let ratio = (dist as f32 / max_exact as f32).ln() / (max_distance as f32 / max_exact as f32).ln();
    let large = max_exact + (ratio * (per_side - max_exact) as f32) as usize;
    out + large.min(per_side - 1)
}

/// Index into the bias row for offset index o: o itself (`t5`) or its bucket.
fn slot(bucket_of: Option<&[usize]>, o: usize) -> usize {
    bucket_of.map_or(o, |b| b[o])
}

/// S_ij += b[slot(j − i)] on one head's [n, n] scores; `bucket_of` maps offset indices to
/// buckets (`t5-bucketed`) or is `None` (`t5`: one value per offset).
pub fn bias_forward<F: Float>(
    mut scores: ArrayViewMut2<F>,
    bias: ArrayView1<F>,
    bucket_of: Option<&[usize]>,
    n_max: usize,
) {
    for ((i, j), s) in scores.indexed_iter_mut() {
        *s += bias[slot(bucket_of, offset_index(i, j, n_max))];
    }
}

/// db[slot(j − i)] += ∂L/∂S_ij over one head's [n, n] score gradient.
pub fn bias_backward<F: Float>(
    mut dbias: ArrayViewMut1<F>,
    dscores: ArrayView2<F>,
    bucket_of: Option<&[usize]>,
    n_max: usize,
) {
    for ((i, j), &d) in dscores.indexed_iter() {
        dbias[slot(bucket_of, offset_index(i, j, n_max))] += d;
    }
}
