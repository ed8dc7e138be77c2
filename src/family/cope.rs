//! `cope` (Golovneva et al. 2024, Contextual Position Encoding), causal only: a key's
//! position counts the keys the query's gates let through, not the tokens in between.
//!
//! Per head, for j ≤ i, from the content scores c_ij = q_i·k_j/√d_h:
//! - gates g_ij = σ(c_ij) (0 for j > i);
//! - contextual positions p_ij = Σ_{k=j..i} g_ik, clamped to at most P = n_max − 1;
//! - z_i[t] = q_i·e[t] against the learned position vectors e[t], t = 0..P
//!   (`{prefix}.cope` [n_max, d_h], one table per layer shared by the heads, N(0, 0.02²));
//! - with f = ⌊p_ij⌋, w = p_ij − f and f⁺ = min(f + 1, P), the score gains
//!   ((1 − w)·z_i[f] + w·z_i[f⁺])/√d_h, so s_ij = (q_i·k_j + q_i·e[p_ij])/√d_h with e
//!   interpolated linearly between integer positions (continuous in p, a kink at each
//!   integer).
//!
//! The backward pass goes through z (into q and e) and through w into p, then through the
//! suffix sums into g and through σ' into the content scores, so into q and k as well: it
//! adds to ∂q and ∂k on top of the engine's content term. Where p is clamped (p ≥ P, so
//! f = f⁺ = P and w = 0) nothing flows through p.
//!
//! Contract with the engine (`src/nn/attention.rs`): when [`Terms::scores`] is called, S
//! holds exactly the scaled content scores c_ij of the head (the engine writes them and calls
//! the family before the mask and the normaliser), so the gates are read from S. The
//! backward pass recomputes c from the head's q and k.
//!
//! Placement: inside the softmax only. On a constant input every row's gates are one
//! constant, so p_ij depends on i − j alone and the scores vary along the row, but a softmax
//! row still sums to one and V carries no position: the rows come out equal (Proposition 1).
//! Normalisers whose rows need not sum to one (sink, sigmoid, ReLU, stick-breaking) free it.
//!
//! Without the causal mask the positions are undefined (a query would count keys after it):
//! the model's configuration requires `causal = true` ([`PositionFamily::causal_only`]).

use super::kernels::sigmoid;
use super::{FamilyDims, FamilyIds, Head, Placement, PositionFamily, Terms, WEIGHT, Work, add_grad_block, grad_block};
use crate::float::Float;
use crate::gemm::small_matmul;
use crate::params::{ParamLayout, Params};
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, s};

/// Contextual position encoding.
pub struct Cope;

impl PositionFamily for Cope {
    fn name(&self) -> &'static str {
        "cope"
    }

    fn about(&self) -> &'static str {
        "CoPE: scores + q_i·e[p_ij]/√d_h, p_ij = Σ_{k=j..i} σ(q_i·k_k/√d_h) interpolated, causal"
    }

    fn placement(&self) -> Placement {
        Placement { inside_softmax_only: true, reason: "contextual positions change the scores only" }
    }

    fn causal_only(&self) -> bool {
        true
    }

    fn declare(&self, t: &mut ParamLayout, prefix: &str, dims: &FamilyDims) -> FamilyIds {
        FamilyIds::new(&[t.push(format!("{prefix}.cope"), &[dims.n_max, dims.head_dim], WEIGHT)])
    }

    fn grad_len(&self, dims: &FamilyDims) -> usize {
        dims.n_max * dims.head_dim
    }

    #[cfg(feature = "candle")]
    fn candle(&self, _dims: &FamilyDims) -> Option<Box<dyn super::candle::CandleTerms>> {
        Some(Box::new(on_candle::Contextual))
    }

    fn terms_f32(&self, dims: &FamilyDims) -> Box<dyn Terms<f32>> {
        Box::new(Contextual { n_max: dims.n_max, head_dim: dims.head_dim })
    }

    fn terms_f64(&self, dims: &FamilyDims) -> Box<dyn Terms<f64>> {
        Box::new(Contextual { n_max: dims.n_max, head_dim: dims.head_dim })
    }
}

/// Where a contextual position p falls between the integer positions: p clamped to
/// [.., P], f = ⌊p⌋, f⁺ = min(f + 1, P), w = p − f.
struct Between<F> {
    lo: usize,
    hi: usize,
    w: F,
}

impl<F: Float> Between<F> {
    fn new(p: F, top: usize) -> Self {
        let p = p.min(F::c(top as f64));
        let f = p.floor();
        let lo = f.to_usize().expect("a position in 0..=P");
        Between { lo, hi: (lo + 1).min(top), w: p - f }
    }
}

/// S_ij += scale·q_i·e[p_ij] (interpolated) for j ≤ i, from the content scores in S.
struct Contextual {
    n_max: usize,
    head_dim: usize,
}

/// q·e[t] for row t of the table.
fn z<F: Float>(q: &ArrayView1<F>, e: &ArrayView2<F>, t: usize) -> F {
    q.dot(&e.row(t))
}

impl<F: Float> Terms<F> for Contextual {
    fn scores(&self, head: &Head<F>, mut s: ArrayViewMut2<F>, _work: &mut Work<F>) {
        let e = head.params.mat(head.ids.get(0));
        let top = self.n_max - 1;
        for i in 0..head.n {
            let q = head.q.row(i);
            let mut p = F::zero();
            // from the query back: s_ij still holds c_ij when it is read
            for j in (0..=i).rev() {
                p += sigmoid(s[[i, j]]);
                let at = Between::new(p, top);
                let term = (F::one() - at.w) * z(&q, &e, at.lo) + at.w * z(&q, &e, at.hi);
                s[[i, j]] += head.scale * term;
            }
        }
    }

