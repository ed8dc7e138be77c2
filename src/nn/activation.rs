//! Element-wise activations of the feed-forward layer.

use crate::config::Activation;
use crate::float::Float;
use ndarray::{ArrayView2, ArrayViewMut2, Zip};

/// Φ(x) = (1 + erf(x/√2))/2, the standard normal distribution function.
pub fn normal_cdf<F: Float>(x: F) -> F {
    F::c(0.5) * (F::one() + (x * F::c(std::f64::consts::FRAC_1_SQRT_2)).erf())
}

/// y = act(x) element-wise; for GELU (exact form x·Φ(x)) also keeps Φ(x) in `cdf` for the
/// backward pass.
pub fn activation_forward<F: Float>(kind: Activation, y: ArrayViewMut2<F>, cdf: ArrayViewMut2<F>, x: ArrayView2<F>) {
    match kind {
        Activation::Gelu => Zip::from(y).and(cdf).and(x).for_each(|y, c, &x| {
            *c = normal_cdf(x);
            *y = x * *c;
        }),
        Activation::Relu => Zip::from(y).and(x).for_each(|y, &x| *y = x.max(F::zero())),
    }
}

/// Backward, in place: `d` holds ∂L/∂y on entry and ∂L/∂x on exit. GELU:
/// ∂y/∂x = Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π); ReLU: 1 for x > 0, else 0.
pub fn activation_backward<F: Float>(kind: Activation, d: ArrayViewMut2<F>, cdf: ArrayView2<F>, x: ArrayView2<F>) {
    match kind {
        Activation::Gelu => {
            let inv_sqrt_2pi = F::c(1.0 / (2.0 * std::f64::consts::PI).sqrt());
            Zip::from(d).and(cdf).and(x).for_each(|d, &c, &x| {
                *d *= c + x * inv_sqrt_2pi * (F::c(-0.5) * x * x).exp();
            })
        }
        Activation::Relu => Zip::from(d).and(x).for_each(|d, &x| {
            if x <= F::zero() {
                *d = F::zero();
            }
        }),
    }
}
