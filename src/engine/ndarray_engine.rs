//! The ndarray engine: the batch is split into shards, their number set by the batch's
//! size alone ([`gradient_shards`]), that run forward and backward in parallel; their
//! gradients are summed in order and Adam updates the flat parameter buffer.

use super::{Engine, EngineShape, chunks};
use crate::error::Result;
use crate::float::Float;
use crate::nn::loss::{cross_entropy_loss, mse_loss};
use crate::nn::{BackwardWorkspace, ForwardCache, Model, ModelInput, Params};
use crate::optim::{Adam, AdamMoments, OptimConfig, grad_norm};
use crate::theory::{Inputs, Outputs, Sample};
use ndarray::{Array2, Array3, ArrayView2};
use rayon::prelude::*;

/// Flattened targets [rows, d] (real) or labels [rows] (classes).
enum FlatTargets<'a, F> {
    Real(ArrayView2<'a, F>),
    Classes(ndarray::ArrayView1<'a, usize>),
}

fn flat_targets<F: Float>(outputs: &Outputs<F>) -> FlatTargets<'_, F> {
    match outputs {
        Outputs::Real(y) => {
            let (b, n, d) = y.dim();
            FlatTargets::Real(y.view().into_shape_with_order((b * n, d)).expect("contiguous targets"))
        }
        Outputs::Classes(l) => {
            FlatTargets::Classes(l.view().into_shape_with_order(l.len()).expect("contiguous labels"))
        }
    }
}

/// The part of the batch loss that sequences `range` of the batch contribute (means over
/// the whole batch); writes ∂L/∂output of those sequences into `d_out`.
fn loss_part<F: Float>(
    d_out: &mut Array2<F>,
    output: ArrayView2<F>,
    targets: &Outputs<F>,
    range: (usize, usize),
) -> f64 {
    match flat_targets(targets) {
        FlatTargets::Real(y) => {
            let rows = y.nrows() / targets_batch(targets);
            let part = y.slice(ndarray::s![range.0 * rows..range.1 * rows, ..]);
            mse_loss(d_out.view_mut(), output, part, y.len())
        }
        FlatTargets::Classes(l) => {
            let rows = l.len() / targets_batch(targets);
            let part = l.slice(ndarray::s![range.0 * rows..range.1 * rows]);
            cross_entropy_loss(d_out.view_mut(), output, part, l.len())
        }
    }
}

fn targets_batch<F>(targets: &Outputs<F>) -> usize {
    match targets {
        Outputs::Real(y) => y.dim().0,
        Outputs::Classes(l) => l.dim().0,
    }
}

/// At most this many gradient shards per batch.
pub const MAX_GRADIENT_SHARDS: usize = 4;

/// Rows (sequences × length) a shard holds at least, when the batch has them: below that a
/// shard's products are so small that running shards apart costs more than it gains.
pub const SHARD_ROWS: usize = 256;

/// Gradient shards of a batch of `batch` sequences of length `n`:
/// clamp(⌊batch·n / 256⌋, 1, 4). Set by the batch's shape, never by the thread count, so
/// results are the same on any number of threads; shards run in parallel and their
/// gradients are summed in order.
///
/// ```
/// use urpe::engine::gradient_shards;
/// assert_eq!(gradient_shards(16, 16), 1); // the reproduce runs: one shard
/// assert_eq!(gradient_shards(64, 16), 4);
/// ```
pub fn gradient_shards(batch: usize, n: usize) -> usize {
    (batch * n / SHARD_ROWS).clamp(1, MAX_GRADIENT_SHARDS)
}

/// Caches and gradient buffer of one shard of the batch.
struct Shard<F> {
    range: (usize, usize),
    cache: ForwardCache<F>,
    ws: BackwardWorkspace<F>,
    grads: Params<F>,
    d_out: Array2<F>,
}

impl<F: Float> Shard<F> {
    fn new(model: &Model<F>, range: (usize, usize), n: usize) -> Self {
        let batch = range.1 - range.0;
        Shard {
            range,
            cache: ForwardCache::new(&model.config, batch, n),
            ws: BackwardWorkspace::new(model, batch, n),
            grads: Params::zeros(model.layout.tensors.clone()),
            d_out: Array2::zeros((batch * n, model.config.output.size())),
        }
    }

    /// Forward and backward of this shard of `sample`; returns its part of the loss.
    fn run(&mut self, model: &Model<F>, sample: &Sample<F>) -> Result<f64> {
        let (a, b) = self.range;
        let input = match &sample.inputs {
            Inputs::Tokens(t) => crate::nn::ModelInput::Tokens(t.slice(ndarray::s![a..b, ..])),
            Inputs::Real(x) => crate::nn::ModelInput::Real(x.slice(ndarray::s![a..b, .., ..])),
        };
        model.forward(&input, &mut self.cache)?;
        let loss = loss_part(&mut self.d_out, self.cache.output.view(), &sample.targets, self.range);
        self.grads.fill_zero();
        model.backward(&input, &self.cache, self.d_out.view(), &mut self.grads, &mut self.ws);
        Ok(loss)
    }
}

/// The ndarray engine's state.
pub struct NdarrayEngine {
    model: Model<f32>,
    adam: Adam<f32>,
    shards: Vec<Shard<f32>>,
    cache: ForwardCache<f32>,
}

impl NdarrayEngine {
    /// An engine for `model` with workspaces sized for batches of `shape`.
    pub fn new(model: Model<f32>, shape: EngineShape) -> Self {
        let (batch, n) = (shape.batch, shape.n);
        let shards = chunks(batch, batch.div_ceil(gradient_shards(batch, n)))
            .into_iter()
            .map(|r| Shard::new(&model, r, n))
            .collect();
        NdarrayEngine {
            adam: Adam::new(model.layout.tensors.len()),
            shards,
            cache: ForwardCache::new(&model.config, batch.min(shape.eval_batch), n),
            model,
        }
    }
}

impl Engine for NdarrayEngine {
    fn train_step(&mut self, sample: &Sample<f32>, lr: f64, optim: &OptimConfig) -> Result<(f64, f64)> {
        let model = &self.model;
        let losses: Vec<Result<f64>> = self.shards.par_iter_mut().map(|shard| shard.run(model, sample)).collect();
        let mut loss = 0.0;
        for part in losses {
            loss += part?;
        }
        // the batch gradient: the shards' sum, in order, into the first shard's buffer
        let (first, rest) = self.shards.split_first_mut().expect("at least one shard");
        for shard in rest {
            first.grads.data.iter_mut().zip(&shard.grads.data).for_each(|(g, &s)| *g += s);
        }
        let grads = &first.grads.data;
        let norm = grad_norm(grads);
        if loss.is_finite() && norm.is_finite() {
            self.adam.step(&mut self.model.params.data, grads, norm, lr, optim);
        }
        Ok((loss, norm))
    }

    fn predict(&mut self, input: &ModelInput<f32>) -> Result<Array3<f32>> {
        Ok(self.model.forward(input, &mut self.cache)?.to_owned())
    }

    fn model(&self) -> Result<Model<f32>> {
        Ok(self.model.clone())
    }

    fn moments(&self) -> Result<AdamMoments> {
        Ok(self.adam.moments())
    }

    fn set_moments(&mut self, moments: &AdamMoments) -> Result<()> {
        self.adam = Adam::from_moments(moments);
        Ok(())
    }
}
