//! Fused kernels of the candle engine's hot path: each does in one pass what candle's
//! elementary ops do in several (candle's broadcasting binary kernels also run far below
//! memory bandwidth on a GPU). Every op has a CPU version, written with the ndarray engine's
//! row formulas (the differential tests run it), and a CUDA version (`fused.cu`, built to
//! PTX by `build.rs` with the `cuda` feature). None is differentiable: the engine's
//! backward pass (`layers.rs`) calls the backward ops explicitly.

use crate::config::Activation;
use crate::float::Float;
use crate::nn::activation::normal_cdf;
use crate::nn::layernorm::LN_EPS;
use crate::normaliser;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, bail};

/// One fused operation; the output has the shape of the first input, whose last axis
/// (length k, or n for rows) is the row.
#[derive(Clone, Copy, Debug)]
enum Fused {
    /// y = x + v, v [k] added to every row.
    AddRows,
    /// y = x ⊙ v, v [k] multiplying every row.
    MulRows,
    /// y = softmax(scale·x + bias[r mod period]) per row r, bias [period, n].
    Softmax { scale: f64, period: usize },
    /// From y = softmax(·) and g = ∂L/∂y: scale·y ⊙ (g − ⟨g, y⟩) per row.
    SoftmaxBackward { scale: f64 },
    /// y = x̂ ⊙ w + b, x̂ = (x − μ)/√(σ² + ε) per row (biased σ², ε = 1e-5).
    LayerNorm,
    /// g ⊙ x̂ (rows summed, the weight's gradient).
    LayerNormXhatProduct,
    /// ∂L/∂x = ρ·(g⊙w − mean(g⊙w) − x̂·mean(g⊙w⊙x̂)) per row, ρ = 1/√(σ² + ε).
    LayerNormBackward,
    /// act(m + b) (b [k] per row); with `grad`, g ⊙ act'(m + b).
    BiasActivation { act: Activation, grad: bool },
    /// One Adam step of θ from g and mv = [m, v] ([2, len]), giving [θ', m', v'] ([3, len]).
    Adam(AdamUpdate),
    /// Rows y [b·n, c·d] plus bias [c·d] to c stacked heads tensors [c, b, h, n, d_h].
    SplitHeads { n: usize, heads: usize, chunks: usize },
    /// c heads tensors [b, h, n, d_h] (the inputs) side by side as rows [b·n, c·d].
    MergeHeads,
}

/// The scalars of one Adam update (as [`crate::optim::Adam::step`]): with g ← clip·g, and
/// g ← g + wd·θ (Adam) or θ ← decay·θ (AdamW, decay = 1 − lr·wd):
/// m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g², θ ← θ − step·m/(√v/√(1 − β₂ᵗ) + ε),
/// step = lr/(1 − β₁ᵗ).
#[derive(Clone, Copy, Debug)]
pub struct AdamUpdate {
    /// Gradient scale min(1, max norm/‖g‖).
    pub clip: f64,
    /// L2 weight decay (Adam).
    pub wd: f64,
    /// θ's factor 1 − lr·wd (AdamW).
    pub decay: f64,
    /// AdamW's decoupled decay instead of L2.
    pub decoupled: bool,
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// lr/(1 − β₁ᵗ).
    pub step_size: f64,
    /// √(1 − β₂ᵗ).
    pub bias2_sqrt: f64,
    /// ε.
    pub eps: f64,
}

