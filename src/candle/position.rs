//! The position-specific pieces of attention, which the training pass differentiates with
//! candle's autograd through [`CandleModel::vjp`] (they are small next to the hot path):
//! the family's terms (each family's module in [`crate::family`] writes its own), the
//! causal mask and the URPE gate.

use super::grads::Grads;
use super::model::{CandleModel, Constants};
use crate::family::FamilyIds;
use crate::family::candle::{CandleCx, ScoreTerms, expand};
use crate::nn::TensorId;
use crate::nn::layout::{AttentionIds, PositionIds};
use candle_core::{D, Result, Tensor, Var};

/// The additive score bias of one attention layer.
pub struct ScoreBias {
    /// Rows [P, n] that repeat over the rows of the scores [b, h, n, n] (P = h·n, n or 1).
    pub rows: Tensor,
    /// Its learned part [h, n, n] as a graph over the model's variables (t5 families).
    pub learned: Option<Tensor>,
}

impl CandleModel {
    /// What the family's candle terms see of the tensors `ids` at length n.
    fn family_cx<'a>(&'a self, ids: &'a FamilyIds, consts: &'a Constants, n: usize) -> CandleCx<'a> {
        CandleCx {
            vars: self.variables(),
            ids,
            dims: self.config.family_dims(),
            n,
            offsets: &consts.offsets,
            skew: &consts.skew,
            unskew: &consts.unskew,
            constants: &consts.family,
        }
    }

    /// q', k' and E of the layer's family from q and k [b, h, n, d_h] (in the variables'
    /// type: a bf16 q or k is widened inside the graph); none where the family scores q·kᵀ
    /// alone.
    pub fn score_terms(
        &self,
        ids: &AttentionIds,
        q: &Tensor,
        k: &Tensor,
        consts: &Constants,
    ) -> Result<Option<ScoreTerms>> {
        let n = q.dim(2)?;
        let (q, k) = (q.to_dtype(self.dtype)?, k.to_dtype(self.dtype)?);
        self.family().score_terms(&self.family_cx(&ids.pos.family, consts, n), &q, &k)
    }

    /// The score bias: the family's learned part laid out [h, n, n], its fixed part and the
    /// causal mask, as rows of the compute type; zeros [1, n] where there is none.
    pub fn score_bias(&self, pos: &PositionIds, consts: &Constants, n: usize) -> Result<ScoreBias> {
        let cx = self.family_cx(&pos.family, consts, n);
        let learned = self.family().learned_bias(&cx)?;
        let rows = self.with_constant_bias(learned.as_ref().map(|t| t.detach()), &cx, consts)?;
        let rows = match rows {
            Some(r) => {
                let n_cols = r.dim(D::Minus1)?;
                r.contiguous()?.reshape((r.elem_count() / n_cols, n_cols))?.to_dtype(self.compute)?
            }
            None => consts.no_bias.clone(),
        };
        Ok(ScoreBias { rows, learned })
    }

    /// The score bias as one graph over the model's variables, in their type: the family's
    /// learned part [h, n, n] plus its fixed part and the causal mask (broadcast); none where
    /// there is none. For a path that candle's autograd differentiates whole (differential
    /// attention).
    pub fn score_bias_graph(&self, pos: &PositionIds, consts: &Constants, n: usize) -> Result<Option<Tensor>> {
        let cx = self.family_cx(&pos.family, consts, n);
        self.with_constant_bias(self.family().learned_bias(&cx)?, &cx, consts)
    }

    /// `start` plus the family's fixed score bias and the causal mask, where there are any.
    fn with_constant_bias(&self, start: Option<Tensor>, cx: &CandleCx, consts: &Constants) -> Result<Option<Tensor>> {
        let mut total = start;
        for constant in [&self.family().fixed_bias(cx), &consts.mask].into_iter().flatten() {
            total = Some(match total {
                Some(t) => t.broadcast_add(constant)?,
                None => constant.clone(),
            });
        }
        Ok(total)
    }

    /// The URPE gate C laid out [h, n, n] (a graph over the model's variables), if on.
    pub fn gate(&self, pos: &PositionIds, consts: &Constants, n: usize) -> Result<Option<Tensor>> {
        pos.gate.map(|g| expand(self.var(g), &consts.offsets, n)).transpose()
    }

    /// The family's value term [b, h, n, d_h] from the weights G [b, h, n, n] that multiply V.
    pub fn value_term(&self, ids: &AttentionIds, mix: &Tensor, consts: &Constants) -> Result<Option<Tensor>> {
        let n = mix.dim(2)?;
        self.family().value_term(&self.family_cx(&ids.pos.family, consts, n), &mix.to_dtype(self.dtype)?)
    }

    /// The family's input rows [n, d] (a graph over the model's variables), if any.
    pub fn input_rows(&self, consts: &Constants, n: usize) -> Result<Option<Tensor>> {
        self.family().input_rows(&self.family_cx(&self.layout.input_pos, consts, n))
    }

    /// Backpropagates Σᵢ ⟨outputsᵢ, seedsᵢ⟩ through candle's graph (each seed cast to its
    /// output's type): adds the gradient of every model variable it reaches to `grads` and
    /// returns those of `leaves` (in each leaf's type).
    pub fn vjp(&self, pairs: &[(&Tensor, &Tensor)], leaves: &[&Var], grads: &mut Grads) -> Result<Vec<Option<Tensor>>> {
        let mut total: Option<Tensor> = None;
        for (out, seed) in pairs {
            let term = (*out * seed.detach().to_dtype(out.dtype())?)?.sum_all()?;
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
