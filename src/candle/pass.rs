//! The candle engine's training pass, written out as the ndarray engine's is: each layer a
//! forward function that keeps what its backward needs and a backward function that returns
//! the input's gradient and adds the parameters' gradients to [`Grads`]. The hot path runs
//! the fused kernels of [`super::fused`] and cuBLAS products; only the small
//! position-specific pieces go through candle's autograd ([`CandleModel::vjp`]), whose
//! every node would otherwise cost a zero fill and an addition of its size.
//!
//! Hidden states are [rows, d] with rows = batch·m, m the rows the blocks see per sequence (n,
//! or n + 1 with `bos`: row 0 the BOS); heads are [b, h, m, d_h]. The head reads the n input
//! rows only.

use super::differential::DifferentialGraph;
use super::fused::{
    add_rows, bias_activation, bias_activation_backward, layer_norm, layer_norm_backward, layer_norm_xhat_product,
    merge_heads, mul_rows, softmax, softmax_backward, split_heads,
};
use super::grads::Grads;
use super::model::{CandleModel, Constants};
use crate::config::Norm;
use crate::error::{Error, Result};
use crate::nn::TensorId;
use crate::nn::layout::{AttentionIds, InputIds, LayerIds, LinearIds, NormIds};
use candle_core::{Tensor, Var};

/// What the attention backward needs.
struct AttentionCache {
    x: Tensor,
    /// [W_q W_k W_v], [d, 3d]: one product makes q, k and v.
    w_qkv: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    /// What the heads keep between q, k, v and their outputs.
    heads: HeadsCache,
    merged: Tensor,
}

/// The heads' part of attention, from q, k, v [b, h, n, d_h] to their outputs.
enum HeadsCache {
    /// Scores, a normaliser, the gate and the product with V.
    Single(Box<ScoresCache>),
    /// Differential attention, a graph that candle's autograd differentiates whole.
    Differential(DifferentialGraph),
}

/// What the backward of scores, normaliser, gate and product with V needs.
struct ScoresCache {
    /// q', k' of the scores (q, k themselves for families without a transform).
    qs: Tensor,
    ks: Tensor,
    has_terms: bool,
    /// The family adds a value term (then backward differentiates it through G).
    has_value_term: bool,
    bias_learned: Option<Tensor>,
    /// A normaliser other than softmax: its input z (scaled, biased scores) as a graph leaf
    /// and A as a graph over it (and over the normaliser's learned scalars).
    normalised: Option<(Var, Tensor)>,
    gate: Option<Tensor>,
    /// The softmax output A.
    p: Tensor,
    /// The weights that multiply V: A ⊙ C with the gate, A without.
    mix: Tensor,
}

/// What the feed-forward backward needs.
struct FfnCache {
    x: Tensor,
    m: Tensor,
    hidden: Tensor,
}

/// One block's caches and the inputs of its two norms.
struct BlockCache {
    attn: AttentionCache,
    ffn: FfnCache,
    norm1_in: Tensor,
    norm2_in: Tensor,
}

/// Everything the backward pass needs from one forward pass.
pub struct PassCache {
    batch: usize,
    /// Input rows per sequence.
    n: usize,
    /// Rows per sequence where the blocks run: n, or n + 1 with `bos`.
    m: usize,
    constants: std::sync::Arc<Constants>,
    /// One-hot tokens [batch·n, vocab] or real inputs [batch·n, d_in].
    input: Tensor,
    blocks: Vec<BlockCache>,
    /// The last block's output [batch·m, d] (the final norm's input).
    final_in: Tensor,
    /// What the head reads, [batch·n, d]: the last stage without the BOS rows.
    head_in: Tensor,
}

impl CandleModel {
    /// A parameter as a plain tensor (no graph) of the compute type.
    fn w(&self, id: TensorId) -> candle_core::Result<Tensor> {
        self.var(id).detach().to_dtype(self.compute)
    }

    /// Parameters `ids` of the compute type, concatenated along `dim`.
    fn w_cat(&self, ids: [TensorId; 3], dim: usize) -> candle_core::Result<Tensor> {
        Tensor::cat(&ids.map(|id| self.w(id)).into_iter().collect::<candle_core::Result<Vec<_>>>()?, dim)
    }

