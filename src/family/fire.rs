//! `fire` (Li et al. 2023, "Functional Interpolation for Relative Positions"): a learned
//! function of (i, j) added to the scores, after the 1/√d_h scale like `t5` and `kerple`:
//!
//! - b_h(i, j) = f_θ(x_ij)_h, with x_ij = ψ̃(i − j)/ψ(max(L, i)), positions i, j from 0;
//! - ψ(t) = ln(1 + c·t) for t ≥ 0 and ψ̃(t) = sign(t)·ψ(|t|), its odd extension (the paper
//!   is causal, i − j ≥ 0; the odd extension is our choice, so that bidirectional attention
//!   keeps the direction of key j from query i);
//! - f_θ: R → R^heads, one hidden layer of H = 32 ReLU units:
//!   f(x)_h = b2_h + Σ_k w2[h, k]·relu(w1_k·x + b1_k);
//! - c = 0.1·e^{ρ_c} and L = n_max·e^{ρ_L}, from the learned ρ = (ρ_c, ρ_L).
//!
//! Tensors under the family prefix: `fire.w1` [H] and `fire.b1` [H] drawn N(0, 1) (so the
//! ReLUs bend at different x), `fire.w2` [heads, H] drawn N(0, 0.02²) like the other
//! position tensors, `fire.b2` [heads] and `fire.rho` [2] zeros: at the start c = 0.1 (the
//! paper's initialisation) and L = n_max, so x = ψ̃(i − j)/ψ(n_max) depends on i − j alone
//! over the whole training length; a query beyond L divides by ψ(i) instead (the paper's
//! progressive interpolation, which keeps x in [−1, 1] for j ≤ i). Under softmax b2_h shifts
//! every score of a row equally and changes nothing (its gradient is zero up to rounding);
//! the other normalisers see it.
//!
//! The bias depends on (i, j) and not on n, so [`Terms::derive`] fills a per-layer table
//! [heads, n_max·n_max] once per forward (a sequence of length n reads its top-left n × n
//! block); the score backward accumulates ∂L/∂S into a buffer of the same layout, and
//! [`Terms::fold_grads`] runs the MLP's backward once per step.

use super::{FamilyDims, FamilyIds, Head, Placement, PositionFamily, Terms, WEIGHT, Work, grad_block_ref};
use crate::float::Float;
use crate::params::{Init, ParamLayout, Params};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2};

/// FIRE: a ReLU MLP of the log-warped, normalised offset, added to the scores.
pub struct Fire;

/// Hidden units H of the MLP f_θ.
pub const HIDDEN: usize = 32;

/// c at ρ_c = 0 (the paper's initial c).
pub const C_INIT: f64 = 0.1;

/// Indices of the declared tensors, in [`FamilyIds`] order.
const W1: usize = 0;
const B1: usize = 1;
const W2: usize = 2;
const B2: usize = 3;
const RHO: usize = 4;

impl PositionFamily for Fire {
    fn name(&self) -> &'static str {
        "fire"
    }

    fn about(&self) -> &'static str {
        "FIRE: scores + f_θ(ψ̃(i − j)/ψ(max(L, i)))_h, f_θ a ReLU MLP, ψ(t) = ln(1 + c·t), learned c and L"
    }

    fn score_term_is_bias(&self) -> bool {
        true
    }

    fn placement(&self) -> Placement {
        Placement { inside_softmax_only: true, reason: "a learned function of (i, j) added to the scores" }
    }

    fn declare(&self, t: &mut ParamLayout, prefix: &str, dims: &FamilyDims) -> FamilyIds {
        FamilyIds::new(&[
            t.push(format!("{prefix}.fire.w1"), &[HIDDEN], Init::Normal(1.0)),
            t.push(format!("{prefix}.fire.b1"), &[HIDDEN], Init::Normal(1.0)),
            t.push(format!("{prefix}.fire.w2"), &[dims.heads, HIDDEN], WEIGHT),
            t.push(format!("{prefix}.fire.b2"), &[dims.heads], Init::Zeros),
            t.push(format!("{prefix}.fire.rho"), &[2], Init::Zeros),
        ])
    }

    fn derived_shape(&self, dims: &FamilyDims) -> (usize, usize) {
        (dims.heads, dims.n_max * dims.n_max)
    }

    fn grad_len(&self, dims: &FamilyDims) -> usize {
        dims.heads * dims.n_max * dims.n_max
    }

    #[cfg(feature = "candle")]
    fn candle(&self, dims: &FamilyDims) -> Option<Box<dyn super::candle::CandleTerms>> {
        Some(Box::new(on_candle::FireBias(dims.n_max)))
    }

    fn terms_f32(&self, dims: &FamilyDims) -> Box<dyn Terms<f32>> {
        Box::new(FireBias { heads: dims.heads, n_max: dims.n_max })
    }

    fn terms_f64(&self, dims: &FamilyDims) -> Box<dyn Terms<f64>> {
        Box::new(FireBias { heads: dims.heads, n_max: dims.n_max })
    }
}

/// c and L of one layer, from ρ.
struct Warp<F> {
    c: F,
    l: F,
}

