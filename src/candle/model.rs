//! The model in candle: one `Var` per tensor of the [`ModelLayout`] (same names, shapes and
//! order as a checkpoint), a forward pass that follows the ndarray engine's formulas, the
//! losses, and Adam with the same update as [`crate::optim::Adam`].

use super::fused::{AdamUpdate, adam_update, sum_squares_into};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::family::candle::{CandleTerms, one_hot};
use crate::float::Float;
use crate::nn::layout::{InputIds, ModelLayout};
use crate::nn::{Model, Params, TensorId};
use crate::optim::{AdamMoments, OptimConfig, OptimizerKind};
use candle_core::{DType, Device, Tensor, Var};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A candle error as this crate's internal error.
pub(super) fn err(e: candle_core::Error) -> Error {
    Error::Internal(format!("candle: {e}"))
}

/// Constant tensors of one sequence length n, the rows the blocks see (with `bos`, one more
/// than the input's; n_max likewise, [`ModelConfig::inner_n_max`]).
pub struct Constants {
    /// One-hot expansion of offset tables: E[o, i·n + j] = 1 where (j − i) + n_max − 1 = o,
    /// [2·n_max − 1, n·n], so that table·E lays a table [heads, 2·n_max − 1] out as [heads, n·n]
    /// (a product, whose backward is a product too: candle's index_add on CUDA is serial).
    pub offsets: Tensor,
    /// (j − i) + n − 1 for every (i, j), [n, n]: column of (i, j) in the skewed layout.
    pub skew: Tensor,
    /// o + i for every (i, o), [n, 2n − 1]: entry of (i, o) in a row padded by n − 1.
    pub unskew: Tensor,
    /// causal: 0 on and below the diagonal, −∞ above, [n, n].
    pub mask: Option<Tensor>,
    /// The position family's own constants ([`CandleTerms::constants`]).
    pub family: Vec<Tensor>,
    /// Token inputs: the class ids 0..vocab as [1, vocab] (u32), for the one-hot embedding.
    pub vocab_ids: Option<Tensor>,
    /// Zeros [1, n] of the compute type: the score bias of a family without one.
    pub no_bias: Tensor,
    /// Zeros [d] of the compute type: the bias of a heads split that adds none.
    pub zero_width: Tensor,
}

/// Adam moments on the device: per variable [m, v] as one [2, len] tensor.
struct AdamState {
    mv: Vec<Tensor>,
    t: i32,
}

/// A model held as candle variables on a device.
pub struct CandleModel {
    /// The configuration.
    pub config: ModelConfig,
    /// Tensor names, shapes and typed handles (shared with the ndarray engine).
    pub layout: Arc<ModelLayout>,
    /// Device.
    pub device: Device,
    /// Floating-point type of the variables, their gradients and Adam's moments (F32 or F64).
    pub dtype: DType,
    /// Floating-point type of the activations and matrix products: `dtype`, or BF16 for
    /// mixed precision (see [`Self::with_compute`]).
    pub compute: DType,
    vars: Vec<Var>,
    family: Box<dyn CandleTerms>,
    constants: Mutex<HashMap<usize, Arc<Constants>>>,
    /// Ones [1, rows] by row count, for column sums as products.
    ones: Mutex<HashMap<usize, Tensor>>,
    adam: Option<AdamState>,
}

/// A candle tensor from host values of shape `shape`.
pub(super) fn tensor_from(values: &[f64], shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    Tensor::from_slice(values, shape, &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .and_then(|t| t.to_device(device))
        .map_err(err)
}

/// A tensor's values as f64 on the host, flattened.
pub fn to_host(t: &Tensor) -> Result<Vec<f64>> {
    t.to_dtype(DType::F64).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1::<f64>()).map_err(err)
}

impl CandleModel {
    /// Copies `model`'s parameters to `device` as `dtype` variables.
    pub fn from_model<F: Float>(model: &Model<F>, device: &Device, dtype: DType) -> Result<Self> {
        let layout = model.layout.clone();
        let vars = layout
            .tensors
            .specs()
            .iter()
            .map(|s| {
                let values: Vec<f64> = model.params.data[s.range()].iter().map(|v| v.f64()).collect();
                tensor_from(&values, &s.shape, dtype, device).and_then(|t| Var::from_tensor(&t).map_err(err))
            })
            .collect::<Result<Vec<_>>>()?;
        let family = model.config.family.def().candle(&model.config.family_dims()).ok_or_else(|| {
            Error::Input(format!(
                "family `{}` has no candle terms (its module does not write them): use --backend ndarray",
                model.config.family
            ))
        })?;
        Ok(CandleModel {
            config: model.config.clone(),
            layout,
            device: device.clone(),
            dtype,
            compute: dtype,
            vars,
            family,
            constants: Mutex::new(HashMap::new()),
            ones: Mutex::new(HashMap::new()),
            adam: None,
        })
    }

