//! Multi-head attention with every position family and the URPE gate. Scores,
//! probabilities and gated probabilities are materialised and kept in the cache.
//!
//! Per head h (columns h·d_h..(h+1)·d_h of Q, K, V), with o = (j − i) + n_max − 1:
//! S = Q_h K_hᵀ/√d_h + position term, A = row_softmax(S), G = A ⊙ C_h[o] (URPE) or A,
//! out_h = G V_h (+ Σ_j G_ij a^V_o for shaw-value); out = concat_h(out_h)·W_O + b_O.
//! Sequences of a batch run in parallel; the per-head products use the vector kernels of
//! [`super::kernels`] (too small for GEMM calls to pay).

use super::kernels::{add_into, axpy};
use super::layout::{AttentionIds, FamilyTensors};
use super::linear::{linear_backward, linear_forward};
use super::params::Params;
use super::position::{PositionTables, alibi, relative, t5};
use super::softmax::{softmax_row_backward, softmax_row_forward};
use crate::config::{Family, ModelConfig};
use crate::float::Float;
use ndarray::linalg::general_mat_mul;
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
    /// Keys per head, transposed, [batch, heads, d_h, n].
    pub kt: Array4<F>,
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
        let (d, h, dh) = (config.width, config.heads, config.head_dim());
        let rows = batch * n;
        let full = || Array4::zeros((batch, h, n, n));
        AttentionCache {
            q: Array2::zeros((rows, d)),
            k: Array2::zeros((rows, d)),
            v: Array2::zeros((rows, d)),
            kt: Array4::zeros((batch, h, dh, n)),
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

/// Position-parameter gradients of one sequence, laid out flat: the family's table
/// (t5, t5-bucketed, shaw-key or shaw-value, in its tensor's shape), xl's u, v and the
/// gradient of the projected table R·W_R, and the gate's C.
#[derive(Clone, Copy, Debug, Default)]
struct PositionGradLayout {
    table: (usize, usize, usize),
    u: (usize, usize),
    v: (usize, usize),
    rel: (usize, usize, usize),
    gate: (usize, usize, usize),
    len: usize,
}

impl PositionGradLayout {
    fn new(config: &ModelConfig, ids: &AttentionIds, p: &Params<impl Float>) -> Self {
        let mut at = 0;
        let mut take = |rows: usize, cols: usize| {
            let start = at;
            at += rows * cols;
            (start, rows, cols)
        };
        let shape = |id| {
            let s = &p.layout.spec(id).shape;
            (s[0], s[1])
        };
        let mut l = PositionGradLayout::default();
        match ids.pos.family {
            FamilyTensors::T5(t)
            | FamilyTensors::T5Bucketed(t)
            | FamilyTensors::ShawKey(t)
            | FamilyTensors::ShawValue(t) => {
                let (r, c) = shape(t);
                l.table = take(r, c);
            }
            FamilyTensors::Xl { .. } => {
                let (h, dh) = (config.heads, config.head_dim());
                let u = take(h, dh);
                l.u = (u.0, u.0 + h * dh);
                let v = take(h, dh);
                l.v = (v.0, v.0 + h * dh);
                l.rel = take(config.offsets(), config.width);
            }
            FamilyTensors::None => {}
        }
        if ids.pos.gate.is_some() {
            l.gate = take(config.heads, config.offsets());
        }
        l.len = at;
        l
    }
}

fn block<F>(flat: &mut [F], (start, rows, cols): (usize, usize, usize)) -> ArrayViewMut2<'_, F> {
    ArrayViewMut2::from_shape((rows, cols), &mut flat[start..start + rows * cols]).expect("a grad block")
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
    /// Per sequence: V of each head transposed [heads, d_h, n], a [n, n] score gradient,
    /// two [n, d_h] query workspaces and a [d_h] bias-gradient workspace.
    scratch: Array2<F>,
    /// Per sequence: position-parameter gradients (see `PositionGradLayout`).
    pos: Array2<F>,
    /// Their sum over the batch.
    pos_total: Array1<F>,
}

