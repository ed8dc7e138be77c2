//! Multi-head attention: content scores, the family's terms, the normaliser (softmax, see
//! [`crate::normaliser`]), the URPE gate and the product with V. Scores, probabilities and
//! gated probabilities are materialised and kept in the cache.
//!
//! Per head h (columns h·d_h..(h+1)·d_h of Q, K, V), with o = (j − i) + n_max − 1 (n_max the
//! longest sequence the blocks see, [`ModelConfig::inner_n_max`]):
//! S = Q_h K_hᵀ/√d_h + the family's score term, A = row_softmax(S), G = A ⊙ C_h[o] (URPE)
//! or A, out_h = G V_h + the family's value term; out = concat_h(out_h)·W_O + b_O. The
//! family may also transform Q and K first (rope). Sequences of a batch run in parallel;
//! per head every product is one matrix multiply. Differential attention, two score
//! matrices per head, has its own per-sequence forward and backward in the submodule
//! `differential`.

mod differential;

pub use differential::DifferentialCache;

use super::layout::AttentionIds;
use super::linear::{InputGrad, linear_backward, linear_forward};
use crate::config::ModelConfig;
use crate::family::{Head, PositionTerms, Side, Work, add_grad_block, gate, work_len};
use crate::float::Float;
use crate::gemm::{small_matmul, small_matmul_by_transpose};
use crate::normaliser::differential::Lambda;
use crate::normaliser::{self, Rows};
use crate::params::Params;
use ndarray::{Array1, Array2, Array4, ArrayView2, ArrayViewMut2, ArrayViewMut3, Axis, s};
use rayon::prelude::*;

/// Activations of one attention layer for a batch of `batch` sequences of length `n`.
#[derive(Clone, Debug)]
pub struct AttentionCache<F> {
    /// Queries x·W_Q + b_Q (rope: rotated), [batch·n, d].
    pub q: Array2<F>,
    /// Keys (rope: rotated), [batch·n, d].
    pub k: Array2<F>,
    /// Values, [batch·n, d].
    pub v: Array2<F>,
    /// The family's per-layer table (t5-bucketed: the expanded buckets; xl: R·W_R); empty
    /// if it has none.
    pub derived: Array2<F>,
    /// Scores S including the position term and the mask, [batch, heads, n, n].
    pub scores: Array4<F>,
    /// Probabilities A = row_softmax(S), [batch, heads, n, n] (differential attention: S is
    /// S¹ and A = softmax(S¹) − λ·softmax(S²)).
    pub probs: Array4<F>,
    /// URPE: G = A ⊙ C, [batch, heads, n, n]; empty without the gate.
    pub gated: Array4<F>,
    /// Heads' outputs side by side, [batch·n, d].
    pub heads: Array2<F>,
    /// Layer output concat·W_O + b_O, [batch·n, d].
    pub out: Array2<F>,
    /// Differential attention's own activations.
    pub differential: Option<DifferentialCache<F>>,
    /// Per sequence: the forward pass's workspace (the family's [`Work`] and a [d_h, n]
    /// Kᵀ), allocated with the cache so that a step allocates nothing.
    work: Array2<F>,
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
            derived: Array2::zeros(config.family.def().derived_shape(&config.family_dims())),
            scores: full(),
            probs: full(),
            gated: if config.urpe { full() } else { Array4::zeros((0, 0, 0, 0)) },
            heads: Array2::zeros((rows, d)),
            out: Array2::zeros((rows, d)),
            differential: config.attention.0.differential().then(|| DifferentialCache::new(config, batch, n)),
            work: Array2::zeros((batch, forward_work_len(n, config.head_dim()))),
        }
    }

    /// The probabilities that multiply V: G with the gate, A without.
    pub fn mixing(&self) -> &Array4<F> {
        if self.gated.is_empty() { &self.probs } else { &self.gated }
    }
}

/// The flat per-sequence gradient buffer of the position terms: the family's
/// ([`crate::family::PositionFamily::grad_len`]), the gate's C [heads, 2·n_max − 1], then the
/// normaliser's: its scalar per head, or differential attention's ∂L/∂λ.
#[derive(Clone, Copy, Debug)]
struct PositionGradLayout {
    family: usize,
    gate: usize,
    normaliser: usize,
}

