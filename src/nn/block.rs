//! One Transformer block: attention and feed-forward, each with a residual connection,
//! LayerNorm after (post), before (pre) or nowhere (none).
//!
//! post: h₁ = LN₁(x + attn(x)),  y = LN₂(h₁ + ffn(h₁))
//! pre:  h₁ = x + attn(LN₁(x)),  y = h₁ + ffn(LN₂(h₁))
//! none: h₁ = x + attn(x),       y = h₁ + ffn(h₁)

use super::attention::{AttentionCache, attention_forward};
use super::ffn::{FfnCache, ffn_forward};
use super::layernorm::{NormCache, layernorm_forward};
use super::layout::{LayerIds, NormIds};
use super::params::Params;
use super::position::PositionTables;
use crate::config::{ModelConfig, Norm};
use crate::float::Float;
use ndarray::{Array2, ArrayView2, Zip};

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
            ffn: FfnCache::new(rows, d, config.ffn),
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
}

fn norm_forward<F: Float>(cache: &mut Option<NormCache<F>>, x: ArrayView2<F>, p: &Params<F>, ids: Option<NormIds>) {
    let (cache, ids) = (cache.as_mut().expect("norm cache"), ids.expect("norm tensors"));
    layernorm_forward(cache, x, p.vec(ids.weight), p.vec(ids.bias));
}

fn residual<F: Float>(out: &mut Array2<F>, a: ArrayView2<F>, b: ArrayView2<F>) {
    Zip::from(out).and(a).and(b).for_each(|o, &a, &b| *o = a + b);
}

/// Forward pass of one block on x [batch·n, d].
pub fn block_forward<F: Float>(
    cache: &mut BlockCache<F>,
    x: ArrayView2<F>,
    p: &Params<F>,
    ids: &LayerIds,
    tables: &PositionTables<F>,
    config: &ModelConfig,
) {
    let norm = config.norm;
    if norm == Norm::Pre {
        norm_forward(&mut cache.norm1, x, p, ids.norm1);
        let a = cache.norm1.as_ref().expect("norm cache").out.view();
        attention_forward(&mut cache.attn, a, p, &ids.attn, tables, config);
    } else {
        attention_forward(&mut cache.attn, x, p, &ids.attn, tables, config);
    }
    residual(&mut cache.res1, x, cache.attn.out.view());
    if norm == Norm::Post {
        norm_forward(&mut cache.norm1, cache.res1.view(), p, ids.norm1);
    }
    let h1 = match norm {
        Norm::Post => cache.norm1.as_ref().expect("norm cache").out.view(),
        _ => cache.res1.view(),
    };
    if norm == Norm::Pre {
        norm_forward(&mut cache.norm2, h1, p, ids.norm2);
        let b = cache.norm2.as_ref().expect("norm cache").out.view();
        ffn_forward(&mut cache.ffn, b, p, ids, config.activation);
    } else {
        ffn_forward(&mut cache.ffn, h1, p, ids, config.activation);
    }
    residual(&mut cache.res2, h1, cache.ffn.out.view());
    if norm == Norm::Post {
        norm_forward(&mut cache.norm2, cache.res2.view(), p, ids.norm2);
    }
}
