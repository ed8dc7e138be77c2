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

/// Half-split rotation of the last axis: x·cos + rotate_half(x)·sin, with
/// rotate_half(a, b) = (−b, a) and cos, sin of shape [n, d_h] (each half repeated).
pub fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let (a, b) = (x.narrow(D::Minus1, 0, half)?, x.narrow(D::Minus1, half, half)?);
    let turned = Tensor::cat(&[&b.neg()?, &a], D::Minus1)?;
    x.broadcast_mul(cos)?.broadcast_add(&turned.broadcast_mul(sin)?)
}