/// x_ij and its derivatives with respect to ρ_c and ρ_L.
struct Point<F> {
    x: F,
    d_rho_c: F,
    d_rho_l: F,
}

impl<F: Float> Warp<F> {
    fn new(rho: ArrayView1<F>, n_max: usize) -> Self {
        Warp { c: F::c(C_INIT) * rho[0].exp(), l: F::c(n_max as f64) * rho[1].exp() }
    }

    /// ψ(t) = ln(1 + c·t), t ≥ 0.
    fn psi(&self, t: F) -> F {
        (self.c * t).ln_1p()
    }

    /// x_ij = ψ̃(i − j)/ψ(m), m = max(L, i) (L where the two tie), with its slopes.
    fn point(&self, i: usize, j: usize) -> Point<F> {
        let t = F::c(i as f64 - j as f64);
        let (at_l, m) = if self.l >= F::c(i as f64) { (true, self.l) } else { (false, F::c(i as f64)) };
        let den = self.psi(m);
        let x = t.signum() * self.psi(t.abs()) / den; // ψ(0) = 0, so x = 0 at i = j
        // ∂ψ̃(t)/∂c = sign(t)·|t|/(1 + c|t|) = t/(1 + c|t|) and ∂ψ(m)/∂c = m/(1 + c·m), so
        // ∂x/∂c = (t/(1 + c|t|) − x·m/(1 + c·m))/ψ(m), and ∂c/∂ρ_c = c.
        let one = F::one();
        let cm = self.c * m / (one + self.c * m);
        let d_rho_c = (self.c * t / (one + self.c * t.abs()) - x * cm) / den;
        // Where m = L: ∂x/∂L = −x·ψ'(L)/ψ(L), ψ'(L) = c/(1 + c·L), and ∂L/∂ρ_L = L, so
        // ∂x/∂ρ_L = −x·c·L/((1 + c·L)·ψ(L)) (the same c·m/(1 + c·m) as above). Where i > L,
        // m = i and x does not depend on L.
        let d_rho_l = if at_l { -x * cm / den } else { F::zero() };
        Point { x, d_rho_c, d_rho_l }
    }
}

/// The MLP f_θ of one layer.
struct Mlp<'a, F> {
    w1: ArrayView1<'a, F>,
    b1: ArrayView1<'a, F>,
    w2: ArrayView2<'a, F>,
    b2: ArrayView1<'a, F>,
}

impl<'a, F: Float> Mlp<'a, F> {
    fn new(p: &'a Params<F>, ids: &FamilyIds) -> Self {
        Mlp { w1: p.vec(ids.get(W1)), b1: p.vec(ids.get(B1)), w2: p.mat(ids.get(W2)), b2: p.vec(ids.get(B2)) }
    }

    /// Pre-activations u_k = w1_k·x + b1_k.
    fn pre(&self, x: F, u: &mut [F; HIDDEN]) {
        for ((u, &w), &b) in u.iter_mut().zip(&self.w1).zip(&self.b1) {
            *u = w * x + b;
        }
    }

    /// f(x)_h = b2_h + Σ_k w2[h, k]·relu(u_k).
    fn out(&self, h: usize, u: &[F; HIDDEN]) -> F {
        self.b2[h] + self.w2.row(h).iter().zip(u).map(|(&w, &u)| w * u.max(F::zero())).sum::<F>()
    }
}

/// S_ij += b_h(i, j), read from the layer's table [heads, n_max·n_max].
struct FireBias {
    heads: usize,
    n_max: usize,
}

impl<F: Float> Terms<F> for FireBias {
    fn derive(&self, p: &Params<F>, ids: &FamilyIds, mut out: ArrayViewMut2<F>) {
        let (mlp, warp) = (Mlp::new(p, ids), Warp::new(p.vec(ids.get(RHO)), self.n_max));
        let mut u = [F::zero(); HIDDEN];
        for i in 0..self.n_max {
            for j in 0..self.n_max {
                mlp.pre(warp.point(i, j).x, &mut u);
                for h in 0..self.heads {
                    out[[h, i * self.n_max + j]] = mlp.out(h, &u);
                }
            }
        }
    }

    fn scores(&self, head: &Head<F>, mut s: ArrayViewMut2<F>, _work: &mut Work<F>) {
        let table = head.derived.row(head.h);
        for ((i, j), s) in s.indexed_iter_mut() {
            *s += table[i * self.n_max + j];
        }
    }

    fn scores_backward(
        &self,
        head: &Head<F>,
        ds: ArrayView2<F>,
        _dq: ArrayViewMut2<F>,
        _dk: ArrayViewMut2<F>,
        grad: &mut [F],
        _work: &mut Work<F>,
    ) {
        let size = self.n_max * self.n_max;
        let db = &mut grad[head.h * size..(head.h + 1) * size];
        for ((i, j), &g) in ds.indexed_iter() {
            db[i * self.n_max + j] += g;
        }
    }

