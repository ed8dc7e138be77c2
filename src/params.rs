//! Named parameter tensors in one flat buffer (the llm.c layout).
//!
//! A [`ParamLayout`] lists every tensor's name, shape and offset; a [`Params`] holds the
//! values. Optimisers, checkpoints and gradient checks walk the same list, and gradients
//! use the same layout, so a parameter and its gradient sit at the same offset.

use crate::float::Float;
use ndarray::{ArrayView1, ArrayView2, ArrayViewD, ArrayViewMut1, ArrayViewMut2, ArrayViewMutD, IxDyn};
use std::sync::Arc;

/// Index of a tensor in a [`ParamLayout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TensorId(pub usize);

/// Name, shape and place of one tensor in the flat buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    /// Checkpoint name, e.g. `layers.0.attn.q.weight`.
    pub name: String,
    /// Shape, row-vector convention (weights are [in, out]).
    pub shape: Vec<usize>,
    /// First element in the flat buffer.
    pub offset: usize,
    /// How the official initialisation fills it.
    pub init: Init,
}

/// Initial value of a tensor in the official initialisation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Independent N(0, std²) entries.
    Normal(f64),
    /// All zeros (biases).
    Zeros,
    /// All ones (LayerNorm gains, the URPE matrix C).
    Ones,
}

impl TensorSpec {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for a tensor without elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Range of the tensor in the flat buffer.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// The ordered list of tensors of a model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamLayout {
    specs: Vec<TensorSpec>,
    len: usize,
}

impl ParamLayout {
    /// Appends a tensor and returns its id.
    pub fn push(&mut self, name: impl Into<String>, shape: &[usize], init: Init) -> TensorId {
        let spec = TensorSpec { name: name.into(), shape: shape.to_vec(), offset: self.len, init };
        self.len += spec.len();
        self.specs.push(spec);
        TensorId(self.specs.len() - 1)
    }

    /// All tensors, in order.
    pub fn specs(&self) -> &[TensorSpec] {
        &self.specs
    }

    /// One tensor's spec.
    pub fn spec(&self, id: TensorId) -> &TensorSpec {
        &self.specs[id.0]
    }

    /// Looks a tensor up by name.
    pub fn find(&self, name: &str) -> Option<TensorId> {
        self.specs.iter().position(|s| s.name == name).map(TensorId)
    }

    /// Total number of scalars.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the model has no parameters.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Values of every tensor of a layout, in one contiguous buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Params<F> {
    /// The layout the buffer follows.
    pub layout: Arc<ParamLayout>,
    /// All values, tensor after tensor.
    pub data: Vec<F>,
}

impl<F: Float> Params<F> {
    /// All-zero values (the starting point of gradient accumulation).
    pub fn zeros(layout: Arc<ParamLayout>) -> Self {
        let data = vec![F::zero(); layout.len()];
        Params { layout, data }
    }

    /// Sets every value to zero.
    pub fn fill_zero(&mut self) {
        self.data.iter_mut().for_each(|x| *x = F::zero());
    }

    /// The flat values of one tensor.
    pub fn slice(&self, id: TensorId) -> &[F] {
        &self.data[self.layout.spec(id).range()]
    }

    /// The flat values of one tensor, mutable.
    pub fn slice_mut(&mut self, id: TensorId) -> &mut [F] {
        let range = self.layout.spec(id).range();
        &mut self.data[range]
    }

    /// One tensor with its own shape.
    pub fn view(&self, id: TensorId) -> ArrayViewD<'_, F> {
        let spec = self.layout.spec(id);
        ArrayViewD::from_shape(IxDyn(&spec.shape), &self.data[spec.range()]).expect("layout shape")
    }

    /// One tensor with its own shape, mutable.
    pub fn view_mut(&mut self, id: TensorId) -> ArrayViewMutD<'_, F> {
        let spec = self.layout.spec(id).clone();
        ArrayViewMutD::from_shape(IxDyn(&spec.shape), &mut self.data[spec.range()]).expect("layout shape")
    }

    /// A vector tensor.
    pub fn vec(&self, id: TensorId) -> ArrayView1<'_, F> {
        ArrayView1::from(self.slice(id))
    }

    /// A vector tensor, mutable.
    pub fn vec_mut(&mut self, id: TensorId) -> ArrayViewMut1<'_, F> {
        ArrayViewMut1::from(self.slice_mut(id))
    }

    /// A matrix tensor.
    pub fn mat(&self, id: TensorId) -> ArrayView2<'_, F> {
        let spec = self.layout.spec(id);
        ArrayView2::from_shape((spec.shape[0], spec.shape[1]), &self.data[spec.range()]).expect("a matrix")
    }

    /// A matrix tensor, mutable.
    pub fn mat_mut(&mut self, id: TensorId) -> ArrayViewMut2<'_, F> {
        let spec = self.layout.spec(id);
        let shape = (spec.shape[0], spec.shape[1]);
        let range = spec.range();
        ArrayViewMut2::from_shape(shape, &mut self.data[range]).expect("a matrix")
    }

    /// Converts every value to another float type.
    pub fn cast<G: Float>(&self) -> Params<G> {
        Params { layout: self.layout.clone(), data: self.data.iter().map(|x| G::c(x.f64())).collect() }
    }
}
