//! Multi-head attention with every position family and the URPE gate. Scores,
//! probabilities and gated probabilities are materialised and kept in the cache.
//!
//! Per head h (columns h·d_h..(h+1)·d_h of Q, K, V), with o = (j − i) + n_max − 1:
//! S = Q_h K_hᵀ/√d_h + position term, A = row_softmax(S), G = A ⊙ C_h[o] (URPE) or A,
//! out_h = G V_h (+ Σ_j G_ij a^V_o for shaw-value); out = concat_h(out_h)·W_O + b_O.
//! Sequences of a batch run in parallel; per head every product is one matrix multiply
//! and every Toeplitz term a row-slice operation ([`crate::family::kernels::toeplitz`]).

use super::layout::{AttentionIds, FamilyTensors};
use super::linear::{linear_backward, linear_forward};
use super::softmax::{softmax_row_backward, softmax_row_forward};
use super::tables::PositionTables;
use crate::config::{Family, ModelConfig};
use crate::family::kernels::relative::{self, window, window_mut};
use crate::family::kernels::{t5, toeplitz};
use crate::float::Float;
use crate::params::Params;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, Array4, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, ArrayViewMut3, Axis, s};
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
    /// t5-bucketed: the bucket biases expanded to one value per head and offset index,
    /// [heads, 2·n_max − 1]; empty otherwise.
    pub offset_bias: Array2<F>,
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
            offset_bias: Array2::zeros(if config.family == Family::T5Bucketed {
                (h, config.offsets())
            } else {
                (0, 0)
            }),
            rel: Array2::zeros(if config.family == Family::Xl { (config.offsets(), d) } else { (0, 0) }),
            scores: full(),
            probs: full(),
            gated: if config.urpe { full() } else { Array4::zeros((0, 0, 0, 0)) },
            heads: Array2::zeros((rows, d)),
            out: Array2::zeros((rows, d)),
        }
    }

    /// The probabilities that multiply V: G with the gate, A without.
    pub fn mixing(&self) -> &Array4<F> {
        if self.gated.is_empty() { &self.probs } else { &self.gated }
    }
}

/// Position-parameter gradients of one sequence, laid out flat: offset-space biases
/// (t5, t5-bucketed) [heads, 2·n_max − 1], or a relative table (shaw-key, shaw-value)
/// [2·n_max − 1, d_h], or xl's u, v [heads, d_h] and the gradient of the projected table
/// R·W_R [2·n_max − 1, d]; then the gate's C [heads, 2·n_max − 1].
#[derive(Clone, Copy, Debug, Default)]
struct PositionGradLayout {
    table: (usize, usize, usize),
    u: (usize, usize, usize),
    v: (usize, usize, usize),
    rel: (usize, usize, usize),
    gate: (usize, usize, usize),
    len: usize,
}

impl PositionGradLayout {
    fn new(config: &ModelConfig, ids: &AttentionIds) -> Self {
        let mut at = 0;
        let mut take = |rows: usize, cols: usize| {
            let start = at;
            at += rows * cols;
            (start, rows, cols)
        };
        let (h, dh, offsets) = (config.heads, config.head_dim(), config.offsets());
        let mut l = PositionGradLayout::default();
        match ids.pos.family {
            FamilyTensors::T5(_) | FamilyTensors::T5Bucketed(_) => l.table = take(h, offsets),
            FamilyTensors::ShawKey(_) | FamilyTensors::ShawValue(_) => l.table = take(offsets, dh),
            FamilyTensors::Xl { .. } => {
                l.u = take(h, dh);
                l.v = take(h, dh);
                l.rel = take(offsets, config.width);
            }
            FamilyTensors::None => {}
        }
        if ids.pos.gate.is_some() {
            l.gate = take(h, offsets);
        }
        l.len = at;
        l
    }
}

fn block<F>(flat: &mut [F], (start, rows, cols): (usize, usize, usize)) -> ArrayViewMut2<'_, F> {
    ArrayViewMut2::from_shape((rows, cols), &mut flat[start..start + rows * cols]).expect("a grad block")
}

