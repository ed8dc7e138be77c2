//! Differential attention in the ndarray engine (the definition is in
//! [`crate::normaliser::differential`]): per head, S^c = q^c·k^cᵀ/√(d_h/2) + the family's
//! score term for the halves c = 1, 2, A^c = softmax(S^c), A = A¹ − λ·A², G = A ⊙ C or A,
//! O = G·V (+ the family's value term), Y_i = (1 − λ_init)·O_i·r_i with
//! r_i = 1/√(mean_k O_ik² + ε). Forward caches S¹ (in `scores`), A (in `probs`) and G as every
//! normaliser does, and S², A¹, A², O and r here; backward runs the chain in reverse:
//!
//! - ∂L/∂O_i = (1 − λ_init)·r_i·(∂L/∂Y_i − O_i·r_i²·⟨∂L/∂Y_i, O_i⟩/d_h);
//! - ∂L/∂G = ∂L/∂O·Vᵀ (+ the value term's), ∂L/∂V = Gᵀ·∂L/∂O, the gate's backward to ∂L/∂A;
//! - ∂L/∂A¹ = ∂L/∂A, ∂L/∂A² = −λ·∂L/∂A, ∂L/∂λ = −Σ_ij ∂L/∂A_ij·A²_ij (summed over heads);
//! - each half's softmax backward, then ∂q^c = dS^c·k^c/√(d_h/2), ∂k^c = dS^cᵀ·q^c/√(d_h/2)
//!   and the family's score-term backward once per half.

use super::{AttentionCache, PositionGradLayout, SeqBackward, SeqForward, Shared, scratch_len as base_scratch_len};
use crate::config::ModelConfig;
use crate::family::{Head, Work, gate, work_len};
use crate::float::Float;
use crate::gemm::{small_matmul, small_matmul_by_transpose};
use crate::normaliser::differential::{RMS_EPS, lambda_init};
use ndarray::{Array2, Array4, ArrayView1, ArrayView2, ArrayViewMut2, ArrayViewMut3, Axis, Zip, s};

/// Differential attention's activations of one layer, beside [`AttentionCache`]'s.
#[derive(Clone, Debug)]
pub struct DifferentialCache<F> {
    /// Scores of the second halves S², [batch, heads, n, n] (S¹ is the cache's `scores`).
    pub scores2: Array4<F>,
    /// softmax(S¹), [batch, heads, n, n].
    pub probs1: Array4<F>,
    /// softmax(S²), [batch, heads, n, n].
    pub probs2: Array4<F>,
    /// The heads' outputs O before the RMS norm, side by side, [batch·n, d].
    pub unnormed: Array2<F>,
    /// r = 1/√(mean O² + ε) per row and head, [batch·n, heads].
    pub inv_rms: Array2<F>,
    /// λ of the last forward pass.
    pub lambda: F,
}

impl<F: Float> DifferentialCache<F> {
    /// Storage for `batch` sequences of length `n` under `config`.
    pub fn new(config: &ModelConfig, batch: usize, n: usize) -> Self {
        let (rows, d, h) = (batch * n, config.width, config.heads);
        let full = || Array4::zeros((batch, h, n, n));
        DifferentialCache {
            scores2: full(),
            probs1: full(),
            probs2: full(),
            unnormed: Array2::zeros((rows, d)),
            inv_rms: Array2::zeros((rows, h)),
            lambda: F::zero(),
        }
    }

    /// Views of each sequence of length `n`, in batch order.
    pub(super) fn per_sequence(&mut self, n: usize) -> Vec<SeqCache<'_, F>> {
        self.scores2
            .outer_iter_mut()
            .zip(self.probs1.outer_iter_mut())
            .zip(self.probs2.outer_iter_mut())
            .zip(self.unnormed.axis_chunks_iter_mut(Axis(0), n))
            .zip(self.inv_rms.axis_chunks_iter_mut(Axis(0), n))
            .map(|((((scores2, probs1), probs2), unnormed), inv_rms)| SeqCache {
                scores2,
                probs1,
                probs2,
                unnormed,
                inv_rms,
            })
            .collect()
    }
}

/// One sequence's views of a [`DifferentialCache`].
pub(super) struct SeqCache<'a, F> {
    scores2: ArrayViewMut3<'a, F>,
    probs1: ArrayViewMut3<'a, F>,
    probs2: ArrayViewMut3<'a, F>,
    unnormed: ArrayViewMut2<'a, F>,
    inv_rms: ArrayViewMut2<'a, F>,
}

/// Extra scratch per sequence of the backward pass: the second score gradient [n, n] and
/// ∂L/∂O of one head [n, d_h].
pub(super) fn scratch_len(n: usize, config: &ModelConfig) -> usize {
    n * n + n * config.head_dim()
}

/// 1/√(d_h/2), the scale of each half's content scores.
fn half_scale<F: Float>(config: &ModelConfig) -> F {
    F::c(1.0 / ((config.head_dim() / 2) as f64).sqrt())
}

