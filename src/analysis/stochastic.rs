//! Stochasticity of every attention head: is the matrix that multiplies V right-stochastic
//! (rows ≥ 0 summing to 1, so that A·1 = 1 and 1 is an eigenvalue)? For in-softmax families
//! it is, on every input; the URPE gate G = A ⊙ C is not, and its row sums
//! Σ_j A_ij C_{j−i} are the positional signal it injects. M is the whole matrix the
//! attention applies: with `bos`, (n + 1) × (n + 1), row and column 0 the BOS.

use super::linalg::eigenvalues;
use crate::error::Result;
use crate::nn::ForwardCache;
use ndarray::{ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// One head of one block over a batch of inputs. M is the mixing matrix (G = A ⊙ C with the
/// gate, A = row_softmax(S) without). Blocks and heads count from 1, as in every text,
/// figure and report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadStochasticity {
    /// Block (layer), from 1.
    pub block: usize,
    /// Head, from 1.
    pub head: usize,
    /// Smallest row sum Σ_j M_ij over all rows and inputs.
    pub row_sum_min: f64,
    /// Largest row sum.
    pub row_sum_max: f64,
    /// The eigenvalue λ of M nearest to 1 on the input where it is farthest from 1, as
    /// (re, im).
    pub eigenvalue: (f64, f64),
    /// max over inputs of min_k |λ_k(M) − 1|: 0 for a stochastic matrix.
    pub eigen_distance: f64,
    /// max over inputs of ‖M·1 − 1‖∞.
    pub residual: f64,
    /// With the gate: row sums Σ_j G_ij per position i, averaged over the inputs (with `bos`,
    /// entry 0 is the BOS row).
    pub gated_row_sums: Option<Vec<f64>>,
}

/// Distance of the eigenvalue of `m` nearest to 1, and that eigenvalue.
pub fn eigenvalue_nearest_one(m: ArrayView2<f64>) -> Result<(f64, (f64, f64))> {
    let values = eigenvalues(m)?;
    Ok(values
        .into_iter()
        .map(|(re, im)| ((re - 1.0).hypot(im), (re, im)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap_or((f64::INFINITY, (f64::NAN, f64::NAN))))
}

/// ‖M·1 − 1‖∞ of a square matrix.
pub fn row_sum_residual(m: ArrayView2<f64>) -> f64 {
    m.sum_axis(Axis(1)).iter().map(|s| (s - 1.0).abs()).fold(0.0, f64::max)
}

/// Every head of every layer of the forward pass cached in `cache`.
pub fn heads(cache: &ForwardCache<f64>) -> Result<Vec<HeadStochasticity>> {
    let mut out = Vec::new();
    for (layer, block) in cache.layers.iter().enumerate() {
        let mixing = block.attn.mixing();
        let gated = !block.attn.gated.is_empty();
        let (batch, heads, n, _) = mixing.dim();
        for head in 0..heads {
            let mut h = HeadStochasticity {
                block: layer + 1,
                head: head + 1,
                row_sum_min: f64::INFINITY,
                row_sum_max: f64::NEG_INFINITY,
                eigenvalue: (f64::NAN, f64::NAN),
                eigen_distance: 0.0,
                residual: 0.0,
                gated_row_sums: gated.then(|| vec![0.0; n]),
            };
            for b in 0..batch {
                let m = mixing.slice(ndarray::s![b, head, .., ..]);
                let sums = m.sum_axis(Axis(1));
                for (i, &s) in sums.iter().enumerate() {
                    h.row_sum_min = h.row_sum_min.min(s);
                    h.row_sum_max = h.row_sum_max.max(s);
                    if let Some(g) = &mut h.gated_row_sums {
                        g[i] += s / batch as f64;
                    }
                }
                h.residual = h.residual.max(row_sum_residual(m));
                let (distance, lambda) = eigenvalue_nearest_one(m)?;
                if distance >= h.eigen_distance || h.eigenvalue.0.is_nan() {
                    h.eigen_distance = distance;
                    h.eigenvalue = lambda;
                }
            }
            out.push(h);
        }
    }
    Ok(out)
}
