//! Differential attention in the candle engine (the definition is in
//! [`crate::normaliser::differential`]): the heads' part of attention, from q, k, v to the
//! heads' outputs, as one graph that candle's autograd differentiates. The engine's fused
//! softmax takes one score matrix per head and this path needs two, mixed by λ and followed by
//! a per-row RMS norm, so it is written with plain candle ops, in the variables' type (a bf16
//! q, k or v is widened inside the graph, as the family's terms are).

use super::grads::Grads;
use super::model::{CandleModel, Constants};
use crate::nn::layout::{AttentionIds, DifferentialIds};
use crate::normaliser::differential::{RMS_EPS, lambda_init};
use candle_core::{D, Result, Tensor, Var};

/// One layer's differential heads: their leaves and their outputs as a graph.
pub struct DifferentialGraph {
    /// q, k, v [b, h, n, d_h] of the compute type, as leaves.
    leaves: [Var; 3],
    /// The heads' outputs Y [b, h, n, d_h] over the leaves and the model's variables (λ's
    /// vectors, the family's tensors, the gate).
    out: Tensor,
}

/// softmax over the last axis (the row maximum held constant).
fn softmax(s: &Tensor) -> Result<Tensor> {
    let e = s.broadcast_sub(&s.max_keepdim(D::Minus1)?.detach())?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

impl CandleModel {
    /// λ = exp(λ_q1·λ_k1) − exp(λ_q2·λ_k2) + λ_init of the layer, a scalar graph [1, 1, 1, 1]
    /// over its vectors.
    fn lambda(&self, own: DifferentialIds) -> Result<Tensor> {
        let w = self.var(own.lambda);
        let exp_dot = |a: usize, b: usize| (w.get(a)? * w.get(b)?)?.sum_all()?.exp();
        (exp_dot(0, 1)? - exp_dot(2, 3)?)?.affine(1.0, lambda_init(own.layer))?.reshape((1, 1, 1, 1))
    }

    /// The heads' outputs (compute type, [b, h, n, d_h]) of differential attention from q, k,
    /// v, with the graph its backward differentiates.
    pub(super) fn differential_forward(
        &self,
        ids: &AttentionIds,
        own: DifferentialIds,
        qkv: [&Tensor; 3],
        consts: &Constants,
    ) -> Result<(Tensor, DifferentialGraph)> {
        let [lq, lk, lv] = qkv.map(|t| Var::from_tensor(&t.detach()));
        let leaves = [lq?, lk?, lv?];
        let [q, k, v] = leaves.each_ref().map(|l| l.as_tensor().to_dtype(self.dtype));
        let (q, k, v) = (q?, k?, v?);
        let (_, _, n, dh) = q.dims4()?;
        let half = dh / 2;
        let scale = 1.0 / (half as f64).sqrt();
        let bias = self.score_bias_graph(&ids.pos, consts, n)?;
        // A^c = softmax(q^c·k^cᵀ/√(d_h/2) + bias) for the halves c = 1, 2
        let half_softmax = |part: usize| -> Result<Tensor> {
            let (qc, kc) =
                (q.narrow(3, part * half, half)?.contiguous()?, k.narrow(3, part * half, half)?.contiguous()?);
            let s = qc.matmul(&kc.t()?)?.affine(scale, 0.0)?;
            softmax(&match &bias {
                Some(bias) => s.broadcast_add(bias)?,
                None => s,
            })
        };
        let a = (half_softmax(0)? - half_softmax(1)?.broadcast_mul(&self.lambda(own)?)?)?;
        let mix = match self.gate(&ids.pos, consts, n)? {
            Some(gate) => a.broadcast_mul(&gate)?,
            None => a,
        };
        let mut o = mix.matmul(&v)?;
        if let Some(term) = self.value_term(ids, &mix, consts)? {
            o = (o + term)?;
        }
        // Y_i = (1 − λ_init)·O_i/√(mean O_i² + ε)
        let rms = o.sqr()?.mean_keepdim(D::Minus1)?.affine(1.0, RMS_EPS)?.sqrt()?;
        let out = o.broadcast_div(&rms)?.affine(1.0 - lambda_init(own.layer), 0.0)?;
        let heads = out.detach().to_dtype(self.compute)?.contiguous()?;
        Ok((heads, DifferentialGraph { leaves, out }))
    }

    /// Backward of [`Self::differential_forward`] from ∂L/∂(heads' outputs) `g_o`: ∂L/∂q,
    /// ∂L/∂k, ∂L/∂v (compute type), and the gradients of λ's vectors, the family's tensors
    /// and the gate added to `grads`.
    pub(super) fn differential_backward(
        &self,
        graph: &DifferentialGraph,
        g_o: &Tensor,
        grads: &mut Grads,
    ) -> Result<[Tensor; 3]> {
        let leaves = self.vjp(&[(&graph.out, g_o)], &graph.leaves.each_ref(), grads)?;
        let mut each = leaves.into_iter().zip(&graph.leaves).map(|(g, leaf)| g.map_or_else(|| leaf.zeros_like(), Ok));
        let mut next = || each.next().expect("three leaves");
        Ok([next()?, next()?, next()?])
    }
}
