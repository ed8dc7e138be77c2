//! Differentiable building blocks in candle for the pieces that go through candle's
//! autograd (only ops whose backward candle implements: candle-nn's fused softmax, layer
//! norm and rope kernels silently drop gradients).

use candle_core::{D, Result, Tensor};

/// log softmax over the last axis.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)
}
