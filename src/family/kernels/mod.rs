//! The arithmetic that position families share: Toeplitz rows and the skewed layout
//! (offset j − i at index (j − i) + n_max − 1, see [`toeplitz`]), terms against a relative
//! table, sinusoids, rotary tables, ALiBi slopes, T5's buckets and the logistic function.

use crate::float::Float;

pub mod alibi;
pub mod relative;
pub mod rope;
pub mod sinusoid;
pub mod t5;
pub mod toeplitz;

/// σ(x) = 1/(1 + e⁻ˣ), the logistic function (the derivative of kerple's softplus, cope's
/// gates).
pub fn sigmoid<F: Float>(x: F) -> F {
    F::one() / (F::one() + (-x).exp())
}
