//! Token-wise feed-forward layer: out = act(x·W_up + b_up)·W_down + b_down.

use super::activation::activation_forward;
use super::layout::LayerIds;
use super::linear::linear_forward;
use super::params::Params;
use crate::config::Activation;
use crate::float::Float;
use ndarray::{Array2, ArrayView2};

/// Activations of one feed-forward layer.
#[derive(Clone, Debug)]
pub struct FfnCache<F> {
    /// Pre-activation x·W_up + b_up, [rows, f].
    pub up: Array2<F>,
    /// act(up), [rows, f].
    pub act: Array2<F>,
    /// Output, [rows, d].
    pub out: Array2<F>,
}

impl<F: Float> FfnCache<F> {
    /// Storage for `rows` rows, width `d`, hidden width `f`.
    pub fn new(rows: usize, d: usize, f: usize) -> Self {
        FfnCache { up: Array2::zeros((rows, f)), act: Array2::zeros((rows, f)), out: Array2::zeros((rows, d)) }
    }
}

/// Forward pass of the feed-forward layer of block `ids` on x [rows, d].
pub fn ffn_forward<F: Float>(
    cache: &mut FfnCache<F>,
    x: ArrayView2<F>,
    p: &Params<F>,
    ids: &LayerIds,
    activation: Activation,
) {
    linear_forward(cache.up.view_mut(), x, p.mat(ids.up.weight), p.vec(ids.up.bias));
    activation_forward(activation, cache.act.view_mut(), cache.up.view());
    linear_forward(cache.out.view_mut(), cache.act.view(), p.mat(ids.down.weight), p.vec(ids.down.bias));
}
