//! Element-wise activations of the feed-forward layer.

use crate::config::Activation;
use crate::float::Float;
use ndarray::{ArrayView2, ArrayViewMut2, Zip};

/// GELU, exact form: gelu(x) = x/2 · (1 + erf(x/√2)).
pub fn gelu<F: Float>(x: F) -> F {
    F::c(0.5) * x * (F::one() + (x * F::c(std::f64::consts::FRAC_1_SQRT_2)).erf())
}

/// y = act(x) element-wise.
pub fn activation_forward<F: Float>(kind: Activation, y: ArrayViewMut2<F>, x: ArrayView2<F>) {
    match kind {
        Activation::Gelu => Zip::from(y).and(x).for_each(|y, &x| *y = gelu(x)),
        Activation::Relu => Zip::from(y).and(x).for_each(|y, &x| *y = x.max(F::zero())),
    }
}