    /// A graph tensor (the gate) as a flat plain tensor of the compute type.
    fn flat_compute(&self, t: &Tensor) -> candle_core::Result<Tensor> {
        t.detach().to_dtype(self.compute)?.flatten_all()
    }

    /// y = x·W + b, x [rows, in].
    fn linear_forward(&self, x: &Tensor, ids: LinearIds) -> candle_core::Result<Tensor> {
        add_rows(&x.matmul(&self.w(ids.weight)?)?, &self.w(ids.bias)?)
    }

    /// ∂W += xᵀ·g, ∂b += 1ᵀ·g.
    fn linear_param_grads(&self, x: &Tensor, ids: LinearIds, g: &Tensor, grads: &mut Grads) -> candle_core::Result<()> {
        grads.add(ids.weight, x.t()?.matmul(g)?)?;
        grads.add(ids.bias, self.column_sum(g)?)
    }

    /// Backward of [`Self::linear_forward`]: parameter gradients, and ∂L/∂x = g·Wᵀ.
    fn linear_backward(
        &self,
        x: &Tensor,
        ids: LinearIds,
        g: &Tensor,
        grads: &mut Grads,
    ) -> candle_core::Result<Tensor> {
        self.linear_param_grads(x, ids, g, grads)?;
        g.matmul(&self.w(ids.weight)?.t()?)
    }

    fn norm_forward(&self, x: &Tensor, ids: Option<NormIds>) -> candle_core::Result<Tensor> {
        let ids = ids.expect("norm tensors");
        layer_norm(x, &self.w(ids.weight)?, &self.w(ids.bias)?)
    }

    /// ∂w += 1ᵀ·(g ⊙ x̂), ∂b += 1ᵀ·g; returns ∂L/∂x.
    fn norm_backward(
        &self,
        x: &Tensor,
        ids: Option<NormIds>,
        g: &Tensor,
        grads: &mut Grads,
    ) -> candle_core::Result<Tensor> {
        let ids = ids.expect("norm tensors");
        grads.add(ids.weight, self.column_sum(&layer_norm_xhat_product(x, g)?)?)?;
        grads.add(ids.bias, self.column_sum(g)?)?;
        layer_norm_backward(x, &self.w(ids.weight)?, g)
    }

    fn ffn_forward(&self, x: &Tensor, ids: &LayerIds) -> candle_core::Result<(Tensor, FfnCache)> {
        let m = x.matmul(&self.w(ids.up.weight)?)?;
        let hidden = bias_activation(&m, &self.w(ids.up.bias)?, self.config.activation)?;
        let y = self.linear_forward(&hidden, ids.down)?;
        Ok((y, FfnCache { x: x.clone(), m, hidden }))
    }

    fn ffn_backward(&self, c: &FfnCache, ids: &LayerIds, g: &Tensor, grads: &mut Grads) -> candle_core::Result<Tensor> {
        let g_hidden = self.linear_backward(&c.hidden, ids.down, g, grads)?;
        let g_u = bias_activation_backward(&c.m, &self.w(ids.up.bias)?, &g_hidden, self.config.activation)?;
        self.linear_backward(&c.x, ids.up, &g_u, grads)
    }

    /// A normaliser other than softmax, through its candle form: the leaf z = scale·s + bias
    /// (bias rows [P, n] repeating over the rows of s [b, h, n, n]) and A over it.
    fn normalise(
        &self,
        s: &Tensor,
        bias_rows: &Tensor,
        scale: f64,
        ids: &AttentionIds,
    ) -> candle_core::Result<(Var, Tensor)> {
        let (b, h, n, _) = s.dims4()?;
        let period = bias_rows.dim(0)?;
        let z = s.affine(scale, 0.0)?.reshape((b * h * n / period, period, n))?.broadcast_add(bias_rows)?;
        let z = Var::from_tensor(&z.reshape((b, h, n, n))?.detach())?;
        let beta = ids.normaliser.map(|id| self.var(id).to_dtype(self.compute)).transpose()?;
        let attention = self.config.attention;
        let a = attention.0.candle(z.as_tensor(), beta.as_ref()).unwrap_or_else(|| {
            Err(candle_core::Error::Msg(format!("attention `{attention}` has no candle form: use --backend ndarray")))
        })?;
        Ok((z, a))
    }