impl PositionGradLayout {
    fn new(config: &ModelConfig, ids: &AttentionIds) -> Self {
        let family = config.family.def().grad_len(&config.family_dims());
        let gate = if ids.pos.gate.is_some() { config.heads * config.offsets() } else { 0 };
        let normaliser = match (ids.normaliser, ids.differential) {
            (Some(_), _) => config.heads,
            (None, Some(_)) => 1,
            (None, None) => 0,
        };
        PositionGradLayout { family, gate, normaliser }
    }

    fn len(&self) -> usize {
        self.family + self.gate + self.normaliser
    }
}

/// Workspace of the attention backward, allocated once per (batch, n) and reused.
#[derive(Clone, Debug)]
pub struct AttentionGrads<F> {
    /// ∂L/∂(heads' outputs), [batch·n, d].
    pub dheads: Array2<F>,
    /// ∂L/∂Q (before rotation for rope), [batch·n, d].
    pub dq: Array2<F>,
    /// ∂L/∂K, [batch·n, d].
    pub dk: Array2<F>,
    /// ∂L/∂V, [batch·n, d].
    pub dv: Array2<F>,
    /// Per sequence: a [n, n] score gradient, a [d_h, n] Vᵀ, a skewed [n, 2n − 1]
    /// workspace and two [n, d_h] query workspaces (and differential attention's own, see
    /// [`differential::scratch_len`]).
    scratch: Array2<F>,
    /// Per sequence: position-parameter gradients (see `PositionGradLayout`).
    pos: Array2<F>,
    /// Their sum over the batch.
    pos_total: Array1<F>,
}

fn scratch_len(n: usize, dh: usize) -> usize {
    n * n + n * dh + work_len(n, dh)
}

/// Per-sequence buffer of the forward pass: the family's [`Work`] and a [d_h, n] Kᵀ (also
/// differential attention's, whose halves are narrower).
fn forward_work_len(n: usize, dh: usize) -> usize {
    work_len(n, dh) + n * dh
}

impl<F: Float> AttentionGrads<F> {
    /// Storage for `batch` sequences of length `n` under `config`.
    pub fn new(config: &ModelConfig, batch: usize, n: usize, ids: &AttentionIds) -> Self {
        let (rows, d) = (batch * n, config.width);
        let pos_len = PositionGradLayout::new(config, ids).len();
        AttentionGrads {
            dheads: Array2::zeros((rows, d)),
            dq: Array2::zeros((rows, d)),
            dk: Array2::zeros((rows, d)),
            dv: Array2::zeros((rows, d)),
            scratch: Array2::zeros((
                batch,
                scratch_len(n, config.head_dim())
                    + ids.differential.map_or(0, |_| differential::scratch_len(n, config)),
            )),
            pos: Array2::zeros((batch, pos_len)),
            pos_total: Array1::zeros(pos_len),
        }
    }
}

/// Read-only context shared by the sequences of one attention call.
struct Shared<'a, F> {
    p: &'a Params<F>,
    ids: &'a AttentionIds,
    terms: &'a PositionTerms<F>,
    normaliser: &'a dyn Rows<F>,
    config: &'a ModelConfig,
    /// The family's per-layer table.
    derived: ArrayView2<'a, F>,
    n: usize,
    scale: F,
    /// Differential attention's λ of this layer.
    lambda: Option<Lambda<F>>,
}

impl<'a, F: Float> Shared<'a, F> {
    fn new(
        p: &'a Params<F>,
        ids: &'a AttentionIds,
        terms: &'a PositionTerms<F>,
        config: &'a ModelConfig,
        derived: ArrayView2<'a, F>,
        n: usize,
    ) -> Self {
        let scale = F::c(1.0 / (config.head_dim() as f64).sqrt());
        let normaliser = normaliser::rows::<F>(config.attention.0);
        let lambda = ids.differential.map(|d| Lambda::new(p.mat(d.lambda), d.layer));
        Shared { p, ids, terms, normaliser, config, derived, n, scale, lambda }
    }

    fn cols(&self, h: usize) -> std::ops::Range<usize> {
        let dh = self.config.head_dim();
        h * dh..(h + 1) * dh
    }

    /// What the family's terms see of head `h`, with this sequence's q and k.
    fn head<'b>(&'b self, h: usize, q: ArrayView2<'b, F>, k: ArrayView2<'b, F>) -> Head<'b, F> {
        Head {
            h,
            n: self.n,
            n_max: self.config.inner_n_max(),
            scale: self.scale,
            q,
            k,
            cols: self.cols(h),
            params: self.p,
            ids: &self.ids.pos.family,
            derived: self.derived,
        }
    }
}

