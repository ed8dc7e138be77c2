//! Element-wise activations of the feed-forward layer.

use crate::config::Activation;
use crate::float::Float;
use ndarray::{ArrayView2, ArrayViewMut2};

/// Φ(x) = (1 + erf(x/√2))/2, the standard normal distribution function.
#[inline(always)]
pub fn normal_cdf<F: Float>(x: F) -> F {
    F::c(0.5) * (F::one() + (x * F::c(std::f64::consts::FRAC_1_SQRT_2)).erf_fast())
}

fn slice<'a, F>(a: &'a ArrayView2<F>) -> &'a [F] {
    a.as_slice().expect("activations are contiguous")
}

/// y = act(x) element-wise; for GELU (exact form x·Φ(x)) also keeps Φ(x) in `cdf` for the
/// backward pass.
pub fn activation_forward<F: Float>(
    kind: Activation,
    mut y: ArrayViewMut2<F>,
    mut cdf: ArrayViewMut2<F>,
    x: ArrayView2<F>,
) {
    let y = y.as_slice_mut().expect("contiguous");
    match kind {
        Activation::Gelu => {
            let cdf = cdf.as_slice_mut().expect("contiguous");
            for ((y, c), &x) in y.iter_mut().zip(cdf.iter_mut()).zip(slice(&x)) {
                *c = normal_cdf(x);
                *y = x * *c;
            }
        }
        Activation::Relu => y.iter_mut().zip(slice(&x)).for_each(|(y, &x)| *y = x.max(F::zero())),
    }
}

/// Backward, in place: `d` holds ∂L/∂y on entry and ∂L/∂x on exit. GELU:
/// ∂y/∂x = Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π); ReLU: 1 for x > 0, else 0.
pub fn activation_backward<F: Float>(kind: Activation, mut d: ArrayViewMut2<F>, cdf: ArrayView2<F>, x: ArrayView2<F>) {
    let d = d.as_slice_mut().expect("contiguous");
    match kind {
        Activation::Gelu => {
            let inv_sqrt_2pi = F::c(1.0 / (2.0 * std::f64::consts::PI).sqrt());
            for ((d, &c), &x) in d.iter_mut().zip(slice(&cdf)).zip(slice(&x)) {
                *d *= c + x * inv_sqrt_2pi * (F::c(-0.5) * x * x).exp_fast();
            }
        }
        Activation::Relu => d.iter_mut().zip(slice(&x)).for_each(|(d, &x)| {
            if x <= F::zero() {
                *d = F::zero();
            }
        }),
    }
}