impl Fused {
    fn name(&self) -> &'static str {
        match self {
            Fused::AddRows => "add-rows",
            Fused::MulRows => "mul-rows",
            Fused::Softmax { .. } => "softmax",
            Fused::SoftmaxBackward { .. } => "softmax-backward",
            Fused::LayerNorm => "layer-norm",
            Fused::LayerNormXhatProduct => "layer-norm-xhat-product",
            Fused::LayerNormBackward => "layer-norm-backward",
            Fused::BiasActivation { grad: false, .. } => "bias-activation",
            Fused::BiasActivation { grad: true, .. } => "bias-activation-backward",
            Fused::Adam(_) => "adam",
            Fused::SplitHeads { .. } => "split-heads",
            Fused::MergeHeads => "merge-heads",
        }
    }

    /// The output's shape for `inputs` inputs, the first of shape `x`.
    fn out_shape(&self, x: &Shape, inputs: usize) -> Shape {
        let dims = x.dims();
        match *self {
            Fused::Adam(_) => Shape::from((3, x.elem_count())),
            Fused::SplitHeads { n, heads, chunks } => {
                let (rows, cols) = (dims[0], dims[dims.len() - 1]);
                Shape::from((chunks, rows / n, heads, n, cols / chunks / heads))
            }
            Fused::MergeHeads => {
                let [b, h, n, dh] = dims[dims.len() - 4..] else { unreachable!("checked by merge_heads") };
                Shape::from((b * n, inputs * h * dh))
            }
            _ => x.clone(),
        }
    }

    /// The geometry (rows, n, h, d_h, c) of a heads op with `inputs` inputs, the first `x`.
    fn heads_geometry(&self, x: &Shape, inputs: usize) -> (usize, usize, usize, usize, usize) {
        let out = self.out_shape(x, inputs);
        match *self {
            Fused::SplitHeads { n, heads, chunks } => {
                let d = out.dims()[4];
                (out.dims()[1] * n, n, heads, d, chunks)
            }
            _ => {
                let [b, h, n, dh] = x.dims()[x.dims().len() - 4..] else { unreachable!("checked by merge_heads") };
                (b * n, n, h, dh, inputs)
            }
        }
    }

    /// The CPU version: `inputs` as contiguous slices, `k` the row length.
    fn cpu<T: Float>(&self, inputs: &[&[T]], k: usize) -> Vec<T> {
        let x = inputs[0];
        match self {
            Fused::Adam(a) => return adam_cpu(a, x, inputs[1], inputs[2]),
            Fused::SplitHeads { .. } | Fused::MergeHeads => unreachable!("heads_cpu"),
            _ => {}
        }
        let mut y = vec![T::zero(); x.len()];
        let eps = T::c(LN_EPS);
        let stats = |row: &[T]| {
            let d = T::c(row.len() as f64);
            let m = row.iter().copied().sum::<T>() / d;
            let var = row.iter().map(|&v| (v - m) * (v - m)).sum::<T>() / d;
            (m, T::one() / (var + eps).sqrt())
        };
        let rows = y.chunks_mut(k).zip(x.chunks(k));
        match *self {
            Fused::AddRows => {
                rows.for_each(|(y, x)| y.iter_mut().zip(x).zip(inputs[1]).for_each(|((y, &x), &v)| *y = x + v))
            }
            Fused::MulRows => {
                rows.for_each(|(y, x)| y.iter_mut().zip(x).zip(inputs[1]).for_each(|((y, &x), &v)| *y = x * v))
            }
            Fused::Softmax { scale, period } => {
                let softmax = normaliser::rows::<T>(normaliser::SOFTMAX);
                let mut z = vec![T::zero(); k];
                for (r, (y, x)) in rows.enumerate() {
                    let bias = &inputs[1][(r % period) * k..][..k];
                    z.iter_mut().zip(x).zip(bias).for_each(|((z, &x), &b)| *z = T::c(scale) * x + b);
                    softmax.forward(y, &z, T::zero());
                }
            }
            Fused::SoftmaxBackward { scale } => {
                let softmax = normaliser::rows::<T>(normaliser::SOFTMAX);
                for (r, (y, a)) in rows.enumerate() {
                    y.copy_from_slice(&inputs[1][r * k..][..k]);
                    softmax.backward(y, a, &[], T::zero()); // softmax's backward reads only its output
                    y.iter_mut().for_each(|v| *v *= T::c(scale));
                }
            }
            Fused::LayerNorm => rows.for_each(|(y, x)| {
                let (m, rstd) = stats(x);
                for (j, (y, &x)) in y.iter_mut().zip(x).enumerate() {
                    *y = (x - m) * rstd * inputs[1][j] + inputs[2][j];
                }
            }),
            Fused::LayerNormXhatProduct => rows.enumerate().for_each(|(r, (y, x))| {
                let (m, rstd) = stats(x);
                let g = &inputs[1][r * k..][..k];
                y.iter_mut().zip(x).zip(g).for_each(|((y, &x), &g)| *y = g * (x - m) * rstd);
            }),
            Fused::LayerNormBackward => rows.enumerate().for_each(|(r, (dx, x))| {
                let (m, rstd) = stats(x);
                let (w, g) = (inputs[1], &inputs[2][r * k..][..k]);
                let d = T::c(k as f64);
                let (mut mg, mut mgx) = (T::zero(), T::zero());
                for j in 0..k {
                    mg += g[j] * w[j];
                    mgx += g[j] * w[j] * (x[j] - m) * rstd;
                }
                let (mg, mgx) = (mg / d, mgx / d);
                for j in 0..k {
                    dx[j] = rstd * (g[j] * w[j] - mg - (x[j] - m) * rstd * mgx);
                }
            }),
            Fused::BiasActivation { act, grad } => {
                let inv_sqrt_2pi = T::c(1.0 / (2.0 * std::f64::consts::PI).sqrt());
                for (r, (y, m)) in rows.enumerate() {
                    for (j, (y, &m)) in y.iter_mut().zip(m).enumerate() {
                        let u = m + inputs[1][j];
                        let g = if grad { inputs[2][r * k + j] } else { T::zero() };
                        *y = match (act, grad) {
                            (Activation::Gelu, false) => u * normal_cdf(u),
                            (Activation::Gelu, true) => {
                                g * (normal_cdf(u) + u * inv_sqrt_2pi * (T::c(-0.5) * u * u).exp_fast())
                            }
                            (Activation::Relu, false) => u.max(T::zero()),
                            (Activation::Relu, true) if u > T::zero() => g,
                            (Activation::Relu, true) => T::zero(),
                        };
                    }
                }
            }
            Fused::Adam(_) | Fused::SplitHeads { .. } | Fused::MergeHeads => unreachable!("handled above"),
        }
        y
    }

    /// The heads ops on the CPU (geometry from [`Self::heads_geometry`]).
    fn heads_cpu<T: Float>(&self, inputs: &[&[T]], (rows, n, h, dh, c): (usize, usize, usize, usize, usize)) -> Vec<T> {
        let d = h * dh;
        let mut out = vec![T::zero(); rows * c * d];
        for row in 0..rows {
            let (bb, i) = (row / n, row % n);
            for j in 0..c * d {
                let (s, hh, e) = (j / d, (j % d) / dh, j % dh);
                let headed = ((bb * h + hh) * n + i) * dh + e;
                match self {
                    Fused::SplitHeads { .. } => out[s * rows * d + headed] = inputs[0][row * c * d + j] + inputs[1][j],
                    _ => out[row * c * d + j] = inputs[s][headed],
                }
            }
        }
        out
    }

    /// The last line of defence before a CPU loop or a CUDA launch (both call it): every
    /// input is contiguous and has the length the op reads from it, given the first input's
    /// shape (the public wrappers check the full shapes and dtypes before this).
    fn check_layouts(&self, layouts: &[&Layout]) -> Result<()> {
        let name = self.name();
        let x = layouts[0].shape();
        let (len, dims) = (x.elem_count(), x.dims());
        let k = dims.last().copied().unwrap_or(1).max(1);
        let expected: Vec<usize> = match *self {
            Fused::AddRows | Fused::MulRows | Fused::BiasActivation { grad: false, .. } => vec![len, k],
            Fused::BiasActivation { grad: true, .. } | Fused::LayerNormBackward => vec![len, k, len],
            Fused::LayerNorm => vec![len, k, k],
            Fused::SoftmaxBackward { .. } | Fused::LayerNormXhatProduct => vec![len, len],
            Fused::Softmax { period, .. } => {
                if period == 0 || !(len / k).is_multiple_of(period) {
                    bail!("{name}: period {period} does not divide the {} rows", len / k);
                }
                vec![len, period * k]
            }
            Fused::Adam(_) => vec![len, len, 2 * len],
            Fused::SplitHeads { n, heads, chunks } => {
                let width = chunks.saturating_mul(heads);
                let ok = dims.len() == 2 && n != 0 && width != 0;
                if !ok || !dims[0].is_multiple_of(n) || !dims[1].is_multiple_of(width) {
                    bail!("{name}: input {dims:?} against n {n}, {heads} heads, {chunks} chunks");
                }
                vec![len, dims[1]]
            }
            Fused::MergeHeads => {
                if dims.len() != 4 || !matches!(layouts.len(), 1 | 3) {
                    bail!("{name}: {} inputs of shape {dims:?}, expected one or three [b, h, n, d_h]", layouts.len());
                }
                vec![len; layouts.len()]
            }
        };
        if expected.len() != layouts.len() {
            bail!("{name}: {} inputs, expected {}", layouts.len(), expected.len());
        }
        for (i, (l, want)) in layouts.iter().zip(expected).enumerate() {
            match l.contiguous_offsets() {
                Some((a, b)) if b - a == want => {}
                Some((a, b)) => bail!("{name}: input {i} has {} elements, expected {want}", b - a),
                None => bail!("{name}: input {i} is not contiguous"),
            }
        }
        Ok(())
    }

    /// Runs on CPU storages (every input contiguous, of one float type).
    fn cpu_storage(&self, inputs: &[(&CpuStorage, &Layout)]) -> Result<(CpuStorage, Shape)> {
        self.check_layouts(&inputs.iter().map(|(_, l)| *l).collect::<Vec<_>>())?;
        let shape = self.out_shape(inputs[0].1.shape(), inputs.len());
        let k = inputs[0].1.shape().dims().last().copied().unwrap_or(1).max(1);
        let heads = matches!(self, Fused::SplitHeads { .. } | Fused::MergeHeads)
            .then(|| self.heads_geometry(inputs[0].1.shape(), inputs.len()));
        let out = match inputs[0].0 {
            CpuStorage::F32(_) => CpuStorage::F32(self.cpu_on(&contiguous_slices::<f32>(inputs)?, k, heads)),
            CpuStorage::F64(_) => CpuStorage::F64(self.cpu_on(&contiguous_slices::<f64>(inputs)?, k, heads)),
            CpuStorage::BF16(_) => {
                // as on the GPU: loaded into f32, computed in f32, rounded once on the store
                let wide = contiguous_slices::<half::bf16>(inputs)?
                    .iter()
                    .map(|x| x.iter().map(|v| v.to_f32()).collect::<Vec<f32>>())
                    .collect::<Vec<_>>();
                let out = self.cpu_on(&wide.iter().map(Vec::as_slice).collect::<Vec<_>>(), k, heads);
                CpuStorage::BF16(out.into_iter().map(half::bf16::from_f32).collect())
            }
            _ => bail!("fused op {}: f32, f64 or bf16 only", self.name()),
        };
        Ok((out, shape))
    }

    /// The CPU version on contiguous inputs: a heads op with its geometry, or a row op.
    fn cpu_on<T: Float>(&self, x: &[&[T]], k: usize, heads: Option<(usize, usize, usize, usize, usize)>) -> Vec<T> {
        match heads {
            Some(g) => self.heads_cpu(x, g),
            None => self.cpu(x, k),
        }
    }
}