    fn fold_grads(&self, total: &[F], p: &Params<F>, ids: &FamilyIds, _derived: ArrayView2<F>, grads: &mut Params<F>) {
        let g = grad_block_ref(total, 0, self.heads, self.n_max * self.n_max);
        let (mlp, warp) = (Mlp::new(p, ids), Warp::new(p.vec(ids.get(RHO)), self.n_max));
        let (mut dw1, mut db1) = (Array1::<F>::zeros(HIDDEN), Array1::<F>::zeros(HIDDEN));
        let (mut dw2, mut db2) = (Array2::<F>::zeros((self.heads, HIDDEN)), Array1::<F>::zeros(self.heads));
        let mut drho = Array1::<F>::zeros(2);
        let mut u = [F::zero(); HIDDEN];
        for i in 0..self.n_max {
            for j in 0..self.n_max {
                // ∂L/∂b_h(i, j), summed over the batch; entries no sequence reached add nothing
                let gb = g.column(i * self.n_max + j);
                if gb.iter().all(|&v| v == F::zero()) {
                    continue;
                }
                let point = warp.point(i, j);
                mlp.pre(point.x, &mut u);
                // ∂b_h/∂b2_h = 1, ∂b_h/∂w2[h, k] = relu(u_k)
                db2 += &gb;
                for (h, &gh) in gb.iter().enumerate() {
                    for (k, &uk) in u.iter().enumerate() {
                        dw2[[h, k]] += gh * uk.max(F::zero());
                    }
                }
                // ∂L/∂u_k = [u_k > 0]·Σ_h ∂L/∂b_h·w2[h, k]; u_k = w1_k·x + b1_k
                let mut dx = F::zero();
                for (k, &uk) in u.iter().enumerate() {
                    if uk > F::zero() {
                        let du = gb.iter().zip(mlp.w2.column(k)).map(|(&gh, &w)| gh * w).sum::<F>();
                        db1[k] += du;
                        dw1[k] += du * point.x;
                        dx += du * mlp.w1[k];
                    }
                }
                drho[0] += dx * point.d_rho_c;
                drho[1] += dx * point.d_rho_l;
            }
        }
        let add = |mut to: ndarray::ArrayViewMut1<F>, from: &Array1<F>| to.zip_mut_with(from, |a, &b| *a += b);
        add(grads.vec_mut(ids.get(W1)), &dw1);
        add(grads.vec_mut(ids.get(B1)), &db1);
        grads.mat_mut(ids.get(W2)).zip_mut_with(&dw2, |a, &b| *a += b);
        add(grads.vec_mut(ids.get(B2)), &db2);
        add(grads.vec_mut(ids.get(RHO)), &drho);
    }
}

#[cfg(feature = "candle")]
mod on_candle {
    use super::{B1, B2, C_INIT, HIDDEN, RHO, W1, W2};
    use crate::family::candle::{CandleCx, CandleTerms, tensor_from};
    use candle_core::{DType, Device, Result, Tensor};

    /// b_h(i, j) laid out [h, n, n] as a graph over w1, b1, w2, b2 and ρ (n_max inside).
    pub struct FireBias(pub(super) usize);

    impl CandleTerms for FireBias {
        /// sign(i − j) [n, n], |i − j| [n, n] and i [n, 1].
        fn constants(&self, n: usize, dtype: DType, device: &Device) -> Result<Vec<Tensor>> {
            let offset = |k: usize| (k / n) as f64 - (k % n) as f64;
            let sign: Vec<f64> =
                (0..n * n).map(|k| (offset(k) > 0.0) as u8 as f64 - (offset(k) < 0.0) as u8 as f64).collect();
            let dist: Vec<f64> = (0..n * n).map(|k| offset(k).abs()).collect();
            let rows: Vec<f64> = (0..n).map(|i| i as f64).collect();
            Ok(vec![
                tensor_from(&sign, &[n, n], dtype, device)?,
                tensor_from(&dist, &[n, n], dtype, device)?,
                tensor_from(&rows, &[n, 1], dtype, device)?,
            ])
        }

        fn learned_bias(&self, cx: &CandleCx) -> Result<Option<Tensor>> {
            let (n, heads) = (cx.n, cx.dims.heads);
            let (sign, dist, rows) = (&cx.constants[0], &cx.constants[1], &cx.constants[2]);
            let rho = cx.tensor(RHO);
            let c = (rho.narrow(0, 0, 1)?.exp()? * C_INIT)?;
            let l = (rho.narrow(0, 1, 1)?.exp()? * self.0 as f64)?;
            // ψ(t) = ln(1 + c·t)
            let psi = |t: &Tensor| (t.broadcast_mul(&c)? + 1.0)?.log();
            let x = (psi(dist)? * sign)?.broadcast_div(&psi(&rows.broadcast_maximum(&l)?)?)?;
            let u = x.reshape((n * n, 1))?.broadcast_mul(&cx.tensor(W1).reshape((1, HIDDEN))?)?;
            let hidden = u.broadcast_add(&cx.tensor(B1).reshape((1, HIDDEN))?)?.relu()?;
            // [heads, H]·[H, n²] + b2
            let out = cx.tensor(W2).matmul(&hidden.t()?)?.broadcast_add(&cx.tensor(B2).reshape((heads, 1))?)?;
            Ok(Some(out.reshape((heads, n, n))?))
        }
    }
}
