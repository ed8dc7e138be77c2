//! One batch through a candle model: the input on the device, the forward pass, the loss
//! and, from the loss's gradient, the backward pass of [`super::pass`].

use super::model::{CandleModel, err, tensor_from};
use super::ops::log_softmax;
use super::pass::PassCache;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::nn::ModelInput;
use crate::theory::Outputs;
use candle_core::{D, DType, Device, Tensor, Var};

impl CandleModel {
    /// The input as a device tensor: token ids [batch·n] (u32) or real vectors [batch, n, d_in].
    fn input_tensor<F: Float>(&self, input: &ModelInput<F>) -> Result<Tensor> {
        match input {
            ModelInput::Tokens(t) => {
                let ids: Vec<u32> = t.iter().map(|&v| v as u32).collect();
                Tensor::from_vec(ids, t.len(), &self.device).map_err(err)
            }
            ModelInput::Real(x) => {
                let values: Vec<f64> = x.iter().map(|v| v.f64()).collect();
                tensor_from(&values, &[x.dim().0, x.dim().1, x.dim().2], self.compute, &self.device)
            }
        }
    }

    /// Forward pass: the output [batch, n, out] as a device tensor.
    pub fn forward<F: Float>(&self, input: &ModelInput<F>) -> Result<Tensor> {
        Ok(self.forward_cached(input)?.0)
    }

    /// Forward pass keeping the backward pass's caches.
    fn forward_cached<F: Float>(&self, input: &ModelInput<F>) -> Result<(Tensor, PassCache)> {
        let (batch, n) = input.batch_and_length();
        self.config.check_length(n)?;
        let constants = self.constants(self.config.inner_len(n))?;
        let x = self.input_tensor(input)?;
        let (out, cache) = self.forward_pass(&x, batch, n, constants).map_err(err)?;
        let classes = out.dim(1).map_err(err)?;
        Ok((out.reshape((batch, n, classes)).map_err(err)?, cache))
    }

    /// The batch loss of `output` against `targets`: mean squared error over all entries,
    /// or mean cross-entropy over all positions (in the variables' type, whatever the
    /// compute type).
    pub fn loss<F: Float>(&self, output: &Tensor, targets: &Outputs<F>) -> Result<Tensor> {
        let run = || -> candle_core::Result<Tensor> {
            let output = &output.to_dtype(self.dtype)?;
            match targets {
                Outputs::Real(y) => {
                    let values: Vec<f64> = y.iter().map(|v| v.f64()).collect();
                    let shape = [y.dim().0, y.dim().1, y.dim().2];
                    let y = Tensor::from_slice(&values, &shape, &Device::Cpu)?
                        .to_dtype(self.dtype)?
                        .to_device(&self.device)?;
                    (output - y)?.sqr()?.mean_all()
                }
                Outputs::Classes(labels) => {
                    let classes = output.dim(D::Minus1)?;
                    let rows = labels.len();
                    let ids: Vec<u32> = labels.iter().map(|&v| v as u32).collect();
                    let ids = Tensor::from_vec(ids, (rows, 1), &self.device)?;
                    let logp = log_softmax(&output.reshape((rows, classes))?)?;
                    logp.gather(&ids, 1)?.neg()?.mean_all()
                }
            }
        };
        run().map_err(err)
    }

    /// Loss and every parameter gradient (in the layout's order) of one batch; a variable
    /// the pass did not reach is an error naming it. The loss's own gradient comes from
    /// candle's autograd on the (small) output; the model's from [`Self::backward_pass`].
    pub fn loss_and_grads<F: Float>(&self, input: &ModelInput<F>, targets: &Outputs<F>) -> Result<(f64, Vec<Tensor>)> {
        let (loss, grads) = self.loss_and_grads_on_device(input, targets)?;
        let value = loss.to_dtype(DType::F64).and_then(|l| l.to_scalar::<f64>()).map_err(err)?;
        Ok((value, grads))
    }

    /// [`Self::loss_and_grads`] with the loss left on the device (no host wait).
    pub fn loss_and_grads_on_device<F: Float>(
        &self,
        input: &ModelInput<F>,
        targets: &Outputs<F>,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let (out, cache) = self.forward_cached(input)?;
        let out = Var::from_tensor(&out).map_err(err)?;
        let loss = self.loss(out.as_tensor(), targets)?;
        let store = loss.backward().map_err(err)?;
        let g_out =
            store.get(out.as_tensor()).ok_or_else(|| Error::Internal("candle: no gradient of the output".into()))?;
        let classes = g_out.dim(2).map_err(err)?;
        let g_out = g_out.reshape((g_out.elem_count() / classes, classes)).map_err(err)?;
        Ok((loss, self.backward_pass(&cache, &g_out)?))
    }
}
