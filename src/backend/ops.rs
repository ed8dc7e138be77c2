//! Differentiable building blocks in candle (only ops whose backward candle implements:
//! no fused softmax, layer norm or rope kernels, which silently drop gradients).

use candle_core::{D, Result, Tensor};

/// y = x·W + b over the last axis (W is [in, out], the row-vector convention), as one
/// [rows, in]·[in, out] product: a broadcast batched product would make candle's backward
/// build one weight gradient per batch entry and then sum them.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dims = x.dims();
    let (last, rows) = (dims[dims.len() - 1], x.elem_count() / dims[dims.len() - 1]);
    let mut out = dims.to_vec();
    *out.last_mut().expect("rank ≥ 1") = w.dim(1)?;
    debug_assert_eq!(last, w.dim(0)?);
    x.reshape((rows, last))?.matmul(w)?.broadcast_add(b)?.reshape(out)
}

/// LayerNorm over the last axis with ε = 1e-5 (biased variance), from elementary ops.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let xhat = centred.broadcast_div(&(var + crate::nn::layernorm::LN_EPS)?.sqrt()?)?;
    xhat.broadcast_mul(w)?.broadcast_add(b)
}

/// GELU, exact form x/2·(1 + erf(x/√2)), from `erf` (candle's fused `gelu_erf` backward
/// uses 0.398942 for 1/√(2π), a 7e-7 relative error in its gradient).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    (x * 0.5)? * ((x / std::f64::consts::SQRT_2)?.erf()? + 1.0)?
}

/// Softmax over the last axis: exp(x − max) / Σ exp(x − max) (−∞ entries get 0).
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

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
