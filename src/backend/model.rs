//! The model in candle: one `Var` per tensor of the [`ModelLayout`] (same names, shapes and
//! order as a checkpoint), a forward pass that follows the ndarray engine's formulas, the
//! losses, and Adam with the same update as [`crate::optim::Adam`].

use super::ops::{gelu, layer_norm, linear, log_softmax, rotate, softmax};
use crate::config::{Activation, ModelConfig, Norm};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::nn::layout::{AttentionIds, FamilyTensors, InputIds, LayerIds, LinearIds, ModelLayout, NormIds};
use crate::nn::position::PositionTables;
use crate::nn::{Model, ModelInput, Params, TensorId};
use crate::optim::{AdamMoments, OptimConfig, OptimizerKind};
use crate::theory::Outputs;
use candle_core::{D, DType, Device, Tensor, Var};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

fn err(e: candle_core::Error) -> Error {
    Error::Internal(format!("candle: {e}"))
}

/// Constant tensors of one sequence length.
struct Constants {
    /// One-hot expansion of offset tables: E[o, i·n + j] = 1 where (j − i) + n_max − 1 = o,
    /// [2·n_max − 1, n·n], so that table·E lays a table [heads, 2·n_max − 1] out as [heads, n·n]
    /// (a product, whose backward is a product too: candle's index_add on CUDA is serial).
    offsets: Tensor,
    /// (j − i) + n − 1 for every (i, j), [n, n]: column of (i, j) in the skewed layout.
    skew: Tensor,
    /// o + i for every (i, o), [n, 2n − 1]: entry of (i, o) in a row padded by n − 1.
    unskew: Tensor,
    /// t5-bucketed: the one-hot expansion of bucket tables, [t5_buckets, n·n].
    buckets: Option<Tensor>,
    /// alibi: −m_h·|j − i|, [heads, n, n].
    alibi: Option<Tensor>,
    /// causal: 0 on and below the diagonal, −∞ above, [n, n].
    mask: Option<Tensor>,
    /// ape-sin: [n, d].
    ape_sin: Option<Tensor>,
    /// rope: cos and sin, each [n, d_h] (halves repeated).
    rope: Option<(Tensor, Tensor)>,
}

/// Adam moments on the device.
struct AdamState {
    m: Vec<Tensor>,
    v: Vec<Tensor>,
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
    /// Floating-point type of the variables (F32 or F64).
    pub dtype: DType,
    vars: Vec<Var>,
    tables: PositionTables<f64>,
    xl_sinusoid: Option<Tensor>,
    constants: Mutex<HashMap<usize, Arc<Constants>>>,
    adam: Option<AdamState>,
}

