//! Gradients of a candle model's variables, summed as the backward pass reaches them.

use crate::nn::TensorId;
use candle_core::Tensor;

/// Parameter gradients by tensor id, summed over every use (shared position tables).
pub struct Grads(Vec<Option<Tensor>>);

impl Grads {
    /// No gradient yet for any of `len` tensors.
    pub fn new(len: usize) -> Self {
        Grads(vec![None; len])
    }

    /// Adds `g` to the gradient of tensor `id`.
    pub fn add(&mut self, id: TensorId, g: Tensor) -> candle_core::Result<()> {
        let slot = &mut self.0[id.0];
        *slot = Some(match slot.take() {
            Some(sum) => (sum + g)?,
            None => g,
        });
        Ok(())
    }

    /// The gradient of every tensor in id order; `None` where the pass never reached it.
    pub fn into_slots(self) -> Vec<Option<Tensor>> {
        self.0
    }
}
