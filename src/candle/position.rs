//! The position-specific pieces of attention in candle ops, which the training pass
//! differentiates with candle's autograd through [`CandleModel::vjp`] (they are small
//! next to the hot path): the additive score bias (t5 tables, ALiBi, causal mask), the
//! URPE gate, RoPE, Shaw's key and value terms and Transformer-XL's terms.

use super::grads::Grads;
use super::model::{CandleModel, Constants};
use super::ops::rotate;
use crate::nn::layout::{AttentionIds, FamilyTensors};
use crate::nn::{TensorId, layout::PositionIds};
use candle_core::{D, Result, Tensor, Var};

/// What a family feeds into the scores s = q'·k'ᵀ + E (before the scale and the bias).
pub struct ScoreTerms {
    /// q' [b, h, n, d_h].
    pub q: Tensor,
    /// k' [b, h, n, d_h].
    pub k: Tensor,
    /// E [b, h, n, n], or none.
    pub extra: Option<Tensor>,
}

/// The additive score bias of one attention layer.
pub struct ScoreBias {
    /// Rows [P, n] that repeat over the rows of the scores [b, h, n, n] (P = h·n, n or 1).
    pub rows: Tensor,
    /// Its learned part [h, n, n] as a graph over the model's variables (t5 families).
    pub learned: Option<Tensor>,
}

impl CandleModel {
    /// The window of a relative table [2·n_max − 1, k] (or [heads, 2·n_max − 1, k]) that
    /// sequences of length n use: offsets −(n − 1)..=n − 1 along axis `dim`.
    fn window(table: &Tensor, dim: usize, n: usize, n_max: usize) -> Result<Tensor> {
        table.narrow(dim, n_max - n, 2 * n - 1)
    }

    /// S[.., i, j] = M[.., i, (j − i) + n − 1]: scores laid out by offset [.., n, 2n − 1]
    /// back to [.., n, n].
    fn unskew(m: &Tensor, consts: &Constants) -> Result<Tensor> {
        let mut shape = m.dims().to_vec();
        let n = shape[shape.len() - 2];
        *shape.last_mut().expect("rank ≥ 2") = n;
        m.contiguous()?.gather(&consts.skew.broadcast_as(shape)?.contiguous()?, D::Minus1)
    }

    /// W[.., i, (j − i) + n − 1] = P[.., i, j], zeros elsewhere: [.., n, n] to [.., n, 2n − 1].
    /// With P padded by n − 1 zeros on each side, W[i, o] is its entry o + i (a gather;
    /// candle's `scatter_add` has a broken backward when its source is narrower).
    fn skew(p: &Tensor, consts: &Constants) -> Result<Tensor> {
        let mut shape = p.dims().to_vec();
        let n = shape[shape.len() - 1];
        let padded = p.pad_with_zeros(D::Minus1, n - 1, n - 1)?;
        *shape.last_mut().expect("rank ≥ 2") = 2 * n - 1;
        padded.gather(&consts.unskew.broadcast_as(shape)?.contiguous()?, D::Minus1)
    }

    /// A table [heads, m] laid out as [heads, n, n] through its one-hot expansion [m, n·n]
    /// (a product, whose backward is a product too: candle's index_add on CUDA is serial).
    fn expand(table: &Tensor, expansion: &Tensor, n: usize) -> Result<Tensor> {
        let heads = table.dim(0)?;
        table.matmul(expansion)?.reshape((heads, n, n))
    }

    /// x [b, h, n, k] times the rows of `t` ([2n − 1, k], shared by the heads) as
    /// [b, h, n, 2n − 1].
    fn against_shared(x: &Tensor, t: &Tensor) -> Result<Tensor> {
        let (b, h, n, k) = x.dims4()?;
        x.contiguous()?.reshape((b * h * n, k))?.matmul(&t.t()?)?.reshape((b, h, n, t.dim(0)?))
    }

