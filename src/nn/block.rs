//! One Transformer block: attention and feed-forward, each with a residual connection,
//! LayerNorm after (post), before (pre) or nowhere (none).
//!
//! post: h₁ = LN₁(x + attn(x)),  y = LN₂(h₁ + ffn(h₁))
//! pre:  h₁ = x + attn(LN₁(x)),  y = h₁ + ffn(LN₂(h₁))
//! none: h₁ = x + attn(x),       y = h₁ + ffn(h₁)

use super::attention::{AttentionCache, AttentionGrads, attention_backward, attention_forward};
use super::ffn::{FfnCache, ffn_backward, ffn_forward};
use super::layernorm::{NormCache, layernorm_backward, layernorm_forward};
use super::layout::{LayerIds, NormIds};
use crate::config::{ModelConfig, Norm};
use crate::family::PositionTerms;
use crate::float::Float;
use crate::params::Params;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};

/// Activations of one block.
#[derive(Clone, Debug)]
pub struct BlockCache<F> {
    /// LN₁ (pre: of the block input; post: of the first residual sum).
    pub norm1: Option<NormCache<F>>,
    /// Attention.
    pub attn: AttentionCache<F>,
    /// First residual sum x + attn(·), [rows, d].
    pub res1: Array2<F>,
    /// LN₂ (pre: of h₁; post: of the second residual sum).
    pub norm2: Option<NormCache<F>>,
    /// Feed-forward.
    pub ffn: FfnCache<F>,
    /// Second residual sum h₁ + ffn(·), [rows, d].
    pub res2: Array2<F>,
}

impl<F: Float> BlockCache<F> {
    /// Storage for `batch` sequences of length `n`.
    pub fn new(config: &ModelConfig, batch: usize, n: usize) -> Self {
        let (rows, d) = (batch * n, config.width);
        let norm = || (config.norm != Norm::None).then(|| NormCache::new(rows, d));
        BlockCache {
            norm1: norm(),
            attn: AttentionCache::new(config, batch, n),
            res1: Array2::zeros((rows, d)),
            norm2: norm(),
            ffn: FfnCache::new(config, rows),
            res2: Array2::zeros((rows, d)),
        }
    }

    /// h₁: what the feed-forward half starts from (post: LN₁ of the residual sum).
    pub fn hidden(&self, norm: Norm) -> &Array2<F> {
        match (norm, &self.norm1) {
            (Norm::Post, Some(n1)) => &n1.out,
            _ => &self.res1,
        }
    }

    /// The block output y.
    pub fn output(&self, norm: Norm) -> &Array2<F> {
        match (norm, &self.norm2) {
            (Norm::Post, Some(n2)) => &n2.out,
            _ => &self.res2,
        }
    }

    /// What attention reads: LN₁(x) for pre-norm, x otherwise.
    fn attention_input<'a>(&'a self, norm: Norm, x: ArrayView2<'a, F>) -> ArrayView2<'a, F> {
        match (norm, &self.norm1) {
            (Norm::Pre, Some(n1)) => n1.out.view(),
            _ => x,
        }
    }

    /// What the feed-forward layer reads: LN₂(h₁) for pre-norm, h₁ otherwise.
    fn ffn_input(&self, norm: Norm) -> ArrayView2<'_, F> {
        match (norm, &self.norm2) {
            (Norm::Pre, Some(n2)) => n2.out.view(),
            _ => self.hidden(norm).view(),
        }
    }
}

fn norm_forward<F: Float>(cache: &mut Option<NormCache<F>>, x: ArrayView2<F>, p: &Params<F>, ids: Option<NormIds>) {
    let (cache, ids) = (cache.as_mut().expect("norm cache"), ids.expect("norm tensors"));
    layernorm_forward(cache, x, p.vec(ids.weight), p.vec(ids.bias));
}

fn residual<F: Float>(out: &mut Array2<F>, a: ArrayView2<F>, b: ArrayView2<F>) {
    match (out.as_slice_mut(), a.as_slice(), b.as_slice()) {
        (Some(out), Some(a), Some(b)) => out.iter_mut().zip(a).zip(b).for_each(|((o, &a), &b)| *o = a + b),
        (_, _, _) => Zip::from(out).and(a).and(b).for_each(|o, &a, &b| *o = a + b),
    }
}

/// Forward pass of one block on x [batch·n, d].
pub fn block_forward<F: Float>(
    cache: &mut BlockCache<F>,
    x: ArrayView2<F>,
    p: &Params<F>,
    ids: &LayerIds,
    terms: &PositionTerms<F>,
    config: &ModelConfig,
) {
    let norm = config.norm;
    if norm == Norm::Pre {
        norm_forward(&mut cache.norm1, x, p, ids.norm1);
    }
    let a = match (norm, &cache.norm1) {
        (Norm::Pre, Some(n1)) => n1.out.view(),
        _ => x,
    };
    attention_forward(&mut cache.attn, a, p, &ids.attn, terms, config);
    residual(&mut cache.res1, x, cache.attn.out.view());
    if norm == Norm::Post {
        norm_forward(&mut cache.norm1, cache.res1.view(), p, ids.norm1);
    }
    let h1 = match (norm, &cache.norm1) {
        (Norm::Post, Some(n1)) => n1.out.view(),
        _ => cache.res1.view(),
    };
    if norm == Norm::Pre {
        norm_forward(&mut cache.norm2, h1, p, ids.norm2);
    }
    let f_in = match (norm, &cache.norm2) {
        (Norm::Pre, Some(n2)) => n2.out.view(),
        _ => h1,
    };
    ffn_forward(&mut cache.ffn, f_in, p, ids, config.activation);
    residual(&mut cache.res2, h1, cache.ffn.out.view());
    if norm == Norm::Post {
        norm_forward(&mut cache.norm2, cache.res2.view(), p, ids.norm2);
    }
}

