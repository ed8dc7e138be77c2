//! The candle engine: [`CandleModel`] on a device, with the same Adam.

use super::{Engine, Precision};
use crate::candle::model::to_host;
use crate::candle::{CandleModel, parse_device};
use crate::error::Result;
use crate::nn::{Model, ModelInput};
use crate::optim::{AdamMoments, OptimConfig};
use crate::theory::Sample;
use candle_core::DType;
use ndarray::Array3;

/// The candle engine's state (f32 variables on the device).
pub struct CandleEngine {
    model: CandleModel,
}

impl CandleEngine {
    /// Copies `model` to `device` (`cpu` or `cuda:N`) to train at `precision` (TF32 is a
    /// process-wide cuBLAS setting: the last engine made sets it).
    pub fn new(model: &Model<f32>, device: &str, precision: Precision) -> Result<Self> {
        #[cfg(feature = "cuda")]
        candle_core::cuda::set_gemm_reduced_precision_f32(precision == Precision::Tf32);
        let compute = if precision == Precision::Bf16 { DType::BF16 } else { DType::F32 };
        let model = CandleModel::from_model(model, &parse_device(device)?, DType::F32)?.with_compute(compute)?;
        Ok(CandleEngine { model })
    }
}

impl Engine for CandleEngine {
    fn train_step(&mut self, sample: &Sample<f32>, lr: f64, optim: &OptimConfig) -> Result<(f64, f64)> {
        let (loss, grads) = self.model.loss_and_grads_on_device(&sample.inputs.view(), &sample.targets)?;
        let (loss, norm) = CandleModel::read_loss_and_norm(Some(&loss), &grads)?;
        if loss.is_finite() && norm.is_finite() {
            self.model.adam_step(&grads, norm, lr, optim)?;
        }
        Ok((loss, norm))
    }

    fn predict(&mut self, input: &ModelInput<f32>) -> Result<Array3<f32>> {
        let (batch, n) = input.batch_and_length();
        let out = to_host(&self.model.forward(input)?)?;
        let classes = out.len() / (batch * n);
        Ok(Array3::from_shape_vec((batch, n, classes), out.into_iter().map(|v| v as f32).collect())
            .expect("output shape"))
    }

    fn model(&self) -> Result<Model<f32>> {
        self.model.to_model()
    }

    fn moments(&self) -> Result<AdamMoments> {
        self.model.moments()
    }

    fn set_moments(&mut self, moments: &AdamMoments) -> Result<()> {
        self.model.set_moments(moments)
    }
}