/// A candle tensor from host values of shape `shape`.
fn tensor_from(values: &[f64], shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
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
        let tables = PositionTables::<f64>::new(&model.config);
        let xl_sinusoid = match &tables.xl_sinusoid {
            Some(t) => Some(tensor_from(t.as_slice().expect("contiguous"), &[t.nrows(), t.ncols()], dtype, device)?),
            None => None,
        };
        Ok(CandleModel {
            config: model.config.clone(),
            layout,
            device: device.clone(),
            dtype,
            vars,
            tables,
            xl_sinusoid,
            constants: Mutex::new(HashMap::new()),
            adam: None,
        })
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

    fn p(&self, id: TensorId) -> &Tensor {
        self.vars[id.0].as_tensor()
    }

    fn constants(&self, n: usize) -> Result<Arc<Constants>> {
        let mut cache = self.constants.lock().expect("constants lock");
        if let Some(c) = cache.get(&n) {
            return Ok(c.clone());
        }
        let c = &self.config;
        let (n_max, heads, dh) = (c.n_max, c.heads, c.head_dim());
        let index = |f: &dyn Fn(usize, usize) -> u32| -> Result<Tensor> {
            let v: Vec<u32> = (0..n * n).map(|k| f(k / n, k % n)).collect();
            Tensor::from_vec(v, n * n, &self.device).map_err(err)
        };
        let offset = |i: usize, j: usize| (j + n_max - 1 - i) as u32;
        let float = |values: Vec<f64>, shape: &[usize]| tensor_from(&values, shape, self.dtype, &self.device);
        let one_hot = |rows: usize, of: &dyn Fn(usize, usize) -> usize| {
            let mut e = vec![0.0; rows * n * n];
            for k in 0..n * n {
                e[of(k / n, k % n) * n * n + k] = 1.0;
            }
            float(e, &[rows, n * n])
        };
        let t = &self.tables;
        let made = Constants {
            offsets: one_hot(c.offsets(), &|i, j| offset(i, j) as usize)?,
            skew: index(&|i, j| (j + n - 1 - i) as u32)?.reshape((n, n)).map_err(err)?,
            unskew: Tensor::from_vec(
                (0..n * (2 * n - 1)).map(|k| (k % (2 * n - 1) + k / (2 * n - 1)) as u32).collect::<Vec<u32>>(),
                (n, 2 * n - 1),
                &self.device,
            )
            .map_err(err)?,
            buckets: match &t.t5_bucket {
                Some(b) => Some(one_hot(c.t5_buckets, &|i, j| b[offset(i, j) as usize])?),
                None => None,
            },
            alibi: match &t.alibi {
                Some(a) => Some(float(
                    (0..heads * n * n).map(|k| a[[k / (n * n), offset((k / n) % n, k % n) as usize]]).collect(),
                    &[heads, n, n],
                )?),
                None => None,
            },
            mask: if c.causal {
                Some(float((0..n * n).map(|k| if k % n > k / n { f64::NEG_INFINITY } else { 0.0 }).collect(), &[n, n])?)
            } else {
                None
            },
            ape_sin: match &t.ape_sin {
                Some(a) => Some(float(a.slice(ndarray::s![..n, ..]).iter().copied().collect(), &[n, c.width])?),
                None => None,
            },
            rope: match &t.rope {
                Some(r) => {
                    let full = |m: &ndarray::Array2<f64>| -> Vec<f64> {
                        (0..n * dh).map(|k| m[[k / dh, (k % dh) % (dh / 2)]]).collect()
                    };
                    Some((float(full(&r.cos), &[n, dh])?, float(full(&r.sin), &[n, dh])?))
                }
                None => None,
            },
        };
        let made = Arc::new(made);
        cache.insert(n, made.clone());
        Ok(made)
    }

    /// The input as a device tensor: token ids [batch·n] (u32) or real vectors [batch, n, d_in].
    fn input_tensor<F: Float>(&self, input: &ModelInput<F>) -> Result<Tensor> {
        match input {
            ModelInput::Tokens(t) => {
                let ids: Vec<u32> = t.iter().map(|&v| v as u32).collect();
                Tensor::from_vec(ids, t.len(), &self.device).map_err(err)
            }
            ModelInput::Real(x) => {
                let values: Vec<f64> = x.iter().map(|v| v.f64()).collect();
                tensor_from(&values, &[x.dim().0, x.dim().1, x.dim().2], self.dtype, &self.device)
            }
        }
    }

    fn lin(&self, x: &Tensor, ids: LinearIds) -> candle_core::Result<Tensor> {
        linear(x, self.p(ids.weight), self.p(ids.bias))
    }

    fn norm(&self, x: &Tensor, ids: Option<NormIds>) -> candle_core::Result<Tensor> {
        let ids = ids.expect("norm tensors");
        layer_norm(x, self.p(ids.weight), self.p(ids.bias))
    }

    /// The window of a relative table [2·n_max − 1, k] (or [heads, 2·n_max − 1, k]) that
    /// sequences of length n use: offsets −(n − 1)..=n − 1 along axis `dim`.
    fn window(table: &Tensor, dim: usize, n: usize, n_max: usize) -> candle_core::Result<Tensor> {
        table.narrow(dim, n_max - n, 2 * n - 1)
    }

    /// S[.., i, j] = M[.., i, (j − i) + n − 1]: scores laid out by offset [.., n, 2n − 1]
    /// back to [.., n, n].
    fn unskew(m: &Tensor, k: &Constants) -> candle_core::Result<Tensor> {
        let mut shape = m.dims().to_vec();
        let n = shape[shape.len() - 2];
        *shape.last_mut().expect("rank ≥ 2") = n;
        m.gather(&k.skew.broadcast_as(shape)?.contiguous()?, D::Minus1)
    }

    /// W[.., i, (j − i) + n − 1] = P[.., i, j], zeros elsewhere: [.., n, n] to [.., n, 2n − 1].
    /// With P padded by n − 1 zeros on each side, W[i, o] is its entry o + i (a gather;
    /// candle's `scatter_add` has a broken backward when its source is narrower).
    fn skew(p: &Tensor, k: &Constants) -> candle_core::Result<Tensor> {
        let mut shape = p.dims().to_vec();
        let n = shape[shape.len() - 1];
        let padded = p.pad_with_zeros(D::Minus1, n - 1, n - 1)?;
        *shape.last_mut().expect("rank ≥ 2") = 2 * n - 1;
        padded.gather(&k.unskew.broadcast_as(shape)?.contiguous()?, D::Minus1)
    }

    /// A table [heads, m] laid out as [heads, n, n] through its one-hot expansion [m, n·n].
    fn expand(table: &Tensor, expansion: &Tensor, n: usize) -> candle_core::Result<Tensor> {
        let heads = table.dim(0)?;
        table.matmul(expansion)?.reshape((heads, n, n))
    }

    /// x [b, h, n, k] times the rows of `t` ([2n − 1, k], shared by the heads) as
    /// [b, h, n, 2n − 1].
    fn against_shared(x: &Tensor, t: &Tensor) -> candle_core::Result<Tensor> {
        let (b, h, n, kk) = x.dims4()?;
        x.contiguous()?.reshape((b * h * n, kk))?.matmul(&t.t()?)?.reshape((b, h, n, t.dim(0)?))
    }

    fn attention(&self, x: &Tensor, ids: &AttentionIds, k: &Constants) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let (b, n, d) = x.dims3()?;
        let (h, dh) = (c.heads, c.head_dim());
        let split = |t: Tensor| t.reshape((b, n, h, dh))?.transpose(1, 2)?.contiguous();
        let (mut q, mut kk) = (split(self.lin(x, ids.q)?)?, split(self.lin(x, ids.k)?)?);
        let v = split(self.lin(x, ids.v)?)?;
        if let Some((cos, sin)) = &k.rope {
            q = rotate(&q, cos, sin)?.contiguous()?;
            kk = rotate(&kk, cos, sin)?.contiguous()?;
        }
        let scale = 1.0 / (dh as f64).sqrt();
        let kt = kk.transpose(2, 3)?.contiguous()?;
        let mut s = match ids.pos.family {
            FamilyTensors::Xl { u, v: vb, r } => {
                let head = |t: &Tensor| t.reshape((1, h, 1, dh));
                let content = q.broadcast_add(&head(self.p(u))?)?.matmul(&kt)?;
                let rel = self.xl_sinusoid.as_ref().expect("xl tables").matmul(self.p(r))?;
                let rel = rel.reshape((c.offsets(), h, dh))?.transpose(0, 1)?; // [h, offsets, dh]
                let win = Self::window(&rel, 1, n, c.n_max)?.contiguous()?;
                let x = q.broadcast_add(&head(self.p(vb))?)?.transpose(0, 1)?.contiguous()?.reshape((h, b * n, dh))?;
                let m =
                    x.matmul(&win.transpose(1, 2)?.contiguous()?)?.reshape((h, b, n, 2 * n - 1))?.transpose(0, 1)?;
                let position = Self::unskew(&m.contiguous()?, k)?;
                ((content + position)? * scale)?
            }
            family => {
                let mut s = (q.matmul(&kt)? * scale)?;
                match family {
                    FamilyTensors::T5(t) => s = s.broadcast_add(&Self::expand(self.p(t), &k.offsets, n)?)?,
                    FamilyTensors::T5Bucketed(t) => {
                        s = s.broadcast_add(&Self::expand(self.p(t), k.buckets.as_ref().expect("bucket table"), n)?)?
                    }
                    FamilyTensors::ShawKey(t) => {
                        let m = Self::against_shared(&q, &Self::window(self.p(t), 0, n, c.n_max)?)?;
                        s = (s + (Self::unskew(&m, k)? * scale)?)?
                    }
                    _ => {}
                }
                s
            }
        };
        if let Some(a) = &k.alibi {
            s = s.broadcast_add(a)?;
        }
        if let Some(m) = &k.mask {
            s = s.broadcast_add(m)?;
        }
        let mut a = softmax(&s)?;
        if let Some(gate) = ids.pos.gate {
            a = a.broadcast_mul(&Self::expand(self.p(gate), &k.offsets, n)?)?;
        }
        let mut out = a.matmul(&v)?;
        if let FamilyTensors::ShawValue(t) = ids.pos.family {
            let w = Self::skew(&a, k)?.reshape((b * h * n, 2 * n - 1))?;
            let win = Self::window(self.p(t), 0, n, c.n_max)?;
            out = (out + w.matmul(&win)?.reshape((b, h, n, dh))?)?;
        }
        let out = out.transpose(1, 2)?.contiguous()?.reshape((b, n, d))?;
        self.lin(&out, ids.o)
    }

    fn ffn(&self, x: &Tensor, ids: &LayerIds) -> candle_core::Result<Tensor> {
        let up = self.lin(x, ids.up)?;
        let act = match self.config.activation {
            Activation::Gelu => gelu(&up)?,
            Activation::Relu => up.relu()?,
        };
        self.lin(&act, ids.down)
    }

    fn block(&self, x: Tensor, ids: &LayerIds, k: &Constants) -> candle_core::Result<Tensor> {
        match self.config.norm {
            Norm::Post => {
                let h = self.norm(&(&x + self.attention(&x, &ids.attn, k)?)?, ids.norm1)?;
                self.norm(&(&h + self.ffn(&h, ids)?)?, ids.norm2)
            }
            Norm::Pre => {
                let h = (&x + self.attention(&self.norm(&x, ids.norm1)?, &ids.attn, k)?)?;
                &h + self.ffn(&self.norm(&h, ids.norm2)?, ids)?
            }
            Norm::None => {
                let h = (&x + self.attention(&x, &ids.attn, k)?)?;
                &h + self.ffn(&h, ids)?
            }
        }
    }

    /// Forward pass: the output [batch, n, out] as a device tensor (part of the graph).
    pub fn forward<F: Float>(&self, input: &ModelInput<F>) -> Result<Tensor> {
        let (batch, n) = input.batch_and_length();
        self.config.check_length(n)?;
        let k = self.constants(n)?;
        let x = self.input_tensor(input)?;
        let run = || -> candle_core::Result<Tensor> {
            let ids = &*self.layout;
            let mut h = match ids.input {
                InputIds::Embed(e) => {
                    // one-hot rows times the table (its backward is a product, not index_add)
                    let vocab = self.p(e).dim(0)?;
                    let classes = Tensor::arange(0u32, vocab as u32, &self.device)?.unsqueeze(0)?;
                    let one_hot = x.unsqueeze(1)?.broadcast_eq(&classes)?.to_dtype(self.dtype)?;
                    one_hot.matmul(self.p(e))?.reshape((batch, n, self.config.width))?
                }
                InputIds::Linear(l) => self.lin(&x, l)?,
            };
            if let Some(ape) = ids.ape {
                h = h.broadcast_add(&self.p(ape).narrow(0, 0, n)?)?;
            }
            if let Some(table) = &k.ape_sin {
                h = h.broadcast_add(table)?;
            }
            for layer in &ids.layers {
                h = self.block(h, layer, &k)?;
            }
            if let Some(f) = ids.final_norm {
                h = self.norm(&h, Some(f))?;
            }
            self.lin(&h, ids.head)
        };
        run().map_err(err)
    }

    /// The batch loss of `output` against `targets`: mean squared error over all entries,
    /// or mean cross-entropy over all positions.
    pub fn loss<F: Float>(&self, output: &Tensor, targets: &Outputs<F>) -> Result<Tensor> {
        let run = || -> candle_core::Result<Tensor> {
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

    /// Loss and every parameter gradient (as a flat buffer in the layout's order) of one
    /// batch; a variable the graph did not reach is an error naming it.
    pub fn loss_and_grads<F: Float>(&self, input: &ModelInput<F>, targets: &Outputs<F>) -> Result<(f64, Vec<Tensor>)> {
        let out = self.forward(input)?;
        let loss = self.loss(&out, targets)?;
        let store = loss.backward().map_err(err)?;
        let grads = self
            .layout
            .tensors
            .specs()
            .iter()
            .zip(&self.vars)
            .map(|(spec, var)| {
                store
                    .get(var.as_tensor())
                    .cloned()
                    .ok_or_else(|| Error::Internal(format!("candle: no gradient reached `{}`", spec.name)))
            })
            .collect::<Result<Vec<_>>>()?;
        let value = loss.to_dtype(DType::F64).and_then(|l| l.to_scalar::<f64>()).map_err(err)?;
        Ok((value, grads))
    }

    /// Gradients copied to the host in the layout of `params`.
    pub fn grads_to_host<F: Float>(&self, grads: &[Tensor]) -> Result<Params<F>> {
        let mut out = Params::zeros(self.layout.tensors.clone());
        for (spec, g) in self.layout.tensors.specs().iter().zip(grads) {
            out.data[spec.range()].iter_mut().zip(to_host(g)?).for_each(|(p, v)| *p = F::c(v));
        }
        Ok(out)
    }

    /// √(Σ g²) over every gradient: each tensor's rows are summed in parallel on the
    /// device (a whole-tensor sum is one thread block in candle's CUDA kernels), the partial
    /// sums in f64, and a single value crosses to the host.
    pub fn grad_norm(grads: &[Tensor]) -> Result<f64> {
        let run = || -> candle_core::Result<f64> {
            let parts = grads
                .iter()
                .map(|g| {
                    let last = g.dims().last().copied().unwrap_or(1).max(1);
                    g.sqr()?.reshape((g.elem_count() / last, last))?.sum(1)?.to_dtype(DType::F64)?.sum_all()
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::stack(&parts, 0)?.sum_all()?.to_scalar::<f64>()
        };
        Ok(run().map_err(err)?.sqrt())
    }

    /// Adam's state on the host, in the layout's order (zeros before the first update).
    pub fn moments(&self) -> Result<AdamMoments> {
        let len = self.layout.tensors.len();
        let Some(state) = &self.adam else { return Ok(AdamMoments { m: vec![0.0; len], v: vec![0.0; len], t: 0 }) };
        let flat = |ts: &[Tensor]| -> Result<Vec<f32>> {
            let mut out = Vec::with_capacity(len);
            for t in ts {
                out.extend(to_host(t)?.into_iter().map(|v| v as f32));
            }
            Ok(out)
        };
        Ok(AdamMoments { m: flat(&state.m)?, v: flat(&state.v)?, t: state.t })
    }

    /// Replaces Adam's state with `moments` (layout order, as [`Self::moments`] gives it).
    pub fn set_moments(&mut self, moments: &AdamMoments) -> Result<()> {
        let specs = self.layout.tensors.specs();
        let on_device = |flat: &[f32]| -> Result<Vec<Tensor>> {
            specs
                .iter()
                .map(|s| {
                    let values: Vec<f64> = flat[s.range()].iter().map(|&v| v as f64).collect();
                    tensor_from(&values, &s.shape, self.dtype, &self.device)
                })
                .collect()
        };
        self.adam = Some(AdamState { m: on_device(&moments.m)?, v: on_device(&moments.v)?, t: moments.t });
        Ok(())
    }

    /// One Adam or AdamW update with the semantics of [`crate::optim::Adam::step`]
    /// (bias correction, clipping by `norm`, L2 or decoupled decay).
    pub fn adam_step(&mut self, grads: &[Tensor], norm: f64, lr: f64, c: &OptimConfig) -> Result<()> {
        let run = |this: &mut Self| -> candle_core::Result<()> {
            let state = this.adam.get_or_insert_with(|| AdamState {
                m: this.vars.iter().map(|v| v.zeros_like()).collect::<candle_core::Result<_>>().expect("zeros"),
                v: this.vars.iter().map(|v| v.zeros_like()).collect::<candle_core::Result<_>>().expect("zeros"),
                t: 0,
            });
            state.t += 1;
            let clip = match c.clip {
                Some(max) if norm > max => max / norm,
                _ => 1.0,
            };
            let bias1 = 1.0 - c.beta1.powi(state.t);
            let bias2_sqrt = (1.0 - c.beta2.powi(state.t)).sqrt();
            // every tensor here is detached, so no step's graph outlives the step
            for (i, var) in this.vars.iter().enumerate() {
                let mut g = (grads[i].detach() * clip)?;
                let mut theta = var.as_tensor().detach();
                match c.kind {
                    OptimizerKind::Adam if c.weight_decay != 0.0 => g = (g + (&theta * c.weight_decay)?)?,
                    OptimizerKind::Adamw => theta = (&theta * (1.0 - lr * c.weight_decay))?,
                    OptimizerKind::Adam => {}
                }
                state.m[i] = ((&state.m[i] * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
                state.v[i] = ((&state.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
                let denom = ((state.v[i].sqrt()? / bias2_sqrt)? + c.eps)?;
                let update = (state.m[i].broadcast_div(&denom)? * (lr / bias1))?;
                var.set(&(theta - update)?)?;
            }
            Ok(())
        };
        run(self).map_err(err)
    }
}
