//! `kerple` (Chi et al. 2022), the logarithmic kernel: scores − r₁·log(1 + r₂·|j − i|) per
//! head, with r = softplus(ρ) > 0 from the learned ρ (`{prefix}.kerple`, [heads, 2]: ρ₁, ρ₂).

use super::kernels::sigmoid;
use super::{FamilyDims, FamilyIds, Head, Placement, PositionFamily, Terms, WEIGHT, Work, add_grad_block, grad_block};
use crate::float::Float;
use crate::params::{ParamLayout, Params};
use ndarray::{ArrayView2, ArrayViewMut2};

/// KERPLE's logarithmic variant.
pub struct Kerple;

impl PositionFamily for Kerple {
    fn name(&self) -> &'static str {
        "kerple"
    }

    fn about(&self) -> &'static str {
        "KERPLE, logarithmic: scores − r₁·log(1 + r₂·|j − i|), r = softplus(ρ) per head"
    }

    fn placement(&self) -> Placement {
        Placement { inside_softmax_only: true, reason: "a term in the scores" }
    }

    fn score_term_is_bias(&self) -> bool {
        true
    }

    fn declare(&self, t: &mut ParamLayout, prefix: &str, dims: &FamilyDims) -> FamilyIds {
        FamilyIds::new(&[t.push(format!("{prefix}.kerple"), &[dims.heads, 2], WEIGHT)])
    }

    fn grad_len(&self, dims: &FamilyDims) -> usize {
        2 * dims.heads
    }

    #[cfg(feature = "candle")]
    fn candle(&self, _dims: &FamilyDims) -> Option<Box<dyn super::candle::CandleTerms>> {
        Some(Box::new(on_candle::LogKernel))
    }

    fn terms_f32(&self, dims: &FamilyDims) -> Box<dyn Terms<f32>> {
        Box::new(LogKernel { heads: dims.heads })
    }

    fn terms_f64(&self, dims: &FamilyDims) -> Box<dyn Terms<f64>> {
        Box::new(LogKernel { heads: dims.heads })
    }
}

/// softplus(x) = log(1 + eˣ), computed without overflow.
fn softplus<F: Float>(x: F) -> F {
    x.max(F::zero()) + (-x.abs()).exp().ln_1p()
}

/// S_ij −= r₁·log(1 + r₂·|j − i|) for the head's (r₁, r₂).
struct LogKernel {
    heads: usize,
}

impl LogKernel {
    fn rho<F: Float>(head: &Head<F>) -> (F, F) {
        let p = head.params.mat(head.ids.get(0));
        (p[[head.h, 0]], p[[head.h, 1]])
    }
}

impl<F: Float> Terms<F> for LogKernel {
    fn scores(&self, head: &Head<F>, mut s: ArrayViewMut2<F>, _work: &mut Work<F>) {
        let (rho1, rho2) = Self::rho(head);
        let (r1, r2) = (softplus(rho1), softplus(rho2));
        for ((i, j), s) in s.indexed_iter_mut() {
            *s -= r1 * (r2 * F::c(i.abs_diff(j) as f64)).ln_1p();
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
        let (rho1, rho2) = Self::rho(head);
        let (r1, r2) = (softplus(rho1), softplus(rho2));
        let (mut d1, mut d2) = (F::zero(), F::zero());
        for ((i, j), &g) in ds.indexed_iter() {
            let d = F::c(i.abs_diff(j) as f64);
            // ∂S/∂r₁ = −log(1 + r₂d), ∂S/∂r₂ = −r₁d/(1 + r₂d)
            d1 -= g * (r2 * d).ln_1p();
            d2 -= g * r1 * d / (F::one() + r2 * d);
        }
        let mut block = grad_block(grad, 0, self.heads, 2);
        block[[head.h, 0]] += d1 * sigmoid(rho1);
        block[[head.h, 1]] += d2 * sigmoid(rho2);
    }

    fn fold_grads(&self, total: &[F], _p: &Params<F>, ids: &FamilyIds, _derived: ArrayView2<F>, grads: &mut Params<F>) {
        add_grad_block(grads, ids.get(0), total, 0);
    }
}

#[cfg(feature = "candle")]
mod on_candle {
    use crate::family::candle::{CandleCx, CandleTerms, tensor_from};
    use candle_core::{DType, Device, Result, Tensor};

    /// −r₁·log(1 + r₂·|j − i|) laid out [h, n, n] as a graph over ρ.
    pub struct LogKernel;

    impl CandleTerms for LogKernel {
        fn constants(&self, n: usize, dtype: DType, device: &Device) -> Result<Vec<Tensor>> {
            let dist: Vec<f64> = (0..n * n).map(|k| (k / n).abs_diff(k % n) as f64).collect();
            Ok(vec![tensor_from(&dist, &[1, n, n], dtype, device)?])
        }

        fn learned_bias(&self, cx: &CandleCx) -> Result<Option<Tensor>> {
            let heads = cx.dims.heads;
            // softplus(ρ) = log(1 + e^ρ); |ρ| stays small, so the direct form is exact enough
            let r = (cx.tensor(0).exp()? + 1.0)?.log()?;
            let (r1, r2) = (r.narrow(1, 0, 1)?.reshape((heads, 1, 1))?, r.narrow(1, 1, 1)?.reshape((heads, 1, 1))?);
            let inner = (cx.constants[0].broadcast_mul(&r2)? + 1.0)?.log()?;
            Ok(Some(inner.broadcast_mul(&r1)?.neg()?))
        }
    }
}