fn block_ref<F>(flat: &[F], (start, rows, cols): (usize, usize, usize)) -> ArrayView2<'_, F> {
    ArrayView2::from_shape((rows, cols), &flat[start..start + rows * cols]).expect("a grad block")
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
    /// Per sequence: a [n, n] score gradient, a skewed [n, 2n − 1] workspace and two
    /// [n, d_h] query workspaces.
    scratch: Array2<F>,
    /// Per sequence: position-parameter gradients (see `PositionGradLayout`).
    pos: Array2<F>,
    /// Their sum over the batch.
    pos_total: Array1<F>,
}

fn scratch_len(n: usize, dh: usize) -> usize {
    n * n + n * (2 * n - 1) + 2 * n * dh
}

impl<F: Float> AttentionGrads<F> {
    /// Storage for `batch` sequences of length `n` under `config`.
    pub fn new(config: &ModelConfig, batch: usize, n: usize, ids: &AttentionIds) -> Self {
        let (rows, d) = (batch * n, config.width);
        let pos_len = PositionGradLayout::new(config, ids).len;
        AttentionGrads {
            dheads: Array2::zeros((rows, d)),
            dq: Array2::zeros((rows, d)),
            dk: Array2::zeros((rows, d)),
            dv: Array2::zeros((rows, d)),
            scratch: Array2::zeros((batch, scratch_len(n, config.head_dim()))),
            pos: Array2::zeros((batch, pos_len)),
            pos_total: Array1::zeros(pos_len),
        }
    }
}

/// Read-only context shared by the sequences of one attention call.
struct Shared<'a, F> {
    p: &'a Params<F>,
    ids: &'a AttentionIds,
    tables: &'a PositionTables<F>,
    config: &'a ModelConfig,
    /// xl: R·W_R [2·n_max − 1, d].
    rel: ArrayView2<'a, F>,
    /// Additive offset biases [heads, 2·n_max − 1]: t5's table or the expanded buckets.
    offset_bias: Option<ArrayView2<'a, F>>,
    n: usize,
    scale: F,
}

impl<F: Float> Shared<'_, F> {
    fn cols(&self, h: usize) -> std::ops::Range<usize> {
        let dh = self.config.head_dim();
        h * dh..(h + 1) * dh
    }

    /// Row h of xl's u or v.
    fn xl_row(&self, pick: impl Fn(FamilyTensors) -> Option<super::TensorId>, h: usize) -> Option<ArrayView1<'_, F>> {
        pick(self.ids.pos.family).map(|id| self.p.mat(id).index_axis_move(Axis(0), h))
    }
}

/// x = q + b row by row, written into `buf` [n·d_h] and returned as [n, d_h].
fn shifted<'b, F: Float>(buf: &'b mut [F], q: ArrayView2<F>, b: ArrayView1<F>) -> ArrayViewMut2<'b, F> {
    let mut x = ArrayViewMut2::from_shape(q.dim(), &mut buf[..q.len()]).expect("scratch");
    for (mut row, qi) in x.rows_mut().into_iter().zip(q.rows()) {
        ndarray::Zip::from(&mut row).and(&qi).and(&b).for_each(|x, &q, &b| *x = q + b);
    }
    x
}