/// What the family's score term sees of half `part` (0 or 1) of head `h`: that half's
/// queries and keys [n, d_h/2] (`q`, `k` are the whole head's), the scale 1/√(d_h/2) and the
/// half's columns.
fn half_head<'b, F: Float>(
    c: &'b Shared<'_, F>,
    h: usize,
    part: usize,
    q: ArrayView2<'b, F>,
    k: ArrayView2<'b, F>,
) -> Head<'b, F> {
    let half = c.config.head_dim() / 2;
    let range = part * half..(part + 1) * half;
    let mut head = c.head(h, q.slice_move(s![.., range.clone()]), k.slice_move(s![.., range.clone()]));
    head.scale = half_scale(c.config);
    head.cols = head.cols.start + range.start..head.cols.start + range.end;
    head
}

/// r = 1/√(mean_k o_k² + ε) of one row.
fn inv_rms<F: Float>(row: ArrayView1<F>) -> F {
    let mean = row.dot(&row) / F::c(row.len() as f64);
    F::one() / (mean + F::c(RMS_EPS)).sqrt()
}

/// λ and 1 − λ_init of the layer.
fn lambdas<F: Float>(c: &Shared<F>) -> (F, F) {
    let (lambda, ids) = (c.lambda.expect("differential attention has λ"), c.ids.differential.expect("λ's ids"));
    (lambda.value, F::c(1.0 - lambda_init(ids.layer)))
}

/// Forward of one sequence (every head).
pub(super) fn sequence_forward<F: Float>(c: &Shared<F>, mut s: SeqForward<F>, mut own: SeqCache<F>, buf: &mut [F]) {
    debug_assert!(!c.terms.transforms(), "the configuration refuses families that transform q and k");
    let (n, n_max, dh) = (c.n, c.config.inner_n_max(), c.config.head_dim());
    let (lambda, out_scale) = lambdas(c);
    let scale = half_scale::<F>(c.config);
    let (buf, kt) = buf.split_at_mut(work_len(n, dh));
    let mut work = Work::new(buf, n, dh);
    for h in 0..c.config.heads {
        let cols = c.cols(h);
        let (q, k, v) =
            (s.q.slice(s![.., cols.clone()]), s.k.slice(s![.., cols.clone()]), s.v.slice(s![.., cols.clone()]));
        let mut scores = [s.scores.index_axis_mut(Axis(0), h), own.scores2.index_axis_mut(Axis(0), h)];
        let mut halves = [own.probs1.index_axis_mut(Axis(0), h), own.probs2.index_axis_mut(Axis(0), h)];
        for (part, (scores, probs)) in scores.iter_mut().zip(&mut halves).enumerate() {
            let head = half_head(c, h, part, q, k);
            small_matmul_by_transpose(scale, head.q.view(), head.k.view(), F::zero(), scores.view_mut(), kt);
            c.terms.scores(&head, scores.view_mut(), &mut work);
            if c.config.causal {
                for i in 0..n {
                    scores.row_mut(i).slice_mut(s![i + 1..]).fill(F::neg_infinity());
                }
            }
            c.normaliser.forward_rows(probs.view_mut(), scores.view(), F::zero());
        }
        let mut probs = s.probs.index_axis_mut(Axis(0), h);
        Zip::from(&mut probs).and(&halves[0]).and(&halves[1]).for_each(|a, &a1, &a2| *a = a1 - lambda * a2);
        if let (Some(gated), Some(c_id)) = (&mut s.gated, c.ids.pos.gate) {
            gate::forward(gated.index_axis_mut(Axis(0), h), probs.view(), c.p.mat(c_id).row(h), n_max);
        }
        let mix = match &s.gated {
            Some(gated) => gated.index_axis(Axis(0), h),
            None => s.probs.index_axis(Axis(0), h),
        };
        let mut o = own.unnormed.slice_mut(s![.., cols.clone()]);
        small_matmul(F::one(), mix.view(), v.view(), F::zero(), o.view_mut());
        c.terms.values(&c.head(h, q, k), mix, o.view_mut(), &mut work);
        // Y_i = (1 − λ_init)·O_i·r_i
        let mut y = s.heads.slice_mut(s![.., cols]);
        for (i, (o_i, mut y_i)) in o.rows().into_iter().zip(y.rows_mut()).enumerate() {
            let r = inv_rms(o_i);
            own.inv_rms[[i, h]] = r;
            Zip::from(&mut y_i).and(&o_i).for_each(|y, &o| *y = out_scale * r * o);
        }
    }
}