    fn attention_forward(
        &self,
        x: &Tensor,
        ids: &AttentionIds,
        consts: &Constants,
        batch: usize,
    ) -> candle_core::Result<(Tensor, AttentionCache)> {
        let c = &self.config;
        let rows = x.dims2()?.0;
        let (n, h) = (rows / batch, c.heads);
        let lin = [ids.q, ids.k, ids.v];
        let (w_qkv, b_qkv) = (self.w_cat(lin.map(|l| l.weight), 1)?, self.w_cat(lin.map(|l| l.bias), 0)?);
        let qkv = split_heads(&x.matmul(&w_qkv)?, &b_qkv, n, h, 3)?;
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        let (o, heads) = match ids.differential {
            Some(own) => {
                let (o, graph) = self.differential_forward(ids, own, [&q, &k, &v], consts)?;
                (o, HeadsCache::Differential(graph))
            }
            None => {
                let (o, cache) = self.scores_forward(ids, &q, &k, &v, consts)?;
                (o, HeadsCache::Single(Box::new(cache)))
            }
        };
        let merged = merge_heads(&[&o])?;
        let out = self.linear_forward(&merged, ids.o)?;
        Ok((out, AttentionCache { x: x.clone(), w_qkv, q, k, v, heads, merged }))
    }

    /// From q, k, v [b, h, n, d_h]: the scores with the family's terms, the normaliser, the
    /// gate and the product with V (with the family's value term), the heads' outputs.
    fn scores_forward(
        &self,
        ids: &AttentionIds,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        consts: &Constants,
    ) -> candle_core::Result<(Tensor, ScoresCache)> {
        let (b, h, n, dh) = q.dims4()?;
        let terms = self.score_terms(ids, q, k, consts)?;
        let has_terms = terms.is_some();
        let (qs, ks, extra) = match terms {
            Some(t) => {
                let compute = |t: Tensor| t.detach().to_dtype(self.compute)?.contiguous();
                (compute(t.q)?, compute(t.k)?, t.extra.map(compute).transpose()?)
            }
            None => (q.clone(), k.clone(), None),
        };
        let mut s = qs.matmul(&ks.t()?)?;
        if let Some(e) = extra {
            s = (s + e)?;
        }
        let bias = self.score_bias(&ids.pos, consts, n)?;
        let scale = 1.0 / (dh as f64).sqrt();
        let (p, normalised) = match self.config.attention.is_softmax() {
            true => (softmax(&s, &bias.rows, scale)?, None),
            false => {
                let (z, a) = self.normalise(&s, &bias.rows, scale, ids)?;
                (a.detach().contiguous()?, Some((z, a)))
            }
        };
        let gate = self.gate(&ids.pos, consts, n)?;
        let mix = match &gate {
            Some(g) => mul_rows(&p.reshape((b, h * n * n))?, &self.flat_compute(g)?)?.reshape((b, h, n, n))?,
            None => p.clone(),
        };
        let mut o = mix.matmul(v)?;
        let value_term = self.value_term(ids, &mix, consts)?;
        let has_value_term = value_term.is_some();
        if let Some(e) = value_term {
            o = (o + e.detach().to_dtype(self.compute)?)?;
        }
        let cache =
            ScoresCache { qs, ks, has_terms, has_value_term, bias_learned: bias.learned, normalised, gate, p, mix };
        Ok((o, cache))
    }