fn xl_u(t: FamilyTensors) -> Option<super::TensorId> {
    match t {
        FamilyTensors::Xl { u, .. } => Some(u),
        _ => None,
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
}

fn sequence_forward<F: Float>(c: &Shared<F>, mut s: SeqForward<F>, buf: &mut [F]) {
    let (n, n_max) = (c.n, c.config.n_max);
    let p = c.p;
    let (qx_buf, skew_buf) = buf.split_at_mut(n * c.config.head_dim());
    let mut skewed = ArrayViewMut2::from_shape((n, 2 * n - 1), &mut skew_buf[..n * (2 * n - 1)]).expect("scratch");
    for h in 0..c.config.heads {
        let cols = c.cols(h);
        let (q, k, v) =
            (s.q.slice(s![.., cols.clone()]), s.k.slice(s![.., cols.clone()]), s.v.slice(s![.., cols.clone()]));
        let mut scores = s.scores.index_axis_mut(Axis(0), h);
        // content term: S = scale · x·Kᵀ with x = q (+ u_h for xl)
        match c.xl_row(xl_u, h) {
            Some(u) => {
                let x = shifted(qx_buf, q, u);
                general_mat_mul(c.scale, &x, &k.t(), F::zero(), &mut scores);
            }
            None => general_mat_mul(c.scale, &q, &k.t(), F::zero(), &mut scores),
        }
        match c.ids.pos.family {
            FamilyTensors::ShawKey(t) => {
                relative::relative_scores_forward(scores.view_mut(), q, window(p.mat(t), n), c.scale, skewed.view_mut())
            }
            FamilyTensors::Xl { v: vb, .. } => {
                let x = shifted(qx_buf, q, p.mat(vb).index_axis_move(Axis(0), h));
                let win = window(c.rel.slice(s![.., cols.clone()]), n);
                relative::relative_scores_forward(scores.view_mut(), x.view(), win, c.scale, skewed.view_mut());
            }
            _ => {}
        }
        for bias in [c.offset_bias, c.tables.alibi.as_ref().map(|a| a.view())].into_iter().flatten() {
            toeplitz::add_offset_rows(scores.view_mut(), bias.row(h), n_max);
        }
        if c.config.causal {
            for i in 0..n {
                scores.row_mut(i).slice_mut(s![i + 1..]).fill(F::neg_infinity());
            }
        }
        let mut probs = s.probs.index_axis_mut(Axis(0), h);
        for i in 0..n {
            softmax_row_forward(
                probs.row_mut(i).into_slice().expect("contiguous"),
                scores.row(i).to_slice().expect("contiguous"),
            );
        }
        if let (Some(gated), Some(gate)) = (&mut s.gated, c.ids.pos.gate) {
            toeplitz::gate_forward(gated.index_axis_mut(Axis(0), h), probs.view(), p.mat(gate).row(h), n_max);
        }
        let mix = match &s.gated {
            Some(gated) => gated.index_axis(Axis(0), h),
            None => s.probs.index_axis(Axis(0), h),
        };
        let mut out = s.heads.slice_mut(s![.., cols]);
        general_mat_mul(F::one(), &mix, &v, F::zero(), &mut out);
        if let FamilyTensors::ShawValue(t) = c.ids.pos.family {
            relative::relative_values_forward(out, mix, window(p.mat(t), n), skewed.view_mut());
        }
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
    let (batch, n) = (cache.scores.dim().0, cache.scores.dim().2);
    let dh = config.head_dim();
    linear_forward(cache.q.view_mut(), x, p.mat(ids.q.weight), p.vec(ids.q.bias));
    linear_forward(cache.k.view_mut(), x, p.mat(ids.k.weight), p.vec(ids.k.bias));
    linear_forward(cache.v.view_mut(), x, p.mat(ids.v.weight), p.vec(ids.v.bias));
    if let Some(rope) = &tables.rope {
        for (mut q, mut k) in cache.q.axis_chunks_iter_mut(Axis(0), n).zip(cache.k.axis_chunks_iter_mut(Axis(0), n)) {
            for h in 0..config.heads {
                rope.rotate(q.slice_mut(s![.., h * dh..(h + 1) * dh]), F::one());
                rope.rotate(k.slice_mut(s![.., h * dh..(h + 1) * dh]), F::one());
            }
        }
    }
    if let (FamilyTensors::Xl { r, .. }, Some(sinusoid)) = (ids.pos.family, &tables.xl_sinusoid) {
        general_mat_mul(F::one(), sinusoid, &p.mat(r), F::zero(), &mut cache.rel);
    }
    if let (FamilyTensors::T5Bucketed(t), Some(bucket_of)) = (ids.pos.family, &tables.t5_bucket) {
        for (e, b) in cache.offset_bias.rows_mut().into_iter().zip(p.mat(t).rows()) {
            t5::expand_buckets(e, b, bucket_of);
        }
    }
    let offset_bias = match ids.pos.family {
        FamilyTensors::T5(t) => Some(p.mat(t)),
        FamilyTensors::T5Bucketed(_) => Some(cache.offset_bias.view()),
        _ => None,
    };
    let shared =
        Shared { p, ids, tables, config, rel: cache.rel.view(), offset_bias, n, scale: F::c(1.0 / (dh as f64).sqrt()) };
    let mut gated = cache.gated.outer_iter_mut();
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
        })
        .collect();
    debug_assert_eq!(seqs.len(), batch);
    seqs.into_par_iter()
        .for_each_init(|| vec![F::zero(); n * dh + n * (2 * n - 1)], |buf, seq| sequence_forward(&shared, seq, buf));
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
    let (n, dh, n_max, heads) = (c.n, c.config.head_dim(), c.config.n_max, c.config.heads);
    let (p, b) = (c.p, s.b);
    let rows = b * n..(b + 1) * n;
    let (q_all, k_all, v_all) =
        (cache.q.slice(s![rows.clone(), ..]), cache.k.slice(s![rows.clone(), ..]), cache.v.slice(s![rows, ..]));
    let (dscore_buf, rest) = s.scratch.split_at_mut(n * n);
    let (skew_buf, rest) = rest.split_at_mut(n * (2 * n - 1));
    let (qx_buf, dqx_buf) = rest.split_at_mut(n * dh);
    let mut skewed = ArrayViewMut2::from_shape((n, 2 * n - 1), skew_buf).expect("scratch");
    let (mut dq, mut dk, mut dv, pos) = (s.dq, s.dk, s.dv, s.pos);
    for h in 0..heads {
        let cols = c.cols(h);
        let (q, k, v) =
            (q_all.slice(s![.., cols.clone()]), k_all.slice(s![.., cols.clone()]), v_all.slice(s![.., cols.clone()]));
        let dout = s.dheads.slice(s![.., cols.clone()]);
        let probs = cache.probs.slice(s![b, h, .., ..]);
        let mix = if cache.gated.is_empty() { probs } else { cache.gated.slice(s![b, h, .., ..]) };
        let mut dg = ArrayViewMut2::from_shape((n, n), &mut *dscore_buf).expect("scratch");
        // ∂L/∂G = dout·Vᵀ, ∂L/∂V = Gᵀ·dout
        general_mat_mul(F::one(), &dout, &v.t(), F::zero(), &mut dg);
        if let FamilyTensors::ShawValue(t) = c.ids.pos.family {
            let dwin = window_mut(block(pos, layout.table), n);
            relative::relative_values_backward(dg.view_mut(), dwin, dout, mix, window(p.mat(t), n), skewed.view_mut());
        }
        general_mat_mul(F::one(), &mix.t(), &dout, F::zero(), &mut dv.slice_mut(s![.., cols.clone()]));
        if let Some(gate) = c.ids.pos.gate {
            let dc = block(pos, layout.gate).index_axis_move(Axis(0), h);
            toeplitz::gate_backward(dg.view_mut(), dc, probs, p.mat(gate).row(h), n_max);
        }
        for i in 0..n {
            softmax_row_backward(
                dg.row_mut(i).into_slice().expect("contiguous"),
                probs.row(i).to_slice().expect("contiguous"),
            );
        }
        let ds = dg.view();
        let mut dq_h = dq.slice_mut(s![.., cols.clone()]);
        let mut dk_h = dk.slice_mut(s![.., cols.clone()]);
        // content term S = scale · x·Kᵀ, x = q (+ u_h for xl): ∂x = scale·dS·K, ∂K = scale·dSᵀ·x
        // (written first; the position terms below add to dq)
        match c.xl_row(xl_u, h) {
            Some(u) => {
                let x = shifted(qx_buf, q, u);
                general_mat_mul(c.scale, &ds.t(), &x, F::zero(), &mut dk_h);
                let mut dx = ArrayViewMut2::from_shape((n, dh), &mut dqx_buf[..n * dh]).expect("scratch");
                general_mat_mul(c.scale, &ds, &k, F::zero(), &mut dx);
                dq_h.assign(&dx);
                let mut du = block(pos, layout.u).index_axis_move(Axis(0), h);
                for row in dx.rows() {
                    du += &row;
                }
            }
            None => {
                general_mat_mul(c.scale, &ds.t(), &q, F::zero(), &mut dk_h);
                general_mat_mul(c.scale, &ds, &k, F::zero(), &mut dq_h);
            }
        }
        match c.ids.pos.family {
            FamilyTensors::T5(_) | FamilyTensors::T5Bucketed(_) => {
                let db: ArrayViewMut1<F> = block(pos, layout.table).index_axis_move(Axis(0), h);
                toeplitz::offset_rows_backward(db, ds, n_max);
            }
            FamilyTensors::ShawKey(t) => {
                let dwin = window_mut(block(pos, layout.table), n);
                relative::relative_scores_backward(
                    dq_h.view_mut(),
                    dwin,
                    ds,
                    q,
                    window(p.mat(t), n),
                    c.scale,
                    skewed.view_mut(),
                );
            }
            FamilyTensors::Xl { v: vb, .. } => {
                // position term: x = q + v_h; ∂L/∂x goes to dq and, summed over rows, to v_h
                let x = shifted(qx_buf, q, p.mat(vb).index_axis_move(Axis(0), h));
                let mut dx = ArrayViewMut2::from_shape((n, dh), &mut dqx_buf[..n * dh]).expect("scratch");
                dx.fill(F::zero());
                let dwin = window_mut(block(pos, layout.rel).slice_move(s![.., cols.clone()]), n);
                let win = window(c.rel.slice(s![.., cols.clone()]), n);
                relative::relative_scores_backward(dx.view_mut(), dwin, ds, x.view(), win, c.scale, skewed.view_mut());
                dq_h += &dx;
                let mut dvb = block(pos, layout.v).index_axis_move(Axis(0), h);
                for row in dx.rows() {
                    dvb += &row;
                }
            }
            FamilyTensors::ShawValue(_) | FamilyTensors::None => {}
        }
        if let Some(rope) = &c.tables.rope {
            rope.rotate(dq_h, -F::one());
            rope.rotate(dk_h, -F::one());
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
    tables: &PositionTables<F>,
    config: &ModelConfig,
) {
    let n = cache.scores.dim().2;
    let dh = config.head_dim();
    ws.dheads.fill(F::zero());
    linear_backward(Some(ws.dheads.view_mut()), dparams, ids.o, dout, cache.heads.view(), p.mat(ids.o.weight));
    let layout = PositionGradLayout::new(config, ids);
    let shared = Shared {
        p,
        ids,
        tables,
        config,
        rel: cache.rel.view(),
        offset_bias: None,
        n,
        scale: F::c(1.0 / (dh as f64).sqrt()),
    };
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
    let add = |dparams: &mut Params<F>, id, place: (usize, usize, usize)| {
        dparams.mat_mut(id).zip_mut_with(&block_ref(total, place), |a, &g| *a += g);
    };
    match ids.pos.family {
        FamilyTensors::T5(t) | FamilyTensors::ShawKey(t) | FamilyTensors::ShawValue(t) => add(dparams, t, layout.table),
        FamilyTensors::T5Bucketed(t) => {
            let bucket_of = tables.t5_bucket.as_deref().expect("t5-bucketed tables");
            for (db, de) in dparams.mat_mut(t).rows_mut().into_iter().zip(block_ref(total, layout.table).rows()) {
                t5::fold_buckets(db, de, bucket_of);
            }
        }
        FamilyTensors::Xl { u, v, r } => {
            add(dparams, u, layout.u);
            add(dparams, v, layout.v);
            let sinusoid = tables.xl_sinusoid.as_ref().expect("xl tables");
            general_mat_mul(F::one(), &sinusoid.t(), &block_ref(total, layout.rel), F::one(), &mut dparams.mat_mut(r));
        }
        FamilyTensors::None => {}
    }
    if let Some(gate) = ids.pos.gate {
        add(dparams, gate, layout.gate);
    }
    linear_backward(Some(dx.view_mut()), dparams, ids.q, ws.dq.view(), x, p.mat(ids.q.weight));
    linear_backward(Some(dx.view_mut()), dparams, ids.k, ws.dk.view(), x, p.mat(ids.k.weight));
    linear_backward(Some(dx.view_mut()), dparams, ids.v, ws.dv.view(), x, p.mat(ids.v.weight));
}
