//! `rope`: queries and keys rotated by angles proportional to their positions (Su et al.),
//! so that q_iᵀk_j depends on j − i only.

use super::kernels::rope::RopeTables;
use super::{ConfigError, FamilyDims, Placement, PositionFamily, Side, Terms};
use crate::float::Float;
use ndarray::ArrayViewMut2;

/// Rotary embeddings: q_i and k_j rotated by angles ∝ i and j.
pub struct Rope;

impl PositionFamily for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn about(&self) -> &'static str {
        "rotary embeddings: q_i and k_j rotated by angles i·θ_k and j·θ_k"
    }

    fn placement(&self) -> Placement {
        Placement { inside_softmax_only: true, reason: "only the scores q_iᵀk_j change; V does not" }
    }

    fn validate(&self, dims: &FamilyDims) -> Result<(), ConfigError> {
        if !dims.head_dim.is_multiple_of(2) {
            return Err(ConfigError::new(
                "heads",
                dims.heads,
                format!(
                    "rope rotates pairs of features, so width / heads must be even (now {} / {} = {})",
                    dims.width, dims.heads, dims.head_dim
                ),
            ));
        }
        Ok(())
    }

    fn terms_f32(&self, dims: &FamilyDims) -> Box<dyn Terms<f32>> {
        Box::new(Rotation(RopeTables::new(dims.n_max, dims.head_dim, dims.rope_base)))
    }

    fn terms_f64(&self, dims: &FamilyDims) -> Box<dyn Terms<f64>> {
        Box::new(Rotation(RopeTables::new(dims.n_max, dims.head_dim, dims.rope_base)))
    }
}

/// The rotation of queries and keys by their positions.
struct Rotation<F>(RopeTables<F>);

impl<F: Float> Terms<F> for Rotation<F> {
    fn transforms(&self) -> bool {
        true
    }

    fn transform(&self, _side: Side, x: ArrayViewMut2<F>, transpose: bool) {
        self.0.rotate(x, if transpose { -F::one() } else { F::one() });
    }
}
