//! Attention normalisers, one module each, and the list of them: what turns a row of
//! scores into the row of weights A (softmax is the only one so far). A normaliser says
//! whether its rows always sum to one (right-stochastic A, which Proposition 1 needs) and
//! gives its row forward and backward to the ndarray engine.

mod softmax;

use crate::float::Float;

/// A normaliser's row operations for float type `F`.
pub trait Rows<F>: Send + Sync {
    /// a = normalise(s) for one row of scores (masked entries hold −∞).
    fn forward(&self, a: &mut [F], s: &[F]);

    /// Backward in place: `d` holds ∂L/∂a on entry and ∂L/∂s on exit; `a` is the forward
    /// output.
    fn backward(&self, d: &mut [F], a: &[F]);
}

/// An attention normaliser.
pub trait Normaliser: Send + Sync + 'static {
    /// The name as configuration files will spell it.
    fn name(&self) -> &'static str;

    /// One line: the formula.
    fn about(&self) -> &'static str;

    /// True when every row of A sums to one whatever the scores.
    fn right_stochastic(&self) -> bool;

    /// Why, in one line.
    fn reason(&self) -> &'static str;

    /// The row operations in f32.
    fn rows_f32(&self) -> &dyn Rows<f32>;

    /// The row operations in f64.
    fn rows_f64(&self) -> &dyn Rows<f64>;
}

/// softmax_j(s_ij), the normaliser of every model today.
pub const SOFTMAX: &dyn Normaliser = &softmax::Softmax;

/// Every normaliser.
pub const ALL: [&dyn Normaliser; 1] = [SOFTMAX];

/// `normaliser`'s row operations in float type `F` (f32 or f64, the two [`Float`] types).
pub fn rows<F: Float>(normaliser: &'static dyn Normaliser) -> &'static dyn Rows<F> {
    let any: &dyn std::any::Any = if std::any::TypeId::of::<F>() == std::any::TypeId::of::<f32>() {
        &normaliser.rows_f32() as &dyn std::any::Any
    } else {
        &normaliser.rows_f64() as &dyn std::any::Any
    };
    *any.downcast_ref::<&'static dyn Rows<F>>().expect("Float is f32 or f64")
}