/// The contiguous slices of CPU storages of element type T.
fn contiguous_slices<'a, T: candle_core::WithDType>(inputs: &[(&'a CpuStorage, &Layout)]) -> Result<Vec<&'a [T]>> {
    inputs
        .iter()
        .map(|(s, l)| match l.contiguous_offsets() {
            Some((a, b)) => Ok(&s.as_slice::<T>()?[a..b]),
            None => bail!("fused op: input is not contiguous"),
        })
        .collect()
}

/// [`AdamUpdate`] on the CPU: θ, g [len] and mv = [m, v] to [θ', m', v'].
fn adam_cpu<T: Float>(a: &AdamUpdate, p: &[T], g: &[T], mv: &[T]) -> Vec<T> {
    let n = p.len();
    let mut out = vec![T::zero(); 3 * n];
    let (b1, b2) = (T::c(a.beta1), T::c(a.beta2));
    for i in 0..n {
        let (mut g, mut p) = (g[i] * T::c(a.clip), p[i]);
        if a.decoupled {
            p *= T::c(a.decay);
        } else {
            g += T::c(a.wd) * p;
        }
        let m = b1 * mv[i] + (T::one() - b1) * g;
        let v = b2 * mv[n + i] + (T::one() - b2) * g * g;
        out[i] = p - T::c(a.step_size) * m / (v.sqrt() / T::c(a.bias2_sqrt) + T::c(a.eps));
        out[n + i] = m;
        out[2 * n + i] = v;
    }
    out
}