/// Per-sequence views of the forward cache.
struct SeqForward<'a, F> {
    q: ArrayView2<'a, F>,
    k: ArrayView2<'a, F>,
    v: ArrayView2<'a, F>,
    scores: ArrayViewMut3<'a, F>,
    probs: ArrayViewMut3<'a, F>,
    gated: Option<ArrayViewMut3<'a, F>>,
    heads: ArrayViewMut2<'a, F>,
    /// Differential attention's own activations of this sequence.
    differential: Option<differential::SeqCache<'a, F>>,
    /// This sequence's workspace ([`forward_work_len`]).
    work: &'a mut [F],
}

fn sequence_forward<F: Float>(c: &Shared<F>, mut s: SeqForward<F>) {
    let buf = std::mem::take(&mut s.work);
    if let Some(own) = s.differential.take() {
        return differential::sequence_forward(c, s, own, buf);
    }
    let (n, n_max, dh) = (c.n, c.config.inner_n_max(), c.config.head_dim());
    let p = c.p;
    let (buf, kt) = buf.split_at_mut(work_len(n, dh));
    let mut work = Work::new(buf, n, dh);
    for h in 0..c.config.heads {
        let cols = c.cols(h);
        let (q, k, v) =
            (s.q.slice(s![.., cols.clone()]), s.k.slice(s![.., cols.clone()]), s.v.slice(s![.., cols.clone()]));
        let head = c.head(h, q, k);
        let mut scores = s.scores.index_axis_mut(Axis(0), h);
        // content term S = scale · q·Kᵀ, then the family's term
        small_matmul_by_transpose(c.scale, q.view(), k.view(), F::zero(), scores.view_mut(), kt);
        c.terms.scores(&head, scores.view_mut(), &mut work);
        if c.config.causal {
            for i in 0..n {
                scores.row_mut(i).slice_mut(s![i + 1..]).fill(F::neg_infinity());
            }
        }
        let mut probs = s.probs.index_axis_mut(Axis(0), h);
        let beta = c.ids.normaliser.map_or(F::zero(), |id| p.vec(id)[h]);
        c.normaliser.forward_rows(probs.view_mut(), scores.view(), beta);
        if let (Some(gated), Some(c_id)) = (&mut s.gated, c.ids.pos.gate) {
            gate::forward(gated.index_axis_mut(Axis(0), h), probs.view(), p.mat(c_id).row(h), n_max);
        }
        let mix = match &s.gated {
            Some(gated) => gated.index_axis(Axis(0), h),
            None => s.probs.index_axis(Axis(0), h),
        };
        let mut out = s.heads.slice_mut(s![.., cols]);
        small_matmul(F::one(), mix.view(), v.view(), F::zero(), out.view_mut());
        c.terms.values(&head, mix, out, &mut work);
    }
}

/// Forward pass of one attention layer on x [batch·n, d].
pub fn attention_forward<F: Float>(
    cache: &mut AttentionCache<F>,
    x: ArrayView2<F>,
    p: &Params<F>,
    ids: &AttentionIds,
    terms: &PositionTerms<F>,
    config: &ModelConfig,
) {
    let (batch, n) = (cache.scores.dim().0, cache.scores.dim().2);
    let dh = config.head_dim();
    linear_forward(cache.q.view_mut(), x, p.mat(ids.q.weight), p.vec(ids.q.bias));
    linear_forward(cache.k.view_mut(), x, p.mat(ids.k.weight), p.vec(ids.k.bias));
    linear_forward(cache.v.view_mut(), x, p.mat(ids.v.weight), p.vec(ids.v.bias));
    if terms.transforms() {
        for (mut q, mut k) in cache.q.axis_chunks_iter_mut(Axis(0), n).zip(cache.k.axis_chunks_iter_mut(Axis(0), n)) {
            for h in 0..config.heads {
                terms.transform(Side::Query, q.slice_mut(s![.., h * dh..(h + 1) * dh]), false);
                terms.transform(Side::Key, k.slice_mut(s![.., h * dh..(h + 1) * dh]), false);
            }
        }
    }
    terms.derive(p, &ids.pos.family, cache.derived.view_mut());
    let shared = Shared::new(p, ids, terms, config, cache.derived.view(), n);
    if let (Some(own), Some(lambda)) = (&mut cache.differential, shared.lambda) {
        own.lambda = lambda.value;
    }
    let mut gated = cache.gated.outer_iter_mut();
    let mut work = cache.work.outer_iter_mut();
    let mut own = cache.differential.as_mut().map(|d| d.per_sequence(n).into_iter());
    let seqs: Vec<SeqForward<F>> = cache
        .q
        .axis_chunks_iter(Axis(0), n)
        .zip(cache.k.axis_chunks_iter(Axis(0), n))
        .zip(cache.v.axis_chunks_iter(Axis(0), n))
        .zip(cache.scores.outer_iter_mut().zip(cache.probs.outer_iter_mut()))
        .zip(cache.heads.axis_chunks_iter_mut(Axis(0), n))
        .map(|((((q, k), v), (scores, probs)), heads)| SeqForward {
            q,
            k,
            v,
            scores,
            probs,
            gated: if ids.pos.gate.is_some() { gated.next() } else { None },
            heads,
            differential: own.as_mut().and_then(|o| o.next()),
            work: work.next().expect("a workspace per sequence").into_slice().expect("contiguous"),
        })
        .collect();
    debug_assert_eq!(seqs.len(), batch);
    seqs.into_par_iter().for_each(|seq| sequence_forward(&shared, seq));
    linear_forward(cache.out.view_mut(), cache.heads.view(), p.mat(ids.o.weight), p.vec(ids.o.bias));
}