    /// With a_ij = scale·∂L/∂S_ij: ∂q_i += a_ij·((1 − w)·e[f] + w·e[f⁺]), ∂e[f] += a_ij(1 − w)·q_i,
    /// ∂e[f⁺] += a_ij·w·q_i; ∂p_ij = a_ij·(z_i[f⁺] − z_i[f]) (0 where clamped: f⁺ = f),
    /// ∂g_ik = Σ_{j≤k} ∂p_ij, ∂c_ik = ∂g_ik·g_ik(1 − g_ik), and c = scale·q·kᵀ gives
    /// ∂q += scale·∂c·K, ∂K += scale·∂cᵀ·q.
    fn scores_backward(
        &self,
        head: &Head<F>,
        ds: ArrayView2<F>,
        mut dq: ArrayViewMut2<F>,
        mut dk: ArrayViewMut2<F>,
        grad: &mut [F],
        work: &mut Work<F>,
    ) {
        let (n, scale, top) = (head.n, head.scale, self.n_max - 1);
        let e = head.params.mat(head.ids.get(0));
        let mut de = grad_block(grad, 0, self.n_max, self.head_dim);
        // the content scores, then ∂L/∂p, then ∂L/∂c, row by row in place
        let mut dc = work.skewed.slice_mut(s![.., ..n]);
        small_matmul(scale, head.q.view(), head.k.t(), F::zero(), dc.view_mut());
        let gates = &mut work.v;
        for i in 0..n {
            let q = head.q.row(i);
            let mut p = F::zero();
            for j in (0..=i).rev() {
                let g = sigmoid(dc[[i, j]]);
                gates[j] = g;
                p += g;
                let at = Between::new(p, top);
                let a = scale * ds[[i, j]];
                let (a_lo, a_hi) = (a * (F::one() - at.w), a * at.w);
                dq.row_mut(i).scaled_add(a_lo, &e.row(at.lo));
                dq.row_mut(i).scaled_add(a_hi, &e.row(at.hi));
                de.row_mut(at.lo).scaled_add(a_lo, &q);
                de.row_mut(at.hi).scaled_add(a_hi, &q);
                dc[[i, j]] = a * (z(&q, &e, at.hi) - z(&q, &e, at.lo));
            }
            let mut dg = F::zero();
            for j in 0..=i {
                dg += dc[[i, j]];
                dc[[i, j]] = dg * gates[j] * (F::one() - gates[j]);
            }
            dc.row_mut(i).slice_mut(s![i + 1..]).fill(F::zero());
        }
        small_matmul(scale, dc.view(), head.k.view(), F::one(), dq.view_mut());
        small_matmul(scale, dc.t(), head.q.view(), F::one(), dk.view_mut());
    }

    fn fold_grads(&self, total: &[F], _p: &Params<F>, ids: &FamilyIds, _derived: ArrayView2<F>, grads: &mut Params<F>) {
        add_grad_block(grads, ids.get(0), total, 0);
    }
}

#[cfg(feature = "candle")]
mod on_candle {
    use crate::family::candle::{CandleCx, CandleTerms, ScoreTerms, against_shared, tensor_from};
    use candle_core::{D, DType, Device, Result, Tensor};

    /// E_ij = q_i·e[p_ij] interpolated, for j ≤ i (0 after): p = (σ(c) ⊙ L)·L with L the
    /// lower-triangular ones [n, n] (L_kj = 1 where k ≥ j, so (g·L)_ij = Σ_{k≥j} g_ik), the
    /// floor from a detached copy of p, and z = q·eᵀ gathered at f and f⁺.
    pub struct Contextual;

    impl CandleTerms for Contextual {
        fn constants(&self, n: usize, dtype: DType, device: &Device) -> Result<Vec<Tensor>> {
            let lower: Vec<f64> = (0..n * n).map(|k| if k % n <= k / n { 1.0 } else { 0.0 }).collect();
            Ok(vec![tensor_from(&lower, &[n, n], dtype, device)?])
        }

        fn score_terms(&self, cx: &CandleCx, q: &Tensor, k: &Tensor) -> Result<Option<ScoreTerms>> {
            let lower = &cx.constants[0];
            let top = (cx.dims.n_max - 1) as f64;
            let c = q.matmul(&k.t()?)?.affine(1.0 / (cx.dims.head_dim as f64).sqrt(), 0.0)?;
            // σ(c) = (tanh(c/2) + 1)/2, then the mask
            let g = c.affine(0.5, 0.0)?.tanh()?.affine(0.5, 0.5)?.broadcast_mul(lower)?;
            let p = g.broadcast_matmul(lower)?.minimum(top)?;
            let f = p.detach().floor()?;
            let w = (&p - &f)?;
            let index = |t: &Tensor| t.to_dtype(DType::U32)?.contiguous();
            let (lo, hi) = (index(&f)?, index(&(&f + 1.0)?.minimum(top)?)?);
            let z = against_shared(q, cx.tensor(0))?.contiguous()?;
            let (z_lo, z_hi) = (z.gather(&lo, D::Minus1)?, z.gather(&hi, D::Minus1)?);
            let extra = (&z_lo + (w * (z_hi - &z_lo)?)?)?.broadcast_mul(lower)?;
            Ok(Some(ScoreTerms { q: q.clone(), k: k.clone(), extra: Some(extra) }))
        }
    }
}
