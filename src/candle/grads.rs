//! Gradients of a candle model's variables, summed as the backward pass reaches them.

use crate::nn::TensorId;
use candle_core::{DType, Tensor};

/// Parameter gradients by tensor id, summed over every use (shared position tables), in
/// the variables' type.
pub struct Grads {
    slots: Vec<Option<Tensor>>,
    dtype: DType,
}

impl Grads {
    /// No gradient yet for any of `len` tensors of type `dtype`.
    pub fn new(len: usize, dtype: DType) -> Self {
        Grads { slots: vec![None; len], dtype }
    }

    /// Adds `g` (cast to the variables' type: a bf16 product's gradient is summed in f32)
    /// to the gradient of tensor `id`.
    pub fn add(&mut self, id: TensorId, g: Tensor) -> candle_core::Result<()> {
        let g = g.to_dtype(self.dtype)?;
        let slot = &mut self.slots[id.0];
        *slot = Some(match slot.take() {
            Some(sum) => (sum + g)?,
            None => g,
        });
        Ok(())
    }

    /// The gradient of every tensor in id order; `None` where the pass never reached it.
    pub fn into_slots(self) -> Vec<Option<Tensor>> {
        self.slots
    }
}