#[cfg(feature = "cuda")]
mod gpu {
    use super::Fused;
    use crate::config::Activation;
    use crate::nn::layernorm::LN_EPS;
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg};
    use candle_core::cuda_backend::{CudaDType, WrapErr};
    use candle_core::{CudaStorage, DType, Layout, Result, Shape, WithDType, bail};

    pub(super) const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/fused.ptx"));

    /// Elementwise launch: 256 threads a block, grid-stride loop.
    fn flat(n: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (n.div_ceil(256).clamp(1, 1 << 16) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// Row launch: one warp per row, 8 rows a block.
    fn by_rows(rows: usize) -> LaunchConfig {
        LaunchConfig { grid_dim: (rows.div_ceil(8).max(1) as u32, 1, 1), block_dim: (32, 8, 1), shared_mem_bytes: 0 }
    }

    /// Launches `op` on storages of element type S with scalars of type C (the type of the
    /// kernel's arithmetic: S itself, or f32 for bf16).
    fn launch<S: CudaDType + DeviceRepr, C: DeviceRepr + WithDType>(
        op: Fused,
        inputs: &[(&CudaStorage, &Layout)],
        suffix: &str,
    ) -> Result<CudaStorage> {
        let dev = inputs[0].0.device.clone();
        let views = inputs
            .iter()
            .map(|(s, l)| match l.contiguous_offsets() {
                Some((a, b)) => Ok(s.as_cuda_slice::<S>()?.slice(a..b)),
                None => bail!("fused op: input is not contiguous"),
            })
            .collect::<Result<Vec<_>>>()?;
        let n = inputs[0].1.shape().elem_count();
        let k = inputs[0].1.shape().dims().last().copied().unwrap_or(1).max(1);
        let (n64, k64, rows) = (n as u64, k as u64, (n / k) as u64);
        let out_len = op.out_shape(inputs[0].1.shape(), inputs.len()).elem_count();
        // SAFETY: every element is written by the kernel below.
        let out = unsafe { dev.alloc::<S>(out_len.max(1)) }?;
        let (kernel, cfg) = match op {
            Fused::AddRows | Fused::MulRows => ("rows_op", flat(n)),
            Fused::Softmax { .. } => ("softmax_fwd", by_rows(n / k)),
            Fused::SoftmaxBackward { .. } => ("softmax_bwd", by_rows(n / k)),
            Fused::LayerNorm | Fused::LayerNormXhatProduct => ("ln_rows", by_rows(n / k)),
            Fused::LayerNormBackward => ("ln_bwd", by_rows(n / k)),
            Fused::BiasActivation { .. } => ("bias_act", flat(n)),
            Fused::Adam(_) => ("adam", flat(n)),
            Fused::SplitHeads { .. } | Fused::MergeHeads => {
                let (rows, _, _, dh, _) = op.heads_geometry(inputs[0].1.shape(), inputs.len());
                // 16 bytes a thread where every run of d_h and every operand's address allow
                let unit = 16 / std::mem::size_of::<S>();
                let stream = dev.cuda_stream();
                let aligned = |ptr: u64| ptr.is_multiple_of(16);
                let wide = dh.is_multiple_of(unit)
                    && views.iter().all(|v| aligned(v.device_ptr(&stream).0))
                    && aligned(out.device_ptr(&stream).0);
                let (kernel, unit) = if wide { ("heads16", unit) } else { ("heads", 1) };
                let threads = (out_len / rows.max(1)).div_ceil(unit);
                // a few rows a thread, so that its column's index arithmetic is done once
                let cfg = LaunchConfig {
                    grid_dim: (threads.div_ceil(256).max(1) as u32, rows.div_ceil(4).clamp(1, 65535) as u32, 1),
                    block_dim: (256, 1, 1),
                    shared_mem_bytes: 0,
                };
                (kernel, cfg)
            }
        };
        let func = dev.get_or_load_custom_func(&format!("{kernel}_{suffix}"), "urpe_fused", PTX)?;
        let mut b = func.builder();
        let eps = C::from_f64(LN_EPS);
        let scale = match op {
            Fused::Softmax { scale, .. } | Fused::SoftmaxBackward { scale } => C::from_f64(scale),
            _ => C::from_f64(1.0),
        };
        let (period, flag, act) = match op {
            Fused::Softmax { period, .. } => (period as u64, 0i32, 0i32),
            Fused::MulRows => (0, 1, 0),
            Fused::LayerNormXhatProduct => (0, 1, 0),
            Fused::BiasActivation { act, grad } => (0, grad as i32, matches!(act, Activation::Relu) as i32),
            Fused::Adam(a) => (0, a.decoupled as i32, 0),
            _ => (0, 0, 0),
        };
        let adam = match op {
            Fused::Adam(a) => [a.clip, a.wd, a.decay, a.beta1, a.beta2, a.step_size, a.bias2_sqrt, a.eps],
            _ => [0.0; 8],
        }
        .map(C::from_f64);
        let heads_op = matches!(op, Fused::SplitHeads { .. } | Fused::MergeHeads);
        let merge = matches!(op, Fused::MergeHeads) as i32;
        let geometry = match heads_op {
            true => {
                let (rows, n, h, dh, c) = op.heads_geometry(inputs[0].1.shape(), inputs.len());
                [rows, n, h, dh, c].map(|v| v as u32)
            }
            false => [0; 5],
        };
        match op {
            Fused::AddRows | Fused::MulRows => {
                b.arg(&views[0]).arg(&views[1]).arg(&out).arg(&n64).arg(&k64).arg(&flag);
            }
            Fused::Softmax { .. } => {
                b.arg(&views[0]).arg(&views[1]).arg(&out).arg(&rows).arg(&k64).arg(&period).arg(&scale);
            }
            Fused::SoftmaxBackward { .. } => {
                b.arg(&views[0]).arg(&views[1]).arg(&out).arg(&rows).arg(&k64).arg(&scale);
            }
            Fused::LayerNorm => {
                b.arg(&views[0]).arg(&views[1]).arg(&views[2]).arg(&out).arg(&rows).arg(&k64).arg(&eps).arg(&flag);
            }
            Fused::LayerNormXhatProduct => {
                b.arg(&views[0]).arg(&views[1]).arg(&views[0]).arg(&out).arg(&rows).arg(&k64).arg(&eps).arg(&flag);
            }
            Fused::LayerNormBackward => {
                b.arg(&views[0]).arg(&views[1]).arg(&views[2]).arg(&out).arg(&rows).arg(&k64).arg(&eps);
            }
            Fused::BiasActivation { grad, .. } => {
                let g = if grad { &views[2] } else { &views[0] };
                b.arg(&views[0]).arg(&views[1]).arg(g).arg(&out).arg(&n64).arg(&k64).arg(&act).arg(&flag);
            }
            Fused::SplitHeads { .. } | Fused::MergeHeads => {
                let [rows, n, h, dh, c] = &geometry;
                let merge = &merge;
                let part = |i: usize| &views[i.min(views.len() - 1)];
                let (src1, src2, bias) =
                    if *merge == 1 { (part(1), part(2), part(0)) } else { (part(0), part(0), part(1)) };
                b.arg(&views[0]).arg(src1).arg(src2).arg(bias).arg(&out);
                b.arg(rows).arg(n).arg(h).arg(dh).arg(c).arg(merge);
            }
            Fused::Adam(_) => {
                let [clip, wd, decay, b1, b2, step, bias2, eps] = &adam;
                b.arg(&views[0]).arg(&views[1]).arg(&views[2]).arg(&out).arg(&n64);
                b.arg(clip).arg(wd).arg(decay).arg(&flag).arg(b1).arg(b2).arg(step).arg(bias2).arg(eps);
            }
        }
        // SAFETY: the argument list matches the kernel's signature in fused.cu.
        unsafe { b.launch(cfg) }.w()?;
        Ok(CudaStorage::wrap_cuda_slice(out, dev))
    }

    impl Fused {
        /// Runs on CUDA storages (every input contiguous, of one float type: f32, f64, or
        /// bf16 for every op but Adam).
        pub(super) fn cuda_storage(&self, inputs: &[(&CudaStorage, &Layout)]) -> Result<(CudaStorage, Shape)> {
            self.check_layouts(&inputs.iter().map(|(_, l)| *l).collect::<Vec<_>>())?;
            let shape = self.out_shape(inputs[0].1.shape(), inputs.len());
            let out = match inputs[0].0.dtype() {
                DType::F32 => launch::<f32, f32>(*self, inputs, "f32")?,
                DType::F64 => launch::<f64, f64>(*self, inputs, "f64")?,
                DType::BF16 if !matches!(self, Fused::Adam(_)) => launch::<half::bf16, f32>(*self, inputs, "bf16")?,
                other => bail!("fused op {}: no kernel for {other:?}", self.name()),
            };
            Ok((out, shape))
        }
    }
}

impl CustomOp1 for Fused {
    fn name(&self) -> &'static str {
        Fused::name(self)
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout) -> Result<(CpuStorage, Shape)> {
        self.cpu_storage(&[(s1, l1)])
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s1: &candle_core::CudaStorage, l1: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        self.cuda_storage(&[(s1, l1)])
    }
}

