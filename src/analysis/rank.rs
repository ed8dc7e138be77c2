//! Positional rank: how much position information a model's hidden states carry on
//! constant inputs. For each stage of the forward pass (the embedded input, every block's
//! output, the final norm, the head's output; the n input positions of each, without the
//! BOS row of a `bos` model), stack the row-centred states P·h(1xᵀ)
//! (P = I − 11ᵀ/n) of many constant inputs x into one matrix H and take its singular values
//! relative to ‖h‖_F, the norm of the uncentred stack. Proposition 1 says H = 0 for every
//! in-softmax family; URPE and APE give σ₁ > 0.

use super::linalg::singular_values;
use crate::config::Norm;
use crate::error::Result;
use crate::nn::{ForwardCache, bos};
use ndarray::{Array2, ArrayView2, Axis, CowArray, Ix2};
use serde::{Deserialize, Serialize};

/// A relative singular value above this counts towards the rank (f64 arithmetic leaves
/// about 1e-16 in an exactly equal-row model).
pub const RANK_TOLERANCE: f64 = 1e-6;

/// How many relative singular values a [`StageRank`] keeps.
pub const KEPT_SINGULAR_VALUES: usize = 8;

/// The positional rank of one stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageRank {
    /// `input`, `block 1` … `block L`, `final norm` (pre-norm), `output`.
    pub stage: String,
    /// The largest singular values of H divided by ‖h‖_F, nonincreasing (at most
    /// [`KEPT_SINGULAR_VALUES`]).
    pub singular: Vec<f64>,
    /// Number of relative singular values above [`RANK_TOLERANCE`].
    pub rank: usize,
    /// Positional energy ‖H‖²_F / ‖h‖²_F = Σ σ_k² / ‖h‖²_F, the share of the states'
    /// energy that varies along positions.
    pub energy: f64,
}

/// The stages of a cached forward pass, in order, each [batch·n, features]: the n input
/// positions of every sequence (with `bos` the stages before the head also hold a BOS row
/// per sequence, left out here: the probes measure the rows of the input).
pub fn stages<'c>(cache: &'c ForwardCache<f64>, norm: Norm) -> Vec<(String, CowArray<'c, f64, Ix2>)> {
    let inputs = |states: ArrayView2<'c, f64>| -> CowArray<'c, f64, Ix2> {
        if cache.inner == cache.n {
            return states.into();
        }
        let mut rows = Array2::zeros((cache.batch * cache.n, states.ncols()));
        bos::without_first_rows(rows.view_mut(), states);
        rows.into()
    };
    let mut out = vec![("input".to_string(), inputs(cache.embedded.view()))];
    for (l, block) in cache.layers.iter().enumerate() {
        out.push((format!("block {}", l + 1), inputs(block.output(norm).view())));
    }
    if let Some(f) = &cache.final_norm {
        out.push(("final norm".into(), inputs(f.out.view())));
    }
    out.push(("output".into(), cache.output.view().into()));
    out
}

/// Positional rank of `states` [batch·n, features], sequences of length `n` stacked.
pub fn stage_rank(stage: &str, states: ArrayView2<f64>, n: usize) -> Result<StageRank> {
    let mut centred: Array2<f64> = states.to_owned();
    for mut seq in centred.axis_chunks_iter_mut(Axis(0), n) {
        let mean = seq.mean_axis(Axis(0)).expect("n ≥ 1");
        seq -= &mean;
    }
    let norm = states.iter().map(|v| v * v).sum::<f64>().sqrt();
    let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    let sigma: Vec<f64> = singular_values(centred.view())?.into_iter().map(|s| s * scale).collect();
    Ok(StageRank {
        stage: stage.into(),
        rank: sigma.iter().filter(|&&s| s > RANK_TOLERANCE).count(),
        energy: sigma.iter().map(|s| s * s).sum(),
        singular: sigma.into_iter().take(KEPT_SINGULAR_VALUES).collect(),
    })
}

/// Positional rank of every stage of a forward pass over constant inputs of length `n`.
pub fn positional_rank(cache: &ForwardCache<f64>, norm: Norm) -> Result<Vec<StageRank>> {
    stages(cache, norm).into_iter().map(|(stage, h)| stage_rank(&stage, h.view(), cache.n)).collect()
}