/// Per-sequence views for the backward pass.
struct SeqBackward<'a, F> {
    b: usize,
    dheads: ArrayView2<'a, F>,
    dq: ArrayViewMut2<'a, F>,
    dk: ArrayViewMut2<'a, F>,
    dv: ArrayViewMut2<'a, F>,
    scratch: &'a mut [F],
    pos: &'a mut [F],
}

fn sequence_backward<F: Float>(
    c: &Shared<F>,
    cache: &AttentionCache<F>,
    layout: &PositionGradLayout,
    s: SeqBackward<F>,
) {
    if let Some(own) = &cache.differential {
        return differential::sequence_backward(c, cache, own, layout, s);
    }
    let (n, dh, n_max, heads) = (c.n, c.config.head_dim(), c.config.inner_n_max(), c.config.heads);
    let (p, b) = (c.p, s.b);
    let rows = b * n..(b + 1) * n;
    let (q_all, k_all, v_all) =
        (cache.q.slice(s![rows.clone(), ..]), cache.k.slice(s![rows.clone(), ..]), cache.v.slice(s![rows, ..]));
    let (dscore_buf, rest) = s.scratch.split_at_mut(n * n);
    let (vt, rest) = rest.split_at_mut(n * dh);
    let mut work = Work::new(rest, n, dh);
    let (mut dq, mut dk, mut dv) = (s.dq, s.dk, s.dv);
    let (family_grad, rest) = s.pos.split_at_mut(layout.family);
    let (gate_grad, normaliser_grad) = rest.split_at_mut(layout.gate);
    for h in 0..heads {
        let cols = c.cols(h);
        let (q, k, v) =
            (q_all.slice(s![.., cols.clone()]), k_all.slice(s![.., cols.clone()]), v_all.slice(s![.., cols.clone()]));
        let head = c.head(h, q, k);
        let dout = s.dheads.slice(s![.., cols.clone()]);
        let probs = cache.probs.slice(s![b, h, .., ..]);
        let mix = if cache.gated.is_empty() { probs } else { cache.gated.slice(s![b, h, .., ..]) };
        let mut dg = ArrayViewMut2::from_shape((n, n), &mut *dscore_buf).expect("scratch");
        // ∂L/∂G = dout·Vᵀ (+ the family's value term), ∂L/∂V = Gᵀ·dout
        small_matmul_by_transpose(F::one(), dout.view(), v.view(), F::zero(), dg.view_mut(), vt);
        c.terms.values_backward(&head, mix, dout, dg.view_mut(), family_grad, &mut work);
        small_matmul(F::one(), mix.t(), dout.view(), F::zero(), dv.slice_mut(s![.., cols.clone()]).view_mut());
        if let Some(c_id) = c.ids.pos.gate {
            let mut dc = ArrayViewMut2::from_shape((heads, c.config.offsets()), &mut *gate_grad).expect("gate grads");
            gate::backward(dg.view_mut(), dc.row_mut(h), probs, p.mat(c_id).row(h), n_max);
        }
        let scores = cache.scores.slice(s![b, h, .., ..]);
        let beta = c.ids.normaliser.map_or(F::zero(), |id| p.vec(id)[h]);
        let d_beta = c.normaliser.backward_rows(dg.view_mut(), probs, scores, beta);
        if let Some(slot) = normaliser_grad.get_mut(h) {
            *slot += d_beta;
        }
        let ds = dg.view();
        let mut dq_h = dq.slice_mut(s![.., cols.clone()]);
        let mut dk_h = dk.slice_mut(s![.., cols.clone()]);
        // content term S = scale · q·Kᵀ: ∂q = scale·dS·K, ∂K = scale·dSᵀ·q (written first;
        // the family's term adds to them)
        small_matmul(c.scale, ds.t(), q.view(), F::zero(), dk_h.view_mut());
        small_matmul(c.scale, ds.view(), k.view(), F::zero(), dq_h.view_mut());
        c.terms.scores_backward(&head, ds, dq_h.view_mut(), dk_h.view_mut(), family_grad, &mut work);
        if c.terms.transforms() {
            c.terms.transform(Side::Query, dq_h, true);
            c.terms.transform(Side::Key, dk_h, true);
        }
    }
}