impl<F: Float> AttentionGrads<F> {
    /// Storage for `batch` sequences of length `n` under `config`.
    pub fn new(config: &ModelConfig, batch: usize, n: usize, p: &Params<F>, ids: &AttentionIds) -> Self {
        let (rows, d, dh) = (batch * n, config.width, config.head_dim());
        let pos_len = PositionGradLayout::new(config, ids, p).len;
        AttentionGrads {
            dheads: Array2::zeros((rows, d)),
            dq: Array2::zeros((rows, d)),
            dk: Array2::zeros((rows, d)),
            dv: Array2::zeros((rows, d)),
            scratch: Array2::zeros((batch, config.heads * dh * n + n * n + 2 * n * dh + dh)),
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
    rel: ArrayView2<'a, F>,
    n: usize,
    scale: F,
}

impl<F: Float> Shared<'_, F> {
    fn dh(&self) -> usize {
        self.config.head_dim()
    }
    fn cols(&self, h: usize) -> std::ops::Range<usize> {
        h * self.dh()..(h + 1) * self.dh()
    }
    fn bucket_of(&self) -> Option<&[usize]> {
        self.tables.t5_bucket.as_deref()
    }
}

/// Row h of a [heads, d_h] position tensor picked by `pick` (xl's u or v), as a slice.
fn head_row<'a, F: Float>(
    c: &Shared<'a, F>,
    h: usize,
    pick: impl Fn(FamilyTensors) -> Option<super::TensorId>,
) -> Option<&'a [F]> {
    pick(c.ids.pos.family).map(|id| c.p.mat(id).index_axis_move(Axis(0), h).to_slice().expect("contiguous"))
}

/// Writes x_i = q_i + bias into `buf` for every row and returns x [n, d_h].
fn shifted_queries<'b, F: Float>(
    buf: &'b mut [F],
    q: ArrayView2<F>,
    bias: ndarray::ArrayView1<F>,
) -> ArrayView2<'b, F> {
    let (n, dh) = q.dim();
    let bias = bias.to_slice().expect("contiguous");
    for (i, qi) in q.rows().into_iter().enumerate() {
        add_into(&mut buf[i * dh..(i + 1) * dh], qi.to_slice().expect("contiguous"), bias);
    }
    ArrayView2::from_shape((n, dh), &buf[..n * dh]).expect("scratch")
}

/// Per-sequence views of the forward cache.
struct SeqForward<'a, F> {
    q: ArrayView2<'a, F>,
    k: ArrayView2<'a, F>,
    v: ArrayView2<'a, F>,
    kt: ArrayViewMut3<'a, F>,
    scores: ArrayViewMut3<'a, F>,
    probs: ArrayViewMut3<'a, F>,
    gated: Option<ArrayViewMut3<'a, F>>,
    heads: ArrayViewMut2<'a, F>,
}