impl CustomOp2 for Fused {
    fn name(&self) -> &'static str {
        Fused::name(self)
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.cpu_storage(&[(s1, l1), (s2, l2)])
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.cuda_storage(&[(s1, l1), (s2, l2)])
    }
}

impl CustomOp3 for Fused {
    fn name(&self) -> &'static str {
        Fused::name(self)
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.cpu_storage(&[(s1, l1), (s2, l2), (s3, l3)])
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.cuda_storage(&[(s1, l1), (s2, l2), (s3, l3)])
    }
}

// Operand checks. Every public op checks its operands here, in the wrapper, before any
// dispatch: so both the CPU loops and the CUDA launches (which size their loops from the
// first input and read the others at offsets derived from it) only ever see operands of
// the shapes they assume. A violation is an error naming the op, the operand, and what
// was expected against what was given. Non-contiguous operands are made contiguous
// (`.contiguous()` in the wrappers); [`Fused::check_layouts`] re-checks the lengths at the kernels' door.

/// A named operand of a fused op.
type Operand<'a> = (&'a str, &'a Tensor);

/// The float operands of `op` share one dtype, f32, f64 or bf16, and one device; returns
/// the dtype.
fn expect_float(op: &str, operands: &[Operand]) -> Result<DType> {
    expect_dtype(op, operands, &[DType::F32, DType::F64, DType::BF16])
}

