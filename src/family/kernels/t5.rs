//! T5 / RPE bias: scores + b_h[j − i], one value per offset (`t5`) or per log bucket
//! (`t5-bucketed`, Raffel et al.'s bucketing). Bucketed biases are expanded to one value
//! per offset before use ([`expand_buckets`]) and their gradients folded back
//! ([`fold_buckets`]), so both share the offset-row code of [`super::toeplitz`].

use crate::float::Float;
use ndarray::{ArrayView1, ArrayViewMut1};

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

/// e[o] = b[bucket_of[o]] for every offset index o.
pub fn expand_buckets<F: Float>(mut e: ArrayViewMut1<F>, b: ArrayView1<F>, bucket_of: &[usize]) {
    for (e, &k) in e.iter_mut().zip(bucket_of) {
        *e = b[k];
    }
}

/// db[bucket_of[o]] += de[o]: the gradient of [`expand_buckets`].
pub fn fold_buckets<F: Float>(mut db: ArrayViewMut1<F>, de: ArrayView1<F>, bucket_of: &[usize]) {
    for (&d, &k) in de.iter().zip(bucket_of) {
        db[k] += d;
    }
}
