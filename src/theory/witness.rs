//! The exact URPE witness of docs/theory.md §5: one URPE attention layer with a residual
//! connection and no LayerNorm computes position-shift exactly on every input.
//!
//! W_Q = W_K = 0 and B = 0 make A = 11ᵀ/n; W_V = 0, b_V = u make V = 1uᵀ; W_O = I;
//! C lower-triangular ones (c_k = 1 for k = j − i ≤ 0) gives (A ⊙ C)V row i = (i/n)·u.
//! The input map and the head are the identity, the feed-forward layer is zero, so the
//! model computes x_i + p_i·u. Resetting C to ones gives the t5 model it came from,
//! whose rows on constant inputs are all equal (x + u).

use crate::config::{Family, InputKind, ModelConfig, ModelSpec, Norm, OutputKind};
use crate::error::Result;
use crate::float::Float;
use crate::nn::Model;
use crate::nn::layout::InputIds;

/// Configuration of the witness: t5 + URPE, depth 1, width d, no LayerNorm, real
/// d-dimensional input and output, n_max = n.
pub fn witness_config(n: usize, d: usize, heads: usize) -> Result<ModelConfig> {
    let mut spec =
        ModelSpec::new(Family::T5, 1, d, heads, n, InputKind::Real { d_in: d }, OutputKind::Real { d_out: d });
    spec.urpe = true;
    spec.ffn = Some(d);
    spec.norm = Some(Norm::None);
    Ok(spec.resolve()?)
}

fn set_identity<F: Float>(model: &mut Model<F>, id: crate::nn::TensorId) {
    let mut w = model.params.mat_mut(id);
    w.fill(F::zero());
    w.diag_mut().fill(F::one());
}

/// The witness model for sequences of length `n` and width `d` (`heads` must divide d).
pub fn witness_model<F: Float>(n: usize, d: usize, heads: usize) -> Result<Model<F>> {
    let mut model = Model::<F>::zeros(witness_config(n, d, heads)?)?;
    let layout = model.layout.clone();
    let InputIds::Linear(input) = layout.input else { unreachable!("real input") };
    set_identity(&mut model, input.weight);
    set_identity(&mut model, layout.head.weight);
    let attn = layout.layers[0].attn;
    set_identity(&mut model, attn.o.weight);
    model.params.slice_mut(attn.v.bias).fill(F::one());
    let gate = attn.pos.gate.expect("the witness has the gate");
    for mut row in model.params.mat_mut(gate).rows_mut() {
        // index o = (j − i) + n − 1 holds c_{j−i}: ones for j − i ≤ 0
        for (o, c) in row.iter_mut().enumerate() {
            *c = if o < n { F::one() } else { F::zero() };
        }
    }
    Ok(model)
}

/// The same weights with C reset to ones: the t5 model the witness came from. It is
/// bound by the barrier, so its constant-input error is at least the floor.
pub fn t5_twin<F: Float>(witness: &Model<F>) -> Model<F> {
    let mut twin = witness.clone();
    for layer in &witness.layout.layers {
        if let Some(gate) = layer.attn.pos.gate {
            twin.params.slice_mut(gate).fill(F::one());
        }
    }
    twin
}