    /// q', k' and E of the layer's family from q and k [b, h, n, d_h]; none where the
    /// family scores q·kᵀ alone (nope, APE, t5, ALiBi).
    pub fn score_terms(
        &self,
        ids: &AttentionIds,
        q: &Tensor,
        k: &Tensor,
        consts: &Constants,
    ) -> Result<Option<ScoreTerms>> {
        let c = &self.config;
        let (b, h, n, dh) = q.dims4()?;
        if let Some((cos, sin)) = &consts.rope {
            return Ok(Some(ScoreTerms { q: rotate(q, cos, sin)?, k: rotate(k, cos, sin)?, extra: None }));
        }
        Ok(match ids.pos.family {
            FamilyTensors::ShawKey(t) => {
                let m = Self::against_shared(q, &Self::window(self.var(t), 0, n, c.n_max)?)?;
                Some(ScoreTerms { q: q.clone(), k: k.clone(), extra: Some(Self::unskew(&m, consts)?) })
            }
            FamilyTensors::Xl { u, v, r } => {
                let head = |t: &Tensor| t.reshape((1, h, 1, dh));
                let rel = self.xl_sinusoid().expect("xl tables").matmul(self.var(r))?;
                let rel = rel.reshape((c.offsets(), h, dh))?.transpose(0, 1)?; // [h, offsets, dh]
                let win = Self::window(&rel, 1, n, c.n_max)?.contiguous()?;
                let x = q.broadcast_add(&head(self.var(v))?)?.transpose(0, 1)?.contiguous()?.reshape((h, b * n, dh))?;
                let m =
                    x.matmul(&win.transpose(1, 2)?.contiguous()?)?.reshape((h, b, n, 2 * n - 1))?.transpose(0, 1)?;
                Some(ScoreTerms {
                    q: q.broadcast_add(&head(self.var(u))?)?,
                    k: k.clone(),
                    extra: Some(Self::unskew(&m, consts)?),
                })
            }
            _ => None,
        })
    }

    /// The score bias: the learned t5 table laid out [h, n, n], ALiBi's and the causal
    /// mask's constants; zeros [1, n] where there is none.
    pub fn score_bias(&self, pos: &PositionIds, consts: &Constants, n: usize) -> Result<ScoreBias> {
        let learned = match pos.family {
            FamilyTensors::T5(t) => Some(Self::expand(self.var(t), &consts.offsets, n)?),
            FamilyTensors::T5Bucketed(t) => {
                Some(Self::expand(self.var(t), consts.buckets.as_ref().expect("bucket table"), n)?)
            }
            _ => None,
        };
        let mut rows: Option<Tensor> = learned.as_ref().map(|t| t.detach());
        for constant in [&consts.alibi, &consts.mask].into_iter().flatten() {
            rows = Some(match rows {
                Some(r) => r.broadcast_add(constant)?,
                None => constant.clone(),
            });
        }
        let rows = match rows {
            Some(r) => {
                let n_cols = r.dim(D::Minus1)?;
                r.contiguous()?.reshape((r.elem_count() / n_cols, n_cols))?
            }
            None => consts.no_bias.clone(),
        };
        Ok(ScoreBias { rows, learned })
    }

    /// The URPE gate C laid out [h, n, n] (a graph over the model's variables), if on.
    pub fn gate(&self, pos: &PositionIds, consts: &Constants, n: usize) -> Result<Option<Tensor>> {
        pos.gate.map(|g| Self::expand(self.var(g), &consts.offsets, n)).transpose()
    }

    /// Shaw's value term skew(G)·R [b, h, n, d_h] from the weights G [b, h, n, n] that multiply V.
    pub fn value_term(&self, ids: &AttentionIds, mix: &Tensor, consts: &Constants) -> Result<Option<Tensor>> {
        let FamilyTensors::ShawValue(t) = ids.pos.family else { return Ok(None) };
        let (b, h, n, _) = mix.dims4()?;
        let w = Self::skew(mix, consts)?.reshape((b * h * n, 2 * n - 1))?;
        let win = Self::window(self.var(t), 0, n, self.config.n_max)?;
        Ok(Some(w.matmul(&win)?.reshape((b, h, n, self.config.head_dim()))?))
    }

    /// Backpropagates Σᵢ ⟨outputsᵢ, seedsᵢ⟩ through candle's graph: adds the gradient of
    /// every model variable it reaches to `grads` and returns those of `leaves`.
    pub fn vjp(&self, pairs: &[(&Tensor, &Tensor)], leaves: &[&Var], grads: &mut Grads) -> Result<Vec<Option<Tensor>>> {
        let mut total: Option<Tensor> = None;
        for (out, seed) in pairs {
            let term = (*out * seed.detach())?.sum_all()?;
            total = Some(match total {
                Some(t) => (t + term)?,
                None => term,
            });
        }
        let Some(total) = total else { return Ok(vec![None; leaves.len()]) };
        let store = total.backward()?;
        for (i, var) in self.variables().iter().enumerate() {
            if let Some(g) = store.get(var.as_tensor()) {
                grads.add(TensorId(i), g.clone())?;
            }
        }
        Ok(leaves.iter().map(|v| store.get(v.as_tensor()).cloned()).collect())
    }
}
