//! `nope`: no position information at all.

use super::{FamilyDims, NoTerms, Placement, PositionFamily, Terms};

/// No position information: attention sees content only.
pub struct Nope;

impl PositionFamily for Nope {
    fn name(&self) -> &'static str {
        "nope"
    }

    fn about(&self) -> &'static str {
        "no position information at all"
    }

    fn placement(&self) -> Placement {
        Placement { inside_softmax_only: true, reason: "nothing distinguishes the rows of a constant input at all" }
    }

    fn score_term_is_bias(&self) -> bool {
        true
    }

    fn carries_position(&self) -> bool {
        false
    }

    #[cfg(feature = "candle")]
    fn candle(&self, _dims: &FamilyDims) -> Option<Box<dyn super::candle::CandleTerms>> {
        Some(Box::new(super::candle::NoCandleTerms))
    }

    fn terms_f32(&self, _: &FamilyDims) -> Box<dyn Terms<f32>> {
        Box::new(NoTerms)
    }

    fn terms_f64(&self, _: &FamilyDims) -> Box<dyn Terms<f64>> {
        Box::new(NoTerms)
    }
}
