//! Rotary position embedding (Su et al.), half-split pairing: feature k pairs with
//! k + d_h/2. Row i is rotated by angles i·θ_k, θ_k = base^(−2k/d_h), so the dot product
//! of a rotated query at i and key at j depends on j − i only.

use crate::float::Float;
use ndarray::{Array2, ArrayViewMut2};

/// cos(i·θ_k) and sin(i·θ_k) for positions i < n_max and pairs k < d_h/2.
#[derive(Clone, Debug)]
pub struct RopeTables<F> {
    /// [n_max, d_h/2].
    pub cos: Array2<F>,
    /// [n_max, d_h/2].
    pub sin: Array2<F>,
}

impl<F: Float> RopeTables<F> {
    /// Tables for head width `head_dim` (even) and base θ.
    pub fn new(n_max: usize, head_dim: usize, base: f64) -> Self {
        let half = head_dim / 2;
        let angle = |i: usize, k: usize| i as f64 * base.powf(-2.0 * k as f64 / head_dim as f64);
        RopeTables {
            cos: Array2::from_shape_fn((n_max, half), |(i, k)| F::c(angle(i, k).cos())),
            sin: Array2::from_shape_fn((n_max, half), |(i, k)| F::c(angle(i, k).sin())),
        }
    }

    /// Rotates the rows of one head's [n, d_h] block in place: row i by +i·θ
    /// (`sign` = 1) or back by −i·θ (`sign` = −1, the transpose, used by backward).
    pub fn rotate(&self, mut x: ArrayViewMut2<F>, sign: F) {
        let half = x.ncols() / 2;
        for (i, mut row) in x.rows_mut().into_iter().enumerate() {
            for k in 0..half {
                let (c, s) = (self.cos[[i, k]], sign * self.sin[[i, k]]);
                let (a, b) = (row[k], row[k + half]);
                row[k] = a * c - b * s;
                row[k + half] = a * s + b * c;
            }
        }
    }
}
