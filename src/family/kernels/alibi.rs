//! ALiBi (Press et al.): scores − m_h·|j − i| with fixed geometric slopes (no parameters).

use crate::float::Float;
use ndarray::Array2;

fn power_of_two_slopes(heads: usize) -> Vec<f64> {
    let start = 2f64.powf(-8.0 / heads as f64);
    (1..=heads).map(|h| start.powi(h as i32)).collect()
}

/// Slopes m_h = 2^(−8h/H) for H a power of two; otherwise the paper's interpolation: the
/// slopes of the largest power of two below H, then every other slope of twice that.
pub fn slopes(heads: usize) -> Vec<f64> {
    if heads.is_power_of_two() {
        return power_of_two_slopes(heads);
    }
    let closest = 1usize << (usize::BITS - 1 - heads.leading_zeros());
    let mut out = power_of_two_slopes(closest);
    out.extend(power_of_two_slopes(2 * closest).into_iter().step_by(2).take(heads - closest));
    out
}

/// The ALiBi term per head and offset index: −m_h·|o − (n_max − 1)|, [heads, 2·n_max − 1].
pub fn offset_bias<F: Float>(heads: usize, n_max: usize) -> Array2<F> {
    let m = slopes(heads);
    Array2::from_shape_fn((heads, 2 * n_max - 1), |(h, o)| F::c(-m[h] * o.abs_diff(n_max - 1) as f64))
}