/// Workspace of a block's backward pass, allocated once and shared by the layers.
#[derive(Clone, Debug)]
pub struct BlockGrads<F> {
    /// Attention backward workspace.
    pub attn: AttentionGrads<F>,
    /// Gradients at the residual sums and norm inputs, [rows, d] each.
    d_first: Array2<F>,
    d_second: Array2<F>,
    /// ∂L/∂(FFN hidden), [rows, f].
    d_hidden: Array2<F>,
}

impl<F: Float> BlockGrads<F> {
    /// Storage for `batch` sequences of length `n`.
    pub fn new(config: &ModelConfig, batch: usize, n: usize, ids: &LayerIds) -> Self {
        let (rows, d) = (batch * n, config.width);
        BlockGrads {
            attn: AttentionGrads::new(config, batch, n, &ids.attn),
            d_first: Array2::zeros((rows, d)),
            d_second: Array2::zeros((rows, d)),
            d_hidden: Array2::zeros((rows, config.ffn)),
        }
    }
}

fn norm_backward<F: Float>(
    dx: ArrayViewMut2<F>,
    dparams: &mut Params<F>,
    dy: ArrayView2<F>,
    cache: &Option<NormCache<F>>,
    p: &Params<F>,
    ids: Option<NormIds>,
) {
    let ids = ids.expect("norm tensors");
    layernorm_backward(dx, dparams, ids, dy, cache.as_ref().expect("norm cache"), p.vec(ids.weight));
}

/// Backward of [`block_forward`]: from ∂L/∂y writes ∂L/∂x into `dx` and accumulates the
/// block's parameter gradients.
#[allow(clippy::too_many_arguments)]
pub fn block_backward<F: Float>(
    mut dx: ArrayViewMut2<F>,
    dparams: &mut Params<F>,
    ws: &mut BlockGrads<F>,
    dy: ArrayView2<F>,
    cache: &BlockCache<F>,
    x: ArrayView2<F>,
    p: &Params<F>,
    ids: &LayerIds,
    terms: &PositionTerms<F>,
    config: &ModelConfig,
) {
    let (norm, act) = (config.norm, config.activation);
    let BlockGrads { attn, d_first, d_second, d_hidden } = ws;
    // d_first ← ∂L/∂h₁ (the input of the FFN half, through both its paths)
    match norm {
        Norm::Post => {
            d_second.fill(F::zero());
            norm_backward(d_second.view_mut(), dparams, dy, &cache.norm2, p, ids.norm2);
            d_first.assign(d_second);
            ffn_backward(
                d_first.view_mut(),
                dparams,
                d_hidden.view_mut(),
                d_second.view(),
                &cache.ffn,
                cache.ffn_input(norm),
                p,
                ids,
                act,
            );
        }
        Norm::Pre => {
            d_second.fill(F::zero());
            ffn_backward(
                d_second.view_mut(),
                dparams,
                d_hidden.view_mut(),
                dy,
                &cache.ffn,
                cache.ffn_input(norm),
                p,
                ids,
                act,
            );
            d_first.assign(&dy);
            norm_backward(d_first.view_mut(), dparams, d_second.view(), &cache.norm2, p, ids.norm2);
        }
        Norm::None => {
            d_first.assign(&dy);
            ffn_backward(
                d_first.view_mut(),
                dparams,
                d_hidden.view_mut(),
                dy,
                &cache.ffn,
                cache.ffn_input(norm),
                p,
                ids,
                act,
            );
        }
    }
    // dx ← ∂L/∂x through the attention half
    let a_in = cache.attention_input(norm, x);
    match norm {
        Norm::Post => {
            d_second.fill(F::zero());
            norm_backward(d_second.view_mut(), dparams, d_first.view(), &cache.norm1, p, ids.norm1);
            dx.assign(d_second);
            attention_backward(dx, dparams, attn, d_second.view(), &cache.attn, a_in, p, &ids.attn, terms, config);
        }
        Norm::Pre => {
            d_second.fill(F::zero());
            attention_backward(
                d_second.view_mut(),
                dparams,
                attn,
                d_first.view(),
                &cache.attn,
                a_in,
                p,
                &ids.attn,
                terms,
                config,
            );
            dx.assign(d_first);
            norm_backward(dx, dparams, d_second.view(), &cache.norm1, p, ids.norm1);
        }
        Norm::None => {
            dx.assign(d_first);
            attention_backward(dx, dparams, attn, d_first.view(), &cache.attn, a_in, p, &ids.attn, terms, config);
        }
    }
}