    fn attention_backward(
        &self,
        c: &AttentionCache,
        ids: &AttentionIds,
        consts: &Constants,
        g: &Tensor,
        grads: &mut Grads,
    ) -> candle_core::Result<Tensor> {
        let (_, h, n, dh) = c.q.dims4()?;
        let d = h * dh;
        let g_merged = self.linear_backward(&c.merged, ids.o, g, grads)?;
        let g_o = split_heads(&g_merged, &consts.zero_width, n, h, 1)?.get(0)?;
        let [g_q, g_k, g_v] = match &c.heads {
            HeadsCache::Single(cache) => self.scores_backward(cache, c, ids, consts, &g_o, grads)?,
            HeadsCache::Differential(graph) => self.differential_backward(graph, &g_o, grads)?,
        };
        let g_y = merge_heads(&[&g_q, &g_k, &g_v])?; // ∂L/∂(x·[W_q W_k W_v] + b), [rows, 3d]
        let (g_w, g_b) = (c.x.t()?.matmul(&g_y)?, self.column_sum(&g_y)?);
        for (s, lin) in [ids.q, ids.k, ids.v].into_iter().enumerate() {
            grads.add(lin.weight, g_w.narrow(1, s * d, d)?)?;
            grads.add(lin.bias, g_b.narrow(0, s * d, d)?)?;
        }
        g_y.matmul(&c.w_qkv.t()?)
    }

    /// Backward of [`Self::scores_forward`] from ∂L/∂(heads' outputs) `g_o`: ∂L/∂q, ∂L/∂k,
    /// ∂L/∂v, and the position tensors' gradients added to `grads`.
    fn scores_backward(
        &self,
        sc: &ScoresCache,
        c: &AttentionCache,
        ids: &AttentionIds,
        consts: &Constants,
        g_o: &Tensor,
        grads: &mut Grads,
    ) -> candle_core::Result<[Tensor; 3]> {
        let (b, h, n, dh) = c.q.dims4()?;
        let scale = 1.0 / (dh as f64).sqrt();
        let mut g_mix = g_o.matmul(&c.v.t()?)?;
        let g_v = sc.mix.t()?.matmul(g_o)?;
        if sc.has_value_term {
            // a leaf copy of G only for families with a value term (it is [b, h, n, n])
            let mix = Var::from_tensor(&sc.mix)?;
            let term = self.value_term(ids, mix.as_tensor(), consts)?.expect("the forward pass had a value term");
            if let Some(extra) = self.vjp(&[(&term, g_o)], &[&mix], grads)?.remove(0) {
                g_mix = (g_mix + extra)?;
            }
        }
        let g_p = match &sc.gate {
            Some(gate) => {
                let flat = |t: &Tensor| t.reshape((b, h * n * n));
                let g_gate = self.column_sum(&(flat(&g_mix)? * flat(&sc.p)?)?)?.reshape((h, n, n))?;
                self.vjp(&[(gate, &g_gate)], &[], grads)?;
                mul_rows(&flat(&g_mix)?, &self.flat_compute(gate)?)?.reshape((b, h, n, n))?
            }
            None => g_mix,
        };
        let ds = match &sc.normalised {
            None => softmax_backward(&sc.p, &g_p, scale)?, // scale · ∂L/∂(scores)
            Some((z, a)) => {
                let g_z = self.vjp(&[(a, &g_p)], &[z], grads)?.remove(0);
                (g_z.map_or_else(|| sc.p.zeros_like(), Ok)? * scale)?
            }
        };
        if let Some(learned) = &sc.bias_learned {
            let g_bias = (self.column_sum(&ds.reshape((b, h * n * n))?)? / scale)?.reshape((h, n, n))?;
            self.vjp(&[(learned, &g_bias)], &[], grads)?;
        }
        let g_qs = ds.matmul(&sc.ks)?;
        let g_ks = ds.t()?.matmul(&sc.qs)?;
        let (g_q, g_k) = if sc.has_terms {
            let (q, k) = (Var::from_tensor(&c.q)?, Var::from_tensor(&c.k)?);
            let t = self.score_terms(ids, q.as_tensor(), k.as_tensor(), consts)?.expect("score terms");
            let mut pairs = vec![(&t.q, &g_qs), (&t.k, &g_ks)];
            if let Some(e) = &t.extra {
                pairs.push((e, &ds));
            }
            let mut leaves = self.vjp(&pairs, &[&q, &k], grads)?.into_iter();
            let mut next = || leaves.next().flatten().map_or_else(|| c.q.zeros_like(), Ok);
            (next()?, next()?)
        } else {
            (g_qs, g_ks)
        };
        Ok([g_q, g_k, g_v])
    }