/// Backward of one sequence (every head): adds ∂L/∂λ to the normaliser's slot of the
/// gradient buffer.
pub(super) fn sequence_backward<F: Float>(
    c: &Shared<F>,
    cache: &AttentionCache<F>,
    own: &DifferentialCache<F>,
    layout: &PositionGradLayout,
    s: SeqBackward<F>,
) {
    let (n, dh, n_max, heads) = (c.n, c.config.head_dim(), c.config.inner_n_max(), c.config.heads);
    let half = dh / 2;
    let (lambda, out_scale) = lambdas(c);
    let scale = half_scale::<F>(c.config);
    let (p, b) = (c.p, s.b);
    let rows = b * n..(b + 1) * n;
    let (q_all, k_all, v_all) =
        (cache.q.slice(s![rows.clone(), ..]), cache.k.slice(s![rows.clone(), ..]), cache.v.slice(s![rows.clone(), ..]));
    let (base, extra) = s.scratch.split_at_mut(base_scratch_len(n, dh));
    let (first_buf, rest) = base.split_at_mut(n * n);
    let (vt, rest) = rest.split_at_mut(n * dh);
    let mut work = Work::new(rest, n, dh);
    let (second_buf, dout_buf) = extra.split_at_mut(n * n);
    let (mut dq, mut dk, mut dv) = (s.dq, s.dk, s.dv);
    let (family_grad, rest) = s.pos.split_at_mut(layout.family);
    let (gate_grad, lambda_grad) = rest.split_at_mut(layout.gate);
    for h in 0..heads {
        let cols = c.cols(h);
        let (q, k, v) =
            (q_all.slice(s![.., cols.clone()]), k_all.slice(s![.., cols.clone()]), v_all.slice(s![.., cols.clone()]));
        // ∂L/∂O_i = (1 − λ_init)·r_i·(∂L/∂Y_i − O_i·r_i²·⟨∂L/∂Y_i, O_i⟩/d_h)
        let unnormed = own.unnormed.slice(s![rows.clone(), cols.clone()]);
        let mut dout = ArrayViewMut2::from_shape((n, dh), &mut *dout_buf).expect("scratch");
        for (i, (mut d_i, (o_i, dy_i))) in dout
            .rows_mut()
            .into_iter()
            .zip(unnormed.rows().into_iter().zip(s.dheads.slice(s![.., cols.clone()]).rows()))
            .enumerate()
        {
            let r = own.inv_rms[[b * n + i, h]];
            let along = r * r * o_i.dot(&dy_i) / F::c(dh as f64);
            Zip::from(&mut d_i).and(&dy_i).and(&o_i).for_each(|d, &g, &o| *d = out_scale * r * (g - o * along));
        }
        let probs = cache.probs.slice(s![b, h, .., ..]);
        let mix = if cache.gated.is_empty() { probs } else { cache.gated.slice(s![b, h, .., ..]) };
        let mut first = ArrayViewMut2::from_shape((n, n), &mut *first_buf).expect("scratch");
        // ∂L/∂G = ∂L/∂O·Vᵀ (+ the family's value term), ∂L/∂V = Gᵀ·∂L/∂O
        small_matmul_by_transpose(F::one(), dout.view(), v.view(), F::zero(), first.view_mut(), vt);
        c.terms.values_backward(&c.head(h, q, k), mix, dout.view(), first.view_mut(), family_grad, &mut work);
        small_matmul(F::one(), mix.t(), dout.view(), F::zero(), dv.slice_mut(s![.., cols.clone()]).view_mut());
        if let Some(c_id) = c.ids.pos.gate {
            let mut dc = ArrayViewMut2::from_shape((heads, c.config.offsets()), &mut *gate_grad).expect("gate grads");
            gate::backward(first.view_mut(), dc.row_mut(h), probs, p.mat(c_id).row(h), n_max);
        }
        // ∂L/∂A¹ = ∂L/∂A (kept in `first`), ∂L/∂A² = −λ·∂L/∂A, ∂L/∂λ = −⟨∂L/∂A, A²⟩
        let probs2 = own.probs2.slice(s![b, h, .., ..]);
        lambda_grad[0] -= Zip::from(&first).and(&probs2).fold(F::zero(), |t, &d, &a| t + d * a);
        let mut second = ArrayViewMut2::from_shape((n, n), &mut *second_buf).expect("scratch");
        Zip::from(&mut second).and(&first).for_each(|d2, &d| *d2 = -lambda * d);
        let halves = [
            (first, own.probs1.slice(s![b, h, .., ..]), cache.scores.slice(s![b, h, .., ..])),
            (second, probs2, own.scores2.slice(s![b, h, .., ..])),
        ];
        let mut dq_h = dq.slice_mut(s![.., cols.clone()]);
        let mut dk_h = dk.slice_mut(s![.., cols]);
        for (part, (mut ds, a, scores)) in halves.into_iter().enumerate() {
            c.normaliser.backward_rows(ds.view_mut(), a, scores, F::zero());
            // content term of this half: ∂q^c = scale·dS^c·k^c, ∂k^c = scale·dS^cᵀ·q^c
            // (written first; the family's term adds to them)
            let head = half_head(c, h, part, q, k);
            let range = part * half..(part + 1) * half;
            let mut dq_c = dq_h.slice_mut(s![.., range.clone()]);
            let mut dk_c = dk_h.slice_mut(s![.., range]);
            small_matmul(scale, ds.t(), head.q.view(), F::zero(), dk_c.view_mut());
            small_matmul(scale, ds.view(), head.k.view(), F::zero(), dq_c.view_mut());
            c.terms.scores_backward(&head, ds.view(), dq_c, dk_c, family_grad, &mut work);
        }
    }
}
