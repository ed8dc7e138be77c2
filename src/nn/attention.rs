//! Multi-head attention with every position family and the URPE gate. Scores,
//! probabilities and gated probabilities are materialised and kept in the cache.
//!
//! Per head h (columns h·d_h..(h+1)·d_h of Q, K, V):
//! S = Q_h K_hᵀ/√d_h + position term, A = row_softmax(S), G = A ⊙ C_h (URPE) or A,
//! out_h = G V_h (+ Σ_j G_ij a^V_{j−i} for shaw-value); out = concat_h(out_h)·W_O + b_O.

use super::layout::{AttentionIds, FamilyTensors};
use super::linear::linear_forward;
use super::params::Params;
use super::position::{PositionTables, alibi, relative, t5};
use super::softmax::{causal_mask, softmax_forward};
use crate::config::ModelConfig;
use crate::float::Float;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, Array4, ArrayView2, Zip, s};

/// Activations of one attention layer for a batch of `batch` sequences of length `n`.
#[derive(Clone, Debug)]
pub struct AttentionCache<F> {
    /// Queries x·W_Q + b_Q (rope: rotated), [batch·n, d].
    pub q: Array2<F>,
    /// Keys (rope: rotated), [batch·n, d].
    pub k: Array2<F>,
    /// Values, [batch·n, d].
    pub v: Array2<F>,
    /// xl: projected relative table R·W_R, [2·n_max − 1, d]; empty otherwise.
    pub rel: Array2<F>,
    /// Scores S including the position term and the mask, [batch, heads, n, n].
    pub scores: Array4<F>,
    /// Probabilities A = row_softmax(S), [batch, heads, n, n].
    pub probs: Array4<F>,
    /// URPE: G = A ⊙ C, [batch, heads, n, n]; empty without the gate.
    pub gated: Array4<F>,
    /// Heads' outputs side by side, [batch·n, d].
    pub heads: Array2<F>,
    /// Layer output concat·W_O + b_O, [batch·n, d].
    pub out: Array2<F>,
    /// Per-head workspace, [n, d_h].
    scratch_q: Array2<F>,
    /// Per-head workspace, [n, 2n − 1].
    scratch_rel: Array2<F>,
}

impl<F: Float> AttentionCache<F> {
    /// Storage for `batch` sequences of length `n` under `config`.
    pub fn new(config: &ModelConfig, batch: usize, n: usize) -> Self {
        let (d, h) = (config.width, config.heads);
        let rows = batch * n;
        let full = || Array4::zeros((batch, h, n, n));
        AttentionCache {
            q: Array2::zeros((rows, d)),
            k: Array2::zeros((rows, d)),
            v: Array2::zeros((rows, d)),
            rel: Array2::zeros(if config.family == crate::config::Family::Xl { (config.offsets(), d) } else { (0, 0) }),
            scores: full(),
            probs: full(),
            gated: if config.urpe { full() } else { Array4::zeros((0, 0, 0, 0)) },
            heads: Array2::zeros((rows, d)),
            out: Array2::zeros((rows, d)),
            scratch_q: Array2::zeros((n, config.head_dim())),
            scratch_rel: Array2::zeros((n, 2 * n - 1)),
        }
    }

    /// The probabilities that multiply V: G with the gate, A without.
    pub fn mixing(&self) -> &Array4<F> {
        if self.gated.is_empty() { &self.probs } else { &self.gated }
    }
}