/// Backward pass of one attention layer: from ∂L/∂out, accumulates every parameter
/// gradient into `dparams` and adds ∂L/∂x into `dx`.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward<F: Float>(
    mut dx: ArrayViewMut2<F>,
    dparams: &mut Params<F>,
    ws: &mut AttentionGrads<F>,
    dout: ArrayView2<F>,
    cache: &AttentionCache<F>,
    x: ArrayView2<F>,
    p: &Params<F>,
    ids: &AttentionIds,
    terms: &PositionTerms<F>,
    config: &ModelConfig,
) {
    let n = cache.scores.dim().2;
    linear_backward(
        InputGrad::Write(ws.dheads.view_mut()),
        dparams,
        ids.o,
        dout,
        cache.heads.view(),
        p.mat(ids.o.weight),
    );
    let layout = PositionGradLayout::new(config, ids);
    let shared = Shared::new(p, ids, terms, config, cache.derived.view(), n);
    let seqs: Vec<SeqBackward<F>> = ws
        .dheads
        .axis_chunks_iter(Axis(0), n)
        .zip(ws.dq.axis_chunks_iter_mut(Axis(0), n))
        .zip(ws.dk.axis_chunks_iter_mut(Axis(0), n))
        .zip(ws.dv.axis_chunks_iter_mut(Axis(0), n))
        .zip(ws.scratch.outer_iter_mut().zip(ws.pos.outer_iter_mut()))
        .enumerate()
        .map(|(b, ((((dheads, dq), dk), dv), (scratch, pos)))| {
            let pos = pos.into_slice().expect("contiguous");
            pos.fill(F::zero());
            SeqBackward { b, dheads, dq, dk, dv, scratch: scratch.into_slice().expect("contiguous"), pos }
        })
        .collect();
    seqs.into_par_iter().for_each(|seq| sequence_backward(&shared, cache, &layout, seq));
    // sum the per-sequence position gradients in batch order (reproducible)
    ws.pos_total.fill(F::zero());
    for row in ws.pos.outer_iter() {
        ws.pos_total += &row;
    }
    let total = ws.pos_total.as_slice().expect("contiguous");
    let (family_total, rest) = total.split_at(layout.family);
    let (gate_total, normaliser_total) = rest.split_at(layout.gate);
    terms.fold_grads(family_total, p, &ids.pos.family, cache.derived.view(), dparams);
    if let Some(c_id) = ids.pos.gate {
        add_grad_block(dparams, c_id, gate_total, 0);
    }
    if let Some(id) = ids.normaliser {
        dparams.vec_mut(id).iter_mut().zip(normaliser_total).for_each(|(g, &t)| *g += t);
    }
    if let (Some(d), Some(lambda)) = (ids.differential, shared.lambda) {
        lambda.backward(normaliser_total[0], p.mat(d.lambda), dparams.mat_mut(d.lambda));
    }
    linear_backward(InputGrad::Add(dx.view_mut()), dparams, ids.q, ws.dq.view(), x, p.mat(ids.q.weight));
    linear_backward(InputGrad::Add(dx.view_mut()), dparams, ids.k, ws.dk.view(), x, p.mat(ids.k.weight));
    linear_backward(InputGrad::Add(dx.view_mut()), dparams, ids.v, ws.dv.view(), x, p.mat(ids.v.weight));
}