fn sequence_forward<F: Float>(c: &Shared<F>, mut s: SeqForward<F>, qx: &mut [F]) {
    let (n, dh, n_max) = (c.n, c.dh(), c.config.n_max);
    let p = c.p;
    for h in 0..c.config.heads {
        let cols = c.cols(h);
        let (q, k, v) =
            (s.q.slice(s![.., cols.clone()]), s.k.slice(s![.., cols.clone()]), s.v.slice(s![.., cols.clone()]));
        let mut kt = s.kt.index_axis_mut(Axis(0), h);
        kt.assign(&k.t());
        let mut scores = s.scores.index_axis_mut(Axis(0), h);
        // content term: S_i = scale · Σ_k x_ik · Kᵀ_k, with x = q (+ u_h for xl)
        let content_bias = head_row(c, h, |t| match t {
            FamilyTensors::Xl { u, .. } => Some(u),
            _ => None,
        });
        for i in 0..n {
            let qi = q.row(i).to_slice().expect("contiguous");
            let x: &[F] = match content_bias {
                Some(u) => {
                    add_into(&mut qx[..dh], qi, u);
                    &qx[..dh]
                }
                None => qi,
            };
            let row = scores.row_mut(i).into_slice().expect("contiguous");
            row.fill(F::zero());
            for (kk, &xk) in x.iter().enumerate() {
                axpy(row, c.scale * xk, kt.row(kk).to_slice().expect("contiguous"));
            }
        }
        match c.ids.pos.family {
            FamilyTensors::T5(t) | FamilyTensors::T5Bucketed(t) => {
                t5::bias_forward(scores.view_mut(), p.mat(t).row(h), c.bucket_of(), n_max)
            }
            FamilyTensors::ShawKey(t) => relative::relative_scores_forward(scores.view_mut(), q, p.mat(t), c.scale),
            FamilyTensors::Xl { v: vb, .. } => {
                let qv = shifted_queries(qx, q, p.mat(vb).index_axis_move(Axis(0), h));
                relative::relative_scores_forward(scores.view_mut(), qv, c.rel.slice(s![.., cols.clone()]), c.scale);
            }
            FamilyTensors::ShawValue(_) | FamilyTensors::None => {}
        }
        if let Some(slopes) = &c.tables.alibi_slopes {
            alibi::alibi_forward(scores.view_mut(), slopes[h]);
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
            relative::gate_forward(gated.index_axis_mut(Axis(0), h), probs.view(), p.mat(gate).row(h), n_max);
        }
        let mix = match &s.gated {
            Some(gated) => gated.index_axis(Axis(0), h),
            None => s.probs.index_axis(Axis(0), h),
        };
        let mut out = s.heads.slice_mut(s![.., cols.clone()]);
        for i in 0..n {
            let o = out.row_mut(i).into_slice().expect("contiguous");
            o.fill(F::zero());
            for j in 0..n {
                axpy(o, mix[[i, j]], v.row(j).to_slice().expect("contiguous"));
            }
        }
        if let FamilyTensors::ShawValue(t) = c.ids.pos.family {
            relative::relative_values_forward(out, mix, p.mat(t));
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
    let shared = Shared { p, ids, tables, config, rel: cache.rel.view(), n, scale: F::c(1.0 / (dh as f64).sqrt()) };
    let mut gated = cache.gated.outer_iter_mut();
    let seqs: Vec<SeqForward<F>> = cache
        .q
        .axis_chunks_iter(Axis(0), n)
        .zip(cache.k.axis_chunks_iter(Axis(0), n))
        .zip(cache.v.axis_chunks_iter(Axis(0), n))
        .zip(cache.kt.outer_iter_mut())
        .zip(cache.scores.outer_iter_mut().zip(cache.probs.outer_iter_mut()))
        .zip(cache.heads.axis_chunks_iter_mut(Axis(0), n))
        .map(|(((((q, k), v), kt), (scores, probs)), heads)| SeqForward {
            q,
            k,
            v,
            kt,
            scores,
            probs,
            gated: if ids.pos.gate.is_some() { gated.next() } else { None },
            heads,
        })
        .collect();
    debug_assert_eq!(seqs.len(), batch);
    seqs.into_par_iter().for_each_init(|| vec![F::zero(); n * dh], |qx, seq| sequence_forward(&shared, seq, qx));
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
    let (n, dh, n_max, heads) = (c.n, c.dh(), c.config.n_max, c.config.heads);
    let (p, b) = (c.p, s.b);
    let rows = b * n..(b + 1) * n;
    let (q_all, k_all, v_all) =
        (cache.q.slice(s![rows.clone(), ..]), cache.k.slice(s![rows.clone(), ..]), cache.v.slice(s![rows, ..]));
    let (vt_all, rest) = s.scratch.split_at_mut(heads * dh * n);
    let (dscore_buf, rest) = rest.split_at_mut(n * n);
    let (qx_buf, rest) = rest.split_at_mut(n * dh);
    let (dqx_buf, du_buf) = rest.split_at_mut(n * dh);
    let (mut dq, mut dk, mut dv, pos) = (s.dq, s.dk, s.dv, s.pos);
    dq.fill(F::zero());
    dk.fill(F::zero());
    dv.fill(F::zero());
    for h in 0..heads {
        let cols = c.cols(h);
        let (q, k, v) =
            (q_all.slice(s![.., cols.clone()]), k_all.slice(s![.., cols.clone()]), v_all.slice(s![.., cols.clone()]));
        let dout = s.dheads.slice(s![.., cols.clone()]);
        let probs = cache.probs.slice(s![b, h, .., ..]);
        let mix = if cache.gated.is_empty() { probs } else { cache.gated.slice(s![b, h, .., ..]) };
        let mut vt = ArrayViewMut2::from_shape((dh, n), &mut vt_all[h * dh * n..(h + 1) * dh * n]).expect("scratch");
        vt.assign(&v.t());
        // ∂L/∂G_i = Σ_k dout_ik · Vᵀ_k
        let mut dg = ArrayViewMut2::from_shape((n, n), &mut *dscore_buf).expect("scratch");
        for i in 0..n {
            let row = dg.row_mut(i).into_slice().expect("contiguous");
            row.fill(F::zero());
            for (kk, &g) in dout.row(i).iter().enumerate() {
                axpy(row, g, vt.row(kk).to_slice().expect("contiguous"));
            }
        }
        if let FamilyTensors::ShawValue(t) = c.ids.pos.family {
            relative::relative_values_backward(dg.view_mut(), block(pos, layout.table), dout, mix, p.mat(t));
        }
        let mut dv_h = dv.slice_mut(s![.., cols.clone()]);
        for i in 0..n {
            let d_i = dout.row(i).to_slice().expect("contiguous");
            for j in 0..n {
                axpy(dv_h.row_mut(j).into_slice().expect("contiguous"), mix[[i, j]], d_i);
            }
        }
        if let Some(gate) = c.ids.pos.gate {
            let (start, _, cols_c) = layout.gate;
            let dc = ndarray::ArrayViewMut1::from(&mut pos[start + h * cols_c..start + (h + 1) * cols_c]);
            relative::gate_backward(dg.view_mut(), dc, probs, p.mat(gate).row(h), n_max);
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
        match c.ids.pos.family {
            FamilyTensors::T5(_) | FamilyTensors::T5Bucketed(_) => {
                let mut table = block(pos, layout.table);
                t5::bias_backward(table.row_mut(h), ds, c.bucket_of(), n_max);
            }
            FamilyTensors::ShawKey(t) => {
                relative::relative_scores_backward(dq_h.view_mut(), block(pos, layout.table), ds, q, p.mat(t), c.scale);
            }
            FamilyTensors::Xl { v: vb, .. } => {
                // position term: x = q + v_h against the projected table's head columns;
                // ∂L/∂x goes to dq and, summed over rows, to v_h
                let qv = shifted_queries(qx_buf, q, p.mat(vb).index_axis_move(Axis(0), h));
                let mut dqv = ArrayViewMut2::from_shape((n, dh), &mut *dqx_buf).expect("scratch");
                dqv.fill(F::zero());
                let mut rel_grad = block(pos, layout.rel);
                let rel_h = c.rel.slice(s![.., cols.clone()]);
                relative::relative_scores_backward(
                    dqv.view_mut(),
                    rel_grad.slice_mut(s![.., cols.clone()]),
                    ds,
                    qv,
                    rel_h,
                    c.scale,
                );
                dq_h += &dqv;
                let mut dv_bias = block(pos, (layout.v.0, heads, dh));
                for row in dqv.rows() {
                    dv_bias.row_mut(h).zip_mut_with(&row, |a, &g| *a += g);
                }
            }
            FamilyTensors::ShawValue(_) | FamilyTensors::None => {}
        }
        // content term: S_ij = scale · x_i·k_j with x = q (+ u_h for xl)
        let content_bias = head_row(c, h, |t| match t {
            FamilyTensors::Xl { u, .. } => Some(u),
            _ => None,
        });
        du_buf.fill(F::zero());
        for i in 0..n {
            let qi = q.row(i).to_slice().expect("contiguous");
            let x: &[F] = match content_bias {
                Some(u) => {
                    add_into(&mut qx_buf[..dh], qi, u);
                    &qx_buf[..dh]
                }
                None => qi,
            };
            // ∂L/∂x_i = scale Σ_j dS_ij k_j goes to dq_i (and to u_h for xl)
            let dx_i = &mut dqx_buf[..dh];
            dx_i.fill(F::zero());
            for j in 0..n {
                let g = c.scale * ds[[i, j]];
                axpy(dx_i, g, k.row(j).to_slice().expect("contiguous"));
                axpy(dk_h.row_mut(j).into_slice().expect("contiguous"), g, x);
            }
            axpy(dq_h.row_mut(i).into_slice().expect("contiguous"), F::one(), dx_i);
            axpy(du_buf, F::one(), dx_i);
        }
        if content_bias.is_some() {
            let mut du_all = block(pos, (layout.u.0, heads, dh));
            du_all.row_mut(h).zip_mut_with(&ndarray::ArrayView1::from(&*du_buf), |a, &g| *a += g);
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
    dx: ArrayViewMut2<F>,
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
    let layout = PositionGradLayout::new(config, ids, p);
    let shared = Shared { p, ids, tables, config, rel: cache.rel.view(), n, scale: F::c(1.0 / (dh as f64).sqrt()) };
    let seqs: Vec<SeqBackward<F>> = ws
        .dheads
        .axis_chunks_iter(Axis(0), n)
        .zip(ws.dq.axis_chunks_iter_mut(Axis(0), n))
        .zip(ws.dk.axis_chunks_iter_mut(Axis(0), n))
        .zip(ws.dv.axis_chunks_iter_mut(Axis(0), n))
        .zip(ws.scratch.outer_iter_mut().zip(ws.pos.outer_iter_mut()))
        .enumerate()
        .map(|(b, ((((dheads, dq), dk), dv), (scratch, pos)))| SeqBackward {
            b,
            dheads,
            dq,
            dk,
            dv,
            scratch: scratch.into_slice().expect("contiguous"),
            pos: {
                let pos = pos.into_slice().expect("contiguous");
                pos.fill(F::zero());
                pos
            },
        })
        .collect();
    seqs.into_par_iter().for_each(|seq| sequence_backward(&shared, cache, &layout, seq));
    // sum the per-sequence position gradients in batch order (reproducible)
    ws.pos_total.fill(F::zero());
    for row in ws.pos.outer_iter() {
        ws.pos_total.zip_mut_with(&row, |a, &g| *a += g);
    }
    let total = ws.pos_total.as_slice_mut().expect("contiguous");
    let add = |dparams: &mut Params<F>, id, (start, rows, cols): (usize, usize, usize)| {
        dparams.slice_mut(id).iter_mut().zip(&total[start..start + rows * cols]).for_each(|(a, &g)| *a += g);
    };
    match ids.pos.family {
        FamilyTensors::T5(t)
        | FamilyTensors::T5Bucketed(t)
        | FamilyTensors::ShawKey(t)
        | FamilyTensors::ShawValue(t) => add(dparams, t, layout.table),
        FamilyTensors::Xl { u, v, r } => {
            add(dparams, u, (layout.u.0, 1, layout.u.1 - layout.u.0));
            add(dparams, v, (layout.v.0, 1, layout.v.1 - layout.v.0));
            let (start, rows, cols) = layout.rel;
            let drel = ArrayView2::from_shape((rows, cols), &total[start..start + rows * cols]).expect("a grad block");
            let sinusoid = tables.xl_sinusoid.as_ref().expect("xl tables");
            general_mat_mul(F::one(), &sinusoid.t(), &drel, F::one(), &mut dparams.mat_mut(r));
        }
        FamilyTensors::None => {}
    }
    if let Some(gate) = ids.pos.gate {
        add(dparams, gate, layout.gate);
    }
    let mut dx = dx;
    linear_backward(Some(dx.view_mut()), dparams, ids.q, ws.dq.view(), x, p.mat(ids.q.weight));
    linear_backward(Some(dx.view_mut()), dparams, ids.k, ws.dk.view(), x, p.mat(ids.k.weight));
    linear_backward(Some(dx.view_mut()), dparams, ids.v, ws.dv.view(), x, p.mat(ids.v.weight));
}