    /// The same model computing its activations and matrix products in `compute`: the
    /// variables' own type, or BF16 over F32 variables (mixed precision as PyTorch's
    /// autocast: bf16 products and stored activations; f32 master weights, gradients, loss
    /// and Adam; the fused kernels load bf16, compute in f32 and round once on the store).
    pub fn with_compute(mut self, compute: DType) -> Result<Self> {
        if compute != self.dtype && !(compute == DType::BF16 && self.dtype == DType::F32) {
            return Err(Error::Input(format!(
                "candle: compute type {compute:?} over {:?} variables: expected the variables' type, or bf16 over f32",
                self.dtype
            )));
        }
        self.compute = compute;
        self.constants.lock().expect("constants lock").clear();
        self.ones.lock().expect("ones lock").clear();
        Ok(self)
    }

    /// The parameters copied back to the host as a model of float type F.
    pub fn to_model<F: Float>(&self) -> Result<Model<F>> {
        let mut model = Model::<F>::zeros(self.config.clone())?;
        for (spec, var) in self.layout.tensors.specs().iter().zip(&self.vars) {
            let values = to_host(var.as_tensor())?;
            model.params.data[spec.range()].iter_mut().zip(values).for_each(|(p, v)| *p = F::c(v));
        }
        Ok(model)
    }

    /// The model's variables, in the layout's order.
    pub fn variables(&self) -> &[Var] {
        &self.vars
    }

    /// Variable `id` as a graph leaf.
    pub fn var(&self, id: TensorId) -> &Tensor {
        self.vars[id.0].as_tensor()
    }

    /// The position family's candle terms.
    pub fn family(&self) -> &dyn CandleTerms {
        &*self.family
    }