/// The operands of `op` share one dtype, one of `allowed`, and one device; returns the dtype.
fn expect_dtype(op: &str, operands: &[Operand], allowed: &[DType]) -> Result<DType> {
    let (first, t0) = operands[0];
    let dtype = t0.dtype();
    if !allowed.contains(&dtype) {
        let names: Vec<&str> = allowed.iter().map(|d| d.as_str()).collect();
        bail!("{op}: operand {first} has dtype {dtype:?}, expected one of {}", names.join(", "));
    }
    for &(name, t) in &operands[1..] {
        if t.dtype() != dtype {
            bail!("{op}: operand {name} has dtype {:?}, expected {dtype:?} (the dtype of {first})", t.dtype());
        }
        if !t.device().same_device(t0.device()) {
            bail!("{op}: operand {name} is on {:?}, expected {:?} (the device of {first})", t.device(), t0.device());
        }
    }
    Ok(dtype)
}

/// `t` has exactly the shape `dims`.
fn expect_dims(op: &str, (name, t): Operand, dims: &[usize]) -> Result<()> {
    if t.dims() != dims {
        bail!("{op}: operand {name} has shape {:?}, expected {dims:?}", t.dims());
    }
    Ok(())
}

/// `t` has the shape of `like`.
fn expect_same_shape(op: &str, operand: Operand, (like, l): Operand) -> Result<()> {
    if operand.1.dims() != l.dims() {
        bail!(
            "{op}: operand {} has shape {:?}, expected {:?} (the shape of {like})",
            operand.0,
            operand.1.dims(),
            l.dims()
        );
    }
    Ok(())
}

/// `t` has rank `rank`; returns its dims.
fn expect_rank<'a>(op: &str, (name, t): Operand<'a>, rank: usize) -> Result<&'a [usize]> {
    if t.rank() != rank {
        bail!("{op}: operand {name} has shape {:?} (rank {}), expected rank {rank}", t.dims(), t.rank());
    }
    Ok(t.dims())
}

/// The row length (last axis) of `t`, which must have rank ≥ 1.
fn row_len(op: &str, (name, t): Operand) -> Result<usize> {
    match t.dims().last() {
        Some(&k) => Ok(k),
        None => bail!("{op}: operand {name} is a scalar, expected rank ≥ 1 (rows along the last axis)"),
    }
}

/// A size the heads kernel indexes in 32 bits.
fn expect_u32(op: &str, what: &str, v: usize) -> Result<()> {
    if u32::try_from(v).is_err() {
        bail!("{op}: {what} {v} exceeds the kernel's 32-bit index range");
    }
    Ok(())
}

/// x [.., k] and one vector v [k] per row: their dtype and k.
fn expect_rows_and_vector(op: &str, x: Operand, v: Operand) -> Result<usize> {
    expect_float(op, &[x, v])?;
    let k = row_len(op, x)?;
    expect_dims(op, v, &[k])?;
    Ok(k)
}

fn apply2(op: Fused, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.contiguous()?.apply_op2_no_bwd(&b.contiguous()?, &op)
}

fn apply3(op: Fused, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<Tensor> {
    a.contiguous()?.apply_op3_no_bwd(&b.contiguous()?, &c.contiguous()?, &op)
}

/// x + v with v [k] added to every row of x [.., k].
pub fn add_rows(x: &Tensor, v: &Tensor) -> Result<Tensor> {
    expect_rows_and_vector("add_rows", ("x", x), ("v", v))?;
    apply2(Fused::AddRows, x, v)
}

/// x ⊙ v with v [k] multiplying every row of x [.., k].
pub fn mul_rows(x: &Tensor, v: &Tensor) -> Result<Tensor> {
    expect_rows_and_vector("mul_rows", ("x", x), ("v", v))?;
    apply2(Fused::MulRows, x, v)
}

/// softmax(scale·x + bias) over the last axis, bias [P, n] repeating every P rows of
/// x [.., n] (P ≥ 1 divides the number of rows).
pub fn softmax(x: &Tensor, bias: &Tensor, scale: f64) -> Result<Tensor> {
    const OP: &str = "softmax";
    expect_float(OP, &[("x", x), ("bias", bias)])?;
    let n = row_len(OP, ("x", x))?;
    let &[period, cols] = expect_rank(OP, ("bias", bias), 2)? else { unreachable!("rank 2") };
    let rows = x.elem_count() / n.max(1);
    if cols != n || period == 0 || !rows.is_multiple_of(period) {
        bail!(
            "{OP}: operand bias has shape {:?}, expected [P, {n}] with P ≥ 1 dividing the {rows} rows of x {:?}",
            bias.dims(),
            x.dims()
        );
    }
    apply2(Fused::Softmax { scale, period }, x, bias)
}

/// ∂L/∂x of [`softmax`] (times its scale) from its output y and g = ∂L/∂y.
pub fn softmax_backward(y: &Tensor, g: &Tensor, scale: f64) -> Result<Tensor> {
    const OP: &str = "softmax_backward";
    expect_float(OP, &[("y", y), ("g", g)])?;
    row_len(OP, ("y", y))?;
    expect_same_shape(OP, ("g", g), ("y", y))?;
    apply2(Fused::SoftmaxBackward { scale }, y, g)
}

/// LayerNorm over the last axis: (x − μ)/√(σ² + ε) ⊙ w + b.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    const OP: &str = "layer_norm";
    expect_float(OP, &[("x", x), ("w", w), ("b", b)])?;
    let k = row_len(OP, ("x", x))?;
    expect_dims(OP, ("w", w), &[k])?;
    expect_dims(OP, ("b", b), &[k])?;
    apply3(Fused::LayerNorm, x, w, b)
}

