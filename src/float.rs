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
}