    /// 1ᵀ·x over the rows of x [rows, k] (of the compute type) as [k] (a product with a
    /// cached ones row: a strided column sum is slow on a GPU).
    pub(super) fn column_sum(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (rows, k) = x.dims2()?;
        let ones = match self.ones.lock().expect("ones lock").entry(rows) {
            std::collections::hash_map::Entry::Occupied(e) => e.get().clone(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Tensor::ones((1, rows), self.compute, &self.device)?).clone()
            }
        };
        ones.matmul(x)?.reshape(k)
    }

    /// The constants of sequences of n rows where the blocks run (with `bos`, one more than
    /// the input's), made once per n.
    pub(super) fn constants(&self, n: usize) -> Result<Arc<Constants>> {
        let mut cache = self.constants.lock().expect("constants lock");
        if let Some(c) = cache.get(&n) {
            return Ok(c.clone());
        }
        let c = &self.config;
        let n_max = c.inner_n_max();
        let index = |f: &dyn Fn(usize, usize) -> u32| -> Result<Tensor> {
            let v: Vec<u32> = (0..n * n).map(|k| f(k / n, k % n)).collect();
            Tensor::from_vec(v, n * n, &self.device).map_err(err)
        };
        let offset = |i: usize, j: usize| (j + n_max - 1 - i) as u32;
        let float = |values: Vec<f64>, shape: &[usize]| tensor_from(&values, shape, self.dtype, &self.device);
        let made = Constants {
            offsets: one_hot(c.offsets(), n, &|i, j| offset(i, j) as usize, self.dtype, &self.device).map_err(err)?,
            skew: index(&|i, j| (j + n - 1 - i) as u32)?.reshape((n, n)).map_err(err)?,
            unskew: Tensor::from_vec(
                (0..n * (2 * n - 1)).map(|k| (k % (2 * n - 1) + k / (2 * n - 1)) as u32).collect::<Vec<u32>>(),
                (n, 2 * n - 1),
                &self.device,
            )
            .map_err(err)?,
            mask: if c.causal {
                Some(float((0..n * n).map(|k| if k % n > k / n { f64::NEG_INFINITY } else { 0.0 }).collect(), &[n, n])?)
            } else {
                None
            },
            family: self.family.constants(n, self.dtype, &self.device).map_err(err)?,
            vocab_ids: match self.layout.input {
                InputIds::Embed(e) => {
                    let vocab = self.layout.tensors.specs()[e.0].shape[0] as u32;
                    Some(Tensor::arange(0u32, vocab, &self.device).and_then(|t| t.unsqueeze(0)).map_err(err)?)
                }
                InputIds::Linear(_) => None,
            },
            no_bias: Tensor::zeros((1, n), self.compute, &self.device).map_err(err)?,
            zero_width: Tensor::zeros(c.width, self.compute, &self.device).map_err(err)?,
        };
        let made = Arc::new(made);
        cache.insert(n, made.clone());
        Ok(made)
    }

    /// Gradients copied to the host in the layout of `params`.
    pub fn grads_to_host<F: Float>(&self, grads: &[Tensor]) -> Result<Params<F>> {
        let mut out = Params::zeros(self.layout.tensors.clone());
        for (spec, g) in self.layout.tensors.specs().iter().zip(grads) {
            out.data[spec.range()].iter_mut().zip(to_host(g)?).for_each(|(p, v)| *p = F::c(v));
        }
        Ok(out)
    }

    /// √(Σ g²) over every gradient (f64 partial sums on the device, one host read).
    pub fn grad_norm(grads: &[Tensor]) -> Result<f64> {
        Ok(Self::read_loss_and_norm(None, grads)?.1)
    }

    /// The loss (a device scalar) and √(Σ g²) of `grads`, read in one transfer: the only
    /// point of a training step where the host waits for the device.
    pub fn read_loss_and_norm(loss: Option<&Tensor>, grads: &[Tensor]) -> Result<(f64, f64)> {
        let run = || -> candle_core::Result<Vec<f64>> {
            let parts = sum_squares_into(grads)?;
            match loss {
                Some(l) => Tensor::cat(&[&l.to_dtype(DType::F64)?.reshape(1)?, &parts], 0)?.to_vec1::<f64>(),
                None => parts.to_vec1::<f64>(),
            }
        };
        let values = run().map_err(err)?;
        let (loss, parts) = match loss {
            Some(_) => (values[0], &values[1..]),
            None => (f64::NAN, &values[..]),
        };
        Ok((loss, parts.iter().sum::<f64>().sqrt()))
    }

    /// Adam's state on the host, in the layout's order (zeros before the first update).
    pub fn moments(&self) -> Result<AdamMoments> {
        let len = self.layout.tensors.len();
        let Some(state) = &self.adam else { return Ok(AdamMoments { m: vec![0.0; len], v: vec![0.0; len], t: 0 }) };
        let (mut m, mut v) = (Vec::with_capacity(len), Vec::with_capacity(len));
        for mv in &state.mv {
            let values = to_host(mv)?;
            let half = values.len() / 2;
            m.extend(values[..half].iter().map(|&x| x as f32));
            v.extend(values[half..].iter().map(|&x| x as f32));
        }
        Ok(AdamMoments { m, v, t: state.t })
    }

    /// Replaces Adam's state with `moments` (layout order, as [`Self::moments`] gives it).
    pub fn set_moments(&mut self, moments: &AdamMoments) -> Result<()> {
        let mv = self
            .layout
            .tensors
            .specs()
            .iter()
            .map(|s| {
                let values: Vec<f64> =
                    moments.m[s.range()].iter().chain(&moments.v[s.range()]).map(|&v| v as f64).collect();
                tensor_from(&values, &[2, s.len()], self.dtype, &self.device)
            })
            .collect::<Result<_>>()?;
        self.adam = Some(AdamState { mv, t: moments.t });
        Ok(())
    }

    /// One Adam or AdamW update with the semantics of [`crate::optim::Adam::step`]
    /// (bias correction, clipping by `norm`, L2 or decoupled decay), one fused pass per
    /// variable.
    pub fn adam_step(&mut self, grads: &[Tensor], norm: f64, lr: f64, c: &OptimConfig) -> Result<()> {
        let run = |this: &mut Self| -> candle_core::Result<()> {
            if this.adam.is_none() {
                let mv = this.vars.iter().map(|v| Tensor::zeros((2, v.elem_count()), v.dtype(), v.device()));
                this.adam = Some(AdamState { mv: mv.collect::<candle_core::Result<_>>()?, t: 0 });
            }
            let state = this.adam.as_mut().expect("initialised above");
            state.t += 1;
            let update = AdamUpdate {
                clip: match c.clip {
                    Some(max) if norm > max => max / norm,
                    _ => 1.0,
                },
                wd: c.weight_decay,
                decay: 1.0 - lr * c.weight_decay,
                decoupled: c.kind == OptimizerKind::Adamw,
                beta1: c.beta1,
                beta2: c.beta2,
                step_size: lr / (1.0 - c.beta1.powi(state.t)),
                bias2_sqrt: (1.0 - c.beta2.powi(state.t)).sqrt(),
                eps: c.eps,
            };
            for (i, var) in this.vars.iter().enumerate() {
                let out = adam_update(&var.as_tensor().detach(), &grads[i].detach(), &state.mv[i], update)?;
                var.set(&out.get(0)?.reshape(var.shape())?)?;
                state.mv[i] = out.narrow(0, 1, 2)?;
            }
            Ok(())
        };
        run(self).map_err(err)
    }
}