/// ∂L/∂x of [`layer_norm`] from its input x, weight w and g = ∂L/∂y.
pub fn layer_norm_backward(x: &Tensor, w: &Tensor, g: &Tensor) -> Result<Tensor> {
    const OP: &str = "layer_norm_backward";
    expect_float(OP, &[("x", x), ("w", w), ("g", g)])?;
    let k = row_len(OP, ("x", x))?;
    expect_dims(OP, ("w", w), &[k])?;
    expect_same_shape(OP, ("g", g), ("x", x))?;
    apply3(Fused::LayerNormBackward, x, w, g)
}

/// g ⊙ x̂ for [`layer_norm`]'s input x (summed over rows: the weight's gradient).
pub fn layer_norm_xhat_product(x: &Tensor, g: &Tensor) -> Result<Tensor> {
    const OP: &str = "layer_norm_xhat_product";
    expect_float(OP, &[("x", x), ("g", g)])?;
    row_len(OP, ("x", x))?;
    expect_same_shape(OP, ("g", g), ("x", x))?;
    apply2(Fused::LayerNormXhatProduct, x, g)
}

/// act(m + b), b [k] added to every row of m [.., k].
pub fn bias_activation(m: &Tensor, b: &Tensor, act: Activation) -> Result<Tensor> {
    expect_rows_and_vector("bias_activation", ("m", m), ("b", b))?;
    apply2(Fused::BiasActivation { act, grad: false }, m, b)
}

/// g ⊙ act'(m + b): the gradient through [`bias_activation`] from g = ∂L/∂y.
pub fn bias_activation_backward(m: &Tensor, b: &Tensor, g: &Tensor, act: Activation) -> Result<Tensor> {
    const OP: &str = "bias_activation_backward";
    expect_float(OP, &[("m", m), ("b", b), ("g", g)])?;
    expect_rows_and_vector(OP, ("m", m), ("b", b))?;
    expect_same_shape(OP, ("g", g), ("m", m))?;
    apply3(Fused::BiasActivation { act, grad: true }, m, b, g)
}

/// One Adam update of θ from g (θ's shape) and the moments mv = [m, v] ([2, len], len
/// the number of θ's elements): [θ', m', v'] as [3, len] (one pass instead of a dozen
/// elementwise ops).
pub fn adam_update(theta: &Tensor, g: &Tensor, mv: &Tensor, update: AdamUpdate) -> Result<Tensor> {
    const OP: &str = "adam_update";
    expect_dtype(OP, &[("theta", theta), ("g", g), ("mv", mv)], &[DType::F32, DType::F64])?;
    expect_same_shape(OP, ("g", g), ("theta", theta))?;
    expect_dims(OP, ("mv", mv), &[2, theta.elem_count()])?;
    apply3(Fused::Adam(update), &theta.flatten_all()?, &g.flatten_all()?, &mv.flatten_all()?)
}

/// Rows y [b·n, c·d] plus bias [c·d] as c stacked heads tensors [c, b, h, n, d_h]
/// (d = h·d_h): out[s, β, η, i, e] = y[β·n + i, s·d + η·d_h + e] + bias[s·d + η·d_h + e].
pub fn split_heads(y: &Tensor, bias: &Tensor, n: usize, heads: usize, chunks: usize) -> Result<Tensor> {
    const OP: &str = "split_heads";
    expect_float(OP, &[("y", y), ("bias", bias)])?;
    let &[rows, cols] = expect_rank(OP, ("y", y), 2)? else { unreachable!("rank 2") };
    if n == 0 || heads == 0 || chunks == 0 {
        bail!("{OP}: n {n}, heads {heads} and chunks {chunks} must be positive");
    }
    if !rows.is_multiple_of(n) || !cols.is_multiple_of(chunks.saturating_mul(heads)) {
        bail!(
            "{OP}: operand y has shape {:?}, expected [b·n, c·h·d_h] with n = {n}, h = {heads} heads, c = {chunks} chunks",
            y.dims()
        );
    }
    expect_dims(OP, ("bias", bias), &[cols])?;
    expect_u32(OP, "rows", rows)?;
    expect_u32(OP, "columns", cols)?;
    apply2(Fused::SplitHeads { n, heads, chunks }, y, bias)
}

