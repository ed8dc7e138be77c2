//! The scalar type of the engine: every numeric routine is generic over `f32` (training,
//! inference) and `f64` (gradient checks, exact comparisons).

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// A floating-point scalar the engine can run on: `f32` or `f64`.
pub trait Float:
    num_traits::Float
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + num_traits::FromPrimitive
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + Debug
    + Display
    + Default
    + Send
    + Sync
    + 'static
{
    /// Machine epsilon of the type, as `f64`.
    const EPSILON_F64: f64;
    /// Name of the type as numpy spells it (`float32`, `float64`).
    const NAME: &'static str;

    /// Converts an `f64` constant to this type (rounding to nearest for `f32`).
    fn c(x: f64) -> Self;
    /// Converts to `f64` exactly.
    fn f64(self) -> f64;
    /// Converts to `f32` (rounding to nearest for `f64`).
    fn f32(self) -> f32;
    /// The error function erf(x) = 2/√π ∫₀ˣ e^(−t²) dt.
    fn erf(self) -> Self;
    /// eˣ, inlinable so loops over slices vectorise: f32 uses a polynomial within 2 ulp
    /// (exactly 0 below −87.3, so masked scores vanish), f64 the exact libm routine.
    fn exp_fast(self) -> Self;
    /// erf(x), inlinable: f32 uses a rational approximation within 5e-7 absolute, f64
    /// the exact libm routine.
    fn erf_fast(self) -> Self;
}

/// eˣ for f32 by Cody–Waite range reduction x = k·ln2 + r, |r| ≤ ln2/2, and a degree-6
/// polynomial for eʳ (the Cephes coefficients), scaled by 2ᵏ through the exponent bits.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding and subtracting it rounds to the nearest integer with plain float
    // arithmetic (`round` would be a library call that stops vectorisation)
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.3, 88.7);
    let shifted = xc * std::f32::consts::LOG2_E + ROUND;
    let k = shifted - ROUND;
    let r = xc - k * LN2_HI - k * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2ᵏ: k sits in the low mantissa bits of `shifted` (its bits are those of ROUND plus
    // k), read as an integer without a float-to-int conversion (`k as i32` saturates, which
    // compiles to scalar code in the middle of a vectorised loop)
    let k_int = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(k_int.wrapping_add(127) << 23);
    if x < -87.3 { 0.0 } else { y * scale }
}

/// erf(x) for f32: x·P(x²)/Q(x²) on x clamped to [−4, 4] (erf is ±1 in f32 beyond).
#[inline(always)]
fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 + -2.101_024e-6;
    p = p * x2 + -5.692_506_4e-5;
    p = p * x2 + -7.349_906_3e-4;
    p = p * x2 + -2.954_6e-3;
    p = p * x2 + -1.609_603_3e-2;
    let mut q = -1.456_607_2e-5f32;
    q = q * x2 + -2.133_740_6e-4;
    q = q * x2 + -1.682_827e-3;
    q = q * x2 + -7.373_329e-3;
    q = q * x2 + -1.426_473_9e-2;
    x * p / q
}

impl Float for f32 {
    const EPSILON_F64: f64 = f32::EPSILON as f64;
    const NAME: &'static str = "float32";
    fn c(x: f64) -> Self {
        x as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
    fn f32(self) -> f32 {
        self
    }
    fn erf(self) -> Self {
        libm::erff(self)
    }
    #[inline(always)]
    fn exp_fast(self) -> Self {
        exp_f32(self)
    }
    #[inline(always)]
    fn erf_fast(self) -> Self {
        erf_f32(self)
    }
}

impl Float for f64 {
    const EPSILON_F64: f64 = f64::EPSILON;
    const NAME: &'static str = "float64";
    fn c(x: f64) -> Self {
        x
    }
    fn f64(self) -> f64 {
        self
    }
    fn f32(self) -> f32 {
        self as f32
    }
    fn erf(self) -> Self {
        libm::erf(self)
    }
    #[inline(always)]
    fn exp_fast(self) -> Self {
        self.exp()
    }
    #[inline(always)]
    fn erf_fast(self) -> Self {
        libm::erf(self)
    }
}

/// Σ_k x_k with eight partial sums, combined as ((0+4)+(1+5))+((2+6)+(3+7)), then the
/// remainder in order: a fixed order, so results are reproducible, and one that vectorises.
#[inline]
pub fn lane_sum<F: Float>(x: &[F]) -> F {
    lane_fold(x, F::zero(), |acc, v| acc + v, |a, b| a + b)
}

/// Σ_k x_k·y_k over the common length, with eight partial sums as [`lane_sum`].
#[inline]
pub fn lane_dot<F: Float>(x: &[F], y: &[F]) -> F {
    let len = x.len().min(y.len());
    let (x, y) = (&x[..len], &y[..len]);
    let mut acc = [F::zero(); 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for k in 0..8 {
            acc[k] += a[k] * b[k];
        }
    }
    xr.iter().zip(yr).fold(combine_lanes(&acc, |a, b| a + b), |s, (&a, &b)| s + a * b)
}

/// Σ_k x_k accumulated in f64, with eight partial sums as [`lane_sum`].
#[inline]
pub fn lane_sum_f64<F: Float>(x: &[F]) -> f64 {
    lane_sum_f64_of(x, |v| v.f64())
}

/// Σ_k f(x_k) accumulated in f64, with eight partial sums as [`lane_sum`].
#[inline(always)]
pub fn lane_sum_f64_of<F: Float>(x: &[F], f: impl Fn(F) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] += f(c[k]);
        }
    }
    rest.iter().fold(combine_lanes(&acc, |a, b| a + b), |s, &v| s + f(v))
}

/// max(start, max_k x_k) in eight lanes; the maximum does not depend on the order. NaN
/// entries are ignored, as by `max`.
#[inline]
pub fn lane_max<F: Float>(x: &[F], start: F) -> F {
    lane_fold(x, start, |acc, v| acc.max(v), |a, b| a.max(b))
}

/// Folds `x` in eight lanes started at `init` with `step`, then combines the lanes with
/// `combine` as ((0+4)+(1+5))+((2+6)+(3+7)) and folds the remainder in order.
#[inline(always)]
fn lane_fold<F: Float>(x: &[F], init: F, step: impl Fn(F, F) -> F, combine: impl Fn(F, F) -> F) -> F {
    let mut acc = [init; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] = step(acc[k], c[k]);
        }
    }
    rest.iter().fold(combine_lanes(&acc, combine), |a, &v| step(a, v))
}

/// The eight lanes combined as ((0+4)+(1+5))+((2+6)+(3+7)), + being `combine`.
#[inline(always)]
fn combine_lanes<T: Copy>(acc: &[T; 8], combine: impl Fn(T, T) -> T) -> T {
    combine(
        combine(combine(acc[0], acc[4]), combine(acc[1], acc[5])),
        combine(combine(acc[2], acc[6]), combine(acc[3], acc[7])),
    )
}
