//! A family's terms in the candle engine (feature `candle`): the same terms as
//! [`super::Terms`], written with differentiable candle ops; the engine differentiates them
//! with candle's autograd (they are small next to the hot path).

use super::{FamilyDims, FamilyIds};
use crate::params::TensorId;
use candle_core::{D, DType, Device, Result, Tensor, Var};

/// What a family's candle terms see of one attention layer at sequence length n.
pub struct CandleCx<'a> {
    /// The model's variables, by tensor id.
    pub vars: &'a [Var],
    /// The tensors the family declared for this layer (or at the input).
    pub ids: &'a FamilyIds,
    /// The sizes.
    pub dims: FamilyDims,
    /// Sequence length.
    pub n: usize,
    /// One-hot expansion of offset tables [2·n_max − 1, n·n]: E[o, i·n + j] = 1 where
    /// (j − i) + n_max − 1 = o.
    pub offsets: &'a Tensor,
    /// (j − i) + n − 1 for every (i, j), [n, n] (u32).
    pub skew: &'a Tensor,
    /// o + i for every (i, o), [n, 2n − 1] (u32).
    pub unskew: &'a Tensor,
    /// The family's own constants at this length ([`CandleTerms::constants`]).
    pub constants: &'a [Tensor],
}

impl CandleCx<'_> {
    /// Variable `id` as a graph leaf.
    pub fn var(&self, id: TensorId) -> &Tensor {
        self.vars[id.0].as_tensor()
    }

    /// The i-th tensor the family declared, as a graph leaf.
    pub fn tensor(&self, i: usize) -> &Tensor {
        self.var(self.ids.get(i))
    }

    /// The window of a relative table [2·n_max − 1, k] (or [heads, 2·n_max − 1, k]) that
    /// sequences of length n use: offsets −(n − 1)..=n − 1 along axis `dim`.
    pub fn window(&self, table: &Tensor, dim: usize) -> Result<Tensor> {
        table.narrow(dim, self.dims.n_max - self.n, 2 * self.n - 1)
    }

    /// S[.., i, j] = M[.., i, (j − i) + n − 1]: scores laid out by offset [.., n, 2n − 1]
    /// back to [.., n, n].
    pub fn unskew(&self, m: &Tensor) -> Result<Tensor> {
        let mut shape = m.dims().to_vec();
        let n = shape[shape.len() - 2];
        *shape.last_mut().expect("rank ≥ 2") = n;
        m.contiguous()?.gather(&self.skew.broadcast_as(shape)?.contiguous()?, D::Minus1)
    }

    /// W[.., i, (j − i) + n − 1] = P[.., i, j], zeros elsewhere: [.., n, n] to [.., n, 2n − 1].
    /// With P padded by n − 1 zeros on each side, W[i, o] is its entry o + i (a gather;
    /// candle's `scatter_add` has a broken backward when its source is narrower).
    pub fn skew(&self, p: &Tensor) -> Result<Tensor> {
        let mut shape = p.dims().to_vec();
        let n = shape[shape.len() - 1];
        let padded = p.pad_with_zeros(D::Minus1, n - 1, n - 1)?;
        *shape.last_mut().expect("rank ≥ 2") = 2 * n - 1;
        padded.gather(&self.unskew.broadcast_as(shape)?.contiguous()?, D::Minus1)
    }
}

/// A table [heads, m] laid out as [heads, n, n] through its one-hot expansion [m, n·n]
/// (a product, whose backward is a product too: candle's index_add on CUDA is serial).
pub fn expand(table: &Tensor, expansion: &Tensor, n: usize) -> Result<Tensor> {
    let heads = table.dim(0)?;
    table.matmul(expansion)?.reshape((heads, n, n))
}

/// x [b, h, n, k] times the rows of `t` ([2n − 1, k], shared by the heads) as
/// [b, h, n, 2n − 1].
pub fn against_shared(x: &Tensor, t: &Tensor) -> Result<Tensor> {
    let (b, h, n, kk) = x.dims4()?;
    x.contiguous()?.reshape((b * h * n, kk))?.matmul(&t.t()?)?.reshape((b, h, n, t.dim(0)?))
}

/// A tensor of `dtype` on `device` from host values.
pub fn tensor_from(values: &[f64], shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    Tensor::from_slice(values, shape, &Device::Cpu)?.to_dtype(dtype)?.to_device(device)
}

/// One-hot expansion [rows, n·n] with a one at (of(i, j), i·n + j).
pub fn one_hot(
    rows: usize,
    n: usize,
    of: &dyn Fn(usize, usize) -> usize,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let mut e = vec![0.0; rows * n * n];
    for k in 0..n * n {
        e[of(k / n, k % n) * n * n + k] = 1.0;
    }
    tensor_from(&e, &[rows, n * n], dtype, device)
}

/// What a family feeds into the scores s = q'·k'ᵀ + E (before the scale and the bias).
pub struct ScoreTerms {
    /// q' [b, h, n, d_h].
    pub q: Tensor,
    /// k' [b, h, n, d_h].
    pub k: Tensor,
    /// E [b, h, n, n], or none.
    pub extra: Option<Tensor>,
}

/// A family's terms in candle. Every method has a default that adds nothing.
pub trait CandleTerms: Send + Sync {
    /// The family's constants at length n on the device (made once per length).
    fn constants(&self, _n: usize, _dtype: DType, _device: &Device) -> Result<Vec<Tensor>> {
        Ok(Vec::new())
    }

    /// Rows [n, d] added to the input rows, as a graph over the model's variables.
    fn input_rows(&self, _cx: &CandleCx) -> Result<Option<Tensor>> {
        Ok(None)
    }

    /// q', k' and E from q and k [b, h, n, d_h]; none where the family scores q·kᵀ alone.
    fn score_terms(&self, _cx: &CandleCx, _q: &Tensor, _k: &Tensor) -> Result<Option<ScoreTerms>> {
        Ok(None)
    }

    /// A learned score bias [h, n, n] (scaled like the scores by the engine: it is added
    /// after the 1/√d_h), as a graph over the model's variables.
    fn learned_bias(&self, _cx: &CandleCx) -> Result<Option<Tensor>> {
        Ok(None)
    }

    /// A fixed score bias [h, n, n].
    fn fixed_bias(&self, _cx: &CandleCx) -> Option<Tensor> {
        None
    }

    /// The value term [b, h, n, d_h] from the weights `mix` [b, h, n, n] that multiply V.
    fn value_term(&self, _cx: &CandleCx, _mix: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }
}

/// A family without candle terms.
pub struct NoCandleTerms;

impl CandleTerms for NoCandleTerms {}
