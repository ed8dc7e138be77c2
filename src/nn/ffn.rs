//! Token-wise feed-forward layer: out = act(x·W_up + b_up)·W_down + b_down.

use super::activation::{activation_backward, activation_forward};
use super::layout::LayerIds;
use super::linear::{InputGrad, linear_backward, linear_forward};
use crate::config::{Activation, ModelConfig};
use crate::float::Float;
use crate::params::Params;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// Activations of one feed-forward layer.
#[derive(Clone, Debug)]
pub struct FfnCache<F> {
    /// Pre-activation x·W_up + b_up, [rows, f].
    pub up: Array2<F>,
    /// GELU: Φ(up), [rows, f] (empty for ReLU).
    pub cdf: Array2<F>,
    /// act(up), [rows, f].
    pub act: Array2<F>,
    /// Output, [rows, d].
    pub out: Array2<F>,
}

impl<F: Float> FfnCache<F> {
    /// Storage for `rows` rows under `config`.
    pub fn new(config: &ModelConfig, rows: usize) -> Self {
        let f = config.ffn;
        let cdf_rows = if config.activation == Activation::Gelu { rows } else { 0 };
        FfnCache {
            up: Array2::zeros((rows, f)),
            cdf: Array2::zeros((cdf_rows, f)),
            act: Array2::zeros((rows, f)),
            out: Array2::zeros((rows, config.width)),
        }
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
    activation_forward(activation, cache.act.view_mut(), cache.cdf.view_mut(), cache.up.view());
    linear_forward(cache.out.view_mut(), cache.act.view(), p.mat(ids.down.weight), p.vec(ids.down.bias));
}

/// Backward of [`ffn_forward`]: from ∂L/∂out accumulates the parameter gradients and adds
/// ∂L/∂x into `dx`; `dhidden` [rows, f] is a workspace.
#[allow(clippy::too_many_arguments)]
pub fn ffn_backward<F: Float>(
    dx: ArrayViewMut2<F>,
    dparams: &mut Params<F>,
    mut dhidden: ArrayViewMut2<F>,
    dout: ArrayView2<F>,
    cache: &FfnCache<F>,
    x: ArrayView2<F>,
    p: &Params<F>,
    ids: &LayerIds,
    activation: Activation,
) {
    linear_backward(
        InputGrad::Write(dhidden.view_mut()),
        dparams,
        ids.down,
        dout,
        cache.act.view(),
        p.mat(ids.down.weight),
    );
    activation_backward(activation, dhidden.view_mut(), cache.cdf.view(), cache.up.view());
    linear_backward(InputGrad::Add(dx), dparams, ids.up, dhidden.view(), x, p.mat(ids.up.weight));
}
