//! T5 / RPE bias: scores + b_h[j − i], one value per offset (`t5`) or per log bucket
//! (`t5-bucketed`, Raffel et al.'s bucketing).

use super::offset_index;
use crate::float::Float;
use ndarray::{ArrayView1, ArrayViewMut2};

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

/// S_ij += b[(j − i) + n_max − 1] on one head's [n, n] scores.
pub fn add_offset_bias<F: Float>(mut scores: ArrayViewMut2<F>, bias: ArrayView1<F>, n_max: usize) {
    for ((i, j), s) in scores.indexed_iter_mut() {
        *s += bias[offset_index(i, j, n_max)];
    }
}

/// S_ij += b[bucket(j − i)] on one head's [n, n] scores, `bucket_of` indexed by offset.
pub fn add_bucket_bias<F: Float>(mut scores: ArrayViewMut2<F>, bias: ArrayView1<F>, bucket_of: &[usize], n_max: usize) {
    for ((i, j), s) in scores.indexed_iter_mut() {
        *s += bias[bucket_of[offset_index(i, j, n_max)]];
    }
}