    fn block_forward(
        &self,
        x: &Tensor,
        ids: &LayerIds,
        consts: &Constants,
        b: usize,
    ) -> candle_core::Result<(Tensor, BlockCache)> {
        let (y, attn, ffn, norm1_in, norm2_in) = match self.config.norm {
            Norm::Post => {
                let (attn_out, attn) = self.attention_forward(x, &ids.attn, consts, b)?;
                let z1 = (x + attn_out)?;
                let h = self.norm_forward(&z1, ids.norm1)?;
                let (f, ffn) = self.ffn_forward(&h, ids)?;
                let z2 = (&h + f)?;
                (self.norm_forward(&z2, ids.norm2)?, attn, ffn, z1, z2)
            }
            Norm::Pre => {
                let (attn_out, attn) =
                    self.attention_forward(&self.norm_forward(x, ids.norm1)?, &ids.attn, consts, b)?;
                let h = (x + attn_out)?;
                let (f, ffn) = self.ffn_forward(&self.norm_forward(&h, ids.norm2)?, ids)?;
                ((&h + f)?, attn, ffn, x.clone(), h)
            }
            Norm::None => {
                let (attn_out, attn) = self.attention_forward(x, &ids.attn, consts, b)?;
                let h = (x + attn_out)?;
                let (f, ffn) = self.ffn_forward(&h, ids)?;
                ((&h + f)?, attn, ffn, x.clone(), h)
            }
        };
        Ok((y, BlockCache { attn, ffn, norm1_in, norm2_in }))
    }

    fn block_backward(
        &self,
        c: &BlockCache,
        ids: &LayerIds,
        consts: &Constants,
        g: &Tensor,
        grads: &mut Grads,
    ) -> candle_core::Result<Tensor> {
        match self.config.norm {
            Norm::Post => {
                let g_z2 = self.norm_backward(&c.norm2_in, ids.norm2, g, grads)?;
                let g_h = (&g_z2 + self.ffn_backward(&c.ffn, ids, &g_z2, grads)?)?;
                let g_z1 = self.norm_backward(&c.norm1_in, ids.norm1, &g_h, grads)?;
                &g_z1 + self.attention_backward(&c.attn, &ids.attn, consts, &g_z1, grads)?
            }
            Norm::Pre => {
                let g_n2 = self.ffn_backward(&c.ffn, ids, g, grads)?;
                let g_h = (g + self.norm_backward(&c.norm2_in, ids.norm2, &g_n2, grads)?)?;
                let g_n1 = self.attention_backward(&c.attn, &ids.attn, consts, &g_h, grads)?;
                &g_h + self.norm_backward(&c.norm1_in, ids.norm1, &g_n1, grads)?
            }
            Norm::None => {
                let g_h = (g + self.ffn_backward(&c.ffn, ids, g, grads)?)?;
                &g_h + self.attention_backward(&c.attn, &ids.attn, consts, &g_h, grads)?
            }
        }
    }