/// Forward pass of one attention layer on x [batch·n, d].
pub fn attention_forward<F: Float>(
    cache: &mut AttentionCache<F>,
    x: ArrayView2<F>,
    p: &Params<F>,
    ids: &AttentionIds,
    tables: &PositionTables<F>,
    config: &ModelConfig,
) {
    let (batch, heads, n) = (cache.scores.dim().0, config.heads, cache.scores.dim().2);
    let (dh, n_max) = (config.head_dim(), config.n_max);
    let scale = F::c(1.0 / (dh as f64).sqrt());
    linear_forward(cache.q.view_mut(), x, p.mat(ids.q.weight), p.vec(ids.q.bias));
    linear_forward(cache.k.view_mut(), x, p.mat(ids.k.weight), p.vec(ids.k.bias));
    linear_forward(cache.v.view_mut(), x, p.mat(ids.v.weight), p.vec(ids.v.bias));
    if let Some(rope) = &tables.rope {
        for b in 0..batch {
            for h in 0..heads {
                let (rows, cols) = (b * n..(b + 1) * n, h * dh..(h + 1) * dh);
                rope.rotate(cache.q.slice_mut(s![rows.clone(), cols.clone()]), F::one());
                rope.rotate(cache.k.slice_mut(s![rows, cols]), F::one());
            }
        }
    }
    if let (FamilyTensors::Xl { r, .. }, Some(sinusoid)) = (ids.pos.family, &tables.xl_sinusoid) {
        general_mat_mul(F::one(), sinusoid, &p.mat(r), F::zero(), &mut cache.rel);
    }
    for b in 0..batch {
        for h in 0..heads {
            let (rows, cols) = (b * n..(b + 1) * n, h * dh..(h + 1) * dh);
            let q = cache.q.slice(s![rows.clone(), cols.clone()]);
            let k = cache.k.slice(s![rows.clone(), cols.clone()]);
            let mut scores = cache.scores.slice_mut(s![b, h, .., ..]);
            match ids.pos.family {
                FamilyTensors::Xl { u, v, .. } => {
                    // S = ((q + u)·kᵀ + (q + v)·r_{i−j}ᵀ)/√d_h
                    let mut qx = cache.scratch_q.view_mut();
                    Zip::from(qx.rows_mut()).and(q.rows()).for_each(|mut t, q| {
                        Zip::from(&mut t).and(&q).and(p.mat(u).row(h)).for_each(|t, &q, &u| *t = q + u)
                    });
                    general_mat_mul(scale, &qx, &k.t(), F::zero(), &mut scores);
                    Zip::from(qx.rows_mut()).and(q.rows()).for_each(|mut t, q| {
                        Zip::from(&mut t).and(&q).and(p.mat(v).row(h)).for_each(|t, &q, &v| *t = q + v)
                    });
                    let rel = cache.rel.slice(s![.., cols.clone()]);
                    relative::add_relative_scores(
                        scores.view_mut(),
                        qx.view(),
                        rel,
                        scale,
                        cache.scratch_rel.view_mut(),
                    );
                }
                family => {
                    general_mat_mul(scale, &q, &k.t(), F::zero(), &mut scores);
                    match family {
                        FamilyTensors::T5(t) => t5::add_offset_bias(scores.view_mut(), p.mat(t).row(h), n_max),
                        FamilyTensors::T5Bucketed(t) => t5::add_bucket_bias(
                            scores.view_mut(),
                            p.mat(t).row(h),
                            tables.t5_bucket.as_deref().expect("t5-bucketed tables"),
                            n_max,
                        ),
                        FamilyTensors::ShawKey(t) => relative::add_relative_scores(
                            scores.view_mut(),
                            q,
                            p.mat(t),
                            scale,
                            cache.scratch_rel.view_mut(),
                        ),
                        _ => {}
                    }
                }
            }
            if let Some(slopes) = &tables.alibi_slopes {
                alibi::add_alibi(scores.view_mut(), slopes[h]);
            }
            if config.causal {
                causal_mask(scores.view_mut());
            }
            softmax_forward(cache.probs.slice_mut(s![b, h, .., ..]), scores.view());
            if let Some(c) = ids.pos.gate {
                relative::gate_forward(
                    cache.gated.slice_mut(s![b, h, .., ..]),
                    cache.probs.slice(s![b, h, .., ..]),
                    p.mat(c).row(h),
                    n_max,
                );
            }
            let mixing = if ids.pos.gate.is_some() { &cache.gated } else { &cache.probs };
            let mix = mixing.slice(s![b, h, .., ..]);
            let mut out = cache.heads.slice_mut(s![rows.clone(), cols.clone()]);
            general_mat_mul(F::one(), &mix, &cache.v.slice(s![rows, cols]), F::zero(), &mut out);
            if let FamilyTensors::ShawValue(t) = ids.pos.family {
                relative::add_relative_values(out, mix, p.mat(t), cache.scratch_rel.view_mut());
            }
        }
    }
    linear_forward(cache.out.view_mut(), cache.heads.view(), p.mat(ids.o.weight), p.vec(ids.o.bias));
}