/// One or three heads tensors [b, h, n, d_h] side by side as rows [b·n, c·h·d_h] (the
/// inverse of [`split_heads`] without its bias).
pub fn merge_heads(parts: &[&Tensor]) -> Result<Tensor> {
    const OP: &str = "merge_heads";
    const NAMES: [&str; 3] = ["parts[0]", "parts[1]", "parts[2]"];
    if !matches!(parts.len(), 1 | 3) {
        bail!("{OP}: {} parts, expected one or three", parts.len());
    }
    let operands: Vec<Operand> = NAMES.into_iter().zip(parts.iter().copied()).collect();
    expect_float(OP, &operands)?;
    let &[b, h, n, dh] = expect_rank(OP, operands[0], 4)? else { unreachable!("rank 4") };
    for &part in &operands[1..] {
        expect_same_shape(OP, part, operands[0])?;
    }
    expect_u32(OP, "rows", b.saturating_mul(n))?;
    expect_u32(OP, "columns", parts.len().saturating_mul(h).saturating_mul(dh))?;
    match parts {
        [a] => a.contiguous()?.apply_op1_no_bwd(&Fused::MergeHeads),
        [a, b, c] => apply3(Fused::MergeHeads, a, b, c),
        _ => unreachable!("checked above"),
    }
}

/// Σ g² of one tensor in f64, written as up to [`SUM_SQUARES_PARTS`] partial sums into
/// the (zeroed) slots of the destination (in place, so that the sums of every gradient
/// land in one buffer that crosses to the host in one read).
struct SumSquares;

/// Partial sums per tensor in [`sum_squares_into`] (the most blocks one tensor uses).
pub const SUM_SQUARES_PARTS: usize = 64;

impl candle_core::InplaceOp2 for SumSquares {
    fn name(&self) -> &'static str {
        "sum-squares"
    }

    fn cpu_fwd(&self, dst: &mut CpuStorage, dst_l: &Layout, src: &CpuStorage, l: &Layout) -> Result<()> {
        let Some((a, b)) = l.contiguous_offsets() else { bail!("sum_squares: input is not contiguous") };
        let sum = match src {
            CpuStorage::F32(v) => v[a..b].iter().map(|&x| (x as f64) * (x as f64)).sum(),
            CpuStorage::F64(v) => v[a..b].iter().map(|&x| x * x).sum(),
            _ => bail!("sum_squares: f32 or f64 only"),
        };
        match dst {
            CpuStorage::F64(out) => out[dst_l.start_offset()] = sum,
            _ => bail!("sum_squares: the destination is f64"),
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        dst: &mut candle_core::CudaStorage,
        dst_l: &Layout,
        src: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<()> {
        use candle_core::backend::BackendStorage;
        use candle_core::cuda_backend::WrapErr;
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
        let Some((a, b)) = l.contiguous_offsets() else { bail!("sum_squares: input is not contiguous") };
        if dst_l.shape().elem_count() != SUM_SQUARES_PARTS || dst.dtype() != candle_core::DType::F64 {
            bail!("sum_squares: the destination is {SUM_SQUARES_PARTS} f64 slots");
        }
        let n = (b - a) as u64;
        let blocks = (b - a).div_ceil(1024).clamp(1, SUM_SQUARES_PARTS) as u32;
        let cfg = LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        let dev = src.device.clone();
        let start = dst_l.start_offset();
        let out = dst.as_cuda_slice_mut::<f64>()?;
        let mut out = out.slice_mut(start..start + SUM_SQUARES_PARTS);
        let name = match src.dtype() {
            candle_core::DType::F32 => "sum_squares_f32",
            candle_core::DType::F64 => "sum_squares_f64",
            other => bail!("sum_squares: f32 or f64 only, not {other:?}"),
        };
        let func = dev.get_or_load_custom_func(name, "urpe_fused", gpu::PTX)?;
        let (single, double);
        let mut builder = func.builder();
        match src.dtype() {
            candle_core::DType::F32 => {
                single = src.as_cuda_slice::<f32>()?.slice(a..b);
                builder.arg(&single)
            }
            _ => {
                double = src.as_cuda_slice::<f64>()?.slice(a..b);
                builder.arg(&double)
            }
        };
        builder.arg(&mut out).arg(&n);
        // SAFETY: the arguments match sum_squares_* in fused.cu; it writes `blocks` ≤ 64 slots.
        unsafe { builder.launch(cfg) }.w()?;
        Ok(())
    }
}

/// Σ g² over all `tensors` (at least one, all f32 or all f64, on one device), in f64, as a
/// device buffer of partial sums (one block of [`SUM_SQUARES_PARTS`] slots per tensor;
/// their total is the sum).
pub fn sum_squares_into(tensors: &[Tensor]) -> Result<Tensor> {
    const OP: &str = "sum_squares_into";
    let Some(first) = tensors.first() else { bail!("{OP}: no tensors, expected at least one") };
    let names: Vec<String> = (0..tensors.len()).map(|i| format!("tensors[{i}]")).collect();
    let operands: Vec<Operand> = names.iter().map(String::as_str).zip(tensors).collect();
    expect_dtype(OP, &operands, &[DType::F32, DType::F64])?;
    let parts = Tensor::zeros(tensors.len() * SUM_SQUARES_PARTS, candle_core::DType::F64, first.device())?;
    for (i, t) in tensors.iter().enumerate() {
        parts.narrow(0, i * SUM_SQUARES_PARTS, SUM_SQUARES_PARTS)?.inplace_op2(&t.contiguous()?, &SumSquares)?;
    }
    Ok(parts)
}