    /// Forward pass from the device input (token ids [batch·n] or reals [batch, n, d_in]),
    /// with `constants` for the m rows the blocks see ([`crate::ModelConfig::inner_len`]):
    /// the output [batch·n, out] and the caches of the backward pass.
    pub fn forward_pass(
        &self,
        x: &Tensor,
        batch: usize,
        n: usize,
        constants: std::sync::Arc<Constants>,
    ) -> candle_core::Result<(Tensor, PassCache)> {
        let (ids, d) = (&*self.layout, self.config.width);
        let (input, mut h) = match ids.input {
            InputIds::Embed(e) => {
                let table = self.w(e)?;
                let classes = constants.vocab_ids.as_ref().expect("token input");
                let one_hot = x.unsqueeze(1)?.broadcast_eq(classes)?.to_dtype(self.compute)?;
                let h = one_hot.matmul(&table)?;
                (one_hot, h)
            }
            InputIds::Linear(l) => {
                let x2 = x.reshape((batch * n, x.dim(2)?))?;
                let h = self.linear_forward(&x2, l)?;
                (x2, h)
            }
        };
        let m = self.config.inner_len(n);
        if let Some(b) = ids.bos {
            // b before every sequence: [batch, 1 + n, d]
            let first = self.w(b)?.reshape((1, 1, d))?.broadcast_as((batch, 1, d))?;
            h = Tensor::cat(&[&first, &h.reshape((batch, n, d))?], 1)?.reshape((batch * m, d))?;
        }
        if let Some(table) = self.input_rows(&constants, m)?.map(|t| t.detach().to_dtype(self.compute)).transpose()? {
            h = add_rows(&h.reshape((batch, m * d))?, &table.flatten_all()?)?.reshape((batch * m, d))?;
        }
        let mut blocks = Vec::with_capacity(ids.layers.len());
        for layer in &ids.layers {
            let (y, cache) = self.block_forward(&h, layer, &constants, batch)?;
            blocks.push(cache);
            h = y;
        }
        let final_in = h.clone();
        if ids.final_norm.is_some() {
            h = self.norm_forward(&h, ids.final_norm)?;
        }
        if ids.bos.is_some() {
            h = h.reshape((batch, m, d))?.narrow(1, 1, n)?.contiguous()?.reshape((batch * n, d))?;
        }
        let out = self.linear_forward(&h, ids.head)?;
        Ok((out, PassCache { batch, n, m, constants, input, blocks, final_in, head_in: h }))
    }

    /// Backward pass from ∂L/∂output [rows, out]: every parameter's gradient, in the
    /// layout's order (a parameter the pass did not reach is an error naming it).
    pub fn backward_pass(&self, c: &PassCache, g_out: &Tensor) -> Result<Vec<Tensor>> {
        let ids = &*self.layout;
        let mut grads = Grads::new(self.variables().len(), self.dtype);
        let run = |grads: &mut Grads| -> candle_core::Result<()> {
            let d = self.config.width;
            let mut g = self.linear_backward(&c.head_in, ids.head, g_out, grads)?;
            if ids.bos.is_some() {
                // the head read rows 1..=n: the BOS rows get no gradient from it
                g = g.reshape((c.batch, c.n, d))?.pad_with_zeros(1, 1, 0)?.reshape((c.batch * c.m, d))?;
            }
            if ids.final_norm.is_some() {
                g = self.norm_backward(&c.final_in, ids.final_norm, &g, grads)?;
            }
            for (layer, cache) in ids.layers.iter().zip(&c.blocks).rev() {
                g = self.block_backward(cache, layer, &c.constants, &g, grads)?;
            }
            if !ids.input_pos.is_empty() {
                // learned input rows: their gradient is ∂L/∂(input rows) summed over the batch
                let sum = self.column_sum(&g.reshape((c.batch, c.m * d))?)?.reshape((c.m, d))?;
                let rows = self.input_rows(&c.constants, c.m)?.expect("input rows");
                self.vjp(&[(&rows, &sum)], &[], grads)?;
            }
            if let Some(b) = ids.bos {
                // ∂L/∂b: row 0 of every sequence, summed; the input map gets rows 1..=n
                let g3 = g.reshape((c.batch, c.m, d))?;
                grads.add(b, self.column_sum(&g3.narrow(1, 0, 1)?.contiguous()?.reshape((c.batch, d))?)?)?;
                g = g3.narrow(1, 1, c.n)?.contiguous()?.reshape((c.batch * c.n, d))?;
            }
            match ids.input {
                InputIds::Embed(e) => grads.add(e, c.input.t()?.matmul(&g)?),
                InputIds::Linear(l) => self.linear_param_grads(&c.input, l, &g, grads),
            }
        };
        run(&mut grads).map_err(super::model::err)?;
        grads
            .into_slots()
            .into_iter()
            .zip(self.layout.tensors.specs())
            .map(|(g, spec)| match g {
                // contiguous once here, for the norm and Adam that both read it
                Some(g) => g.contiguous().map_err(super::model::err),
                None => Err(Error::Internal(format!("candle: no gradient reached `{}`", spec.name))),
            })
            .collect()
    }
}
