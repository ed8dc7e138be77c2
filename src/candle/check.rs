//! The candle model against the ndarray engine on random models: outputs, loss and every
//! gradient. Used by the differential tests (CPU, f64 and f32) and by
//! `urpe check-device` (a GPU against the CPU engine).

use super::CandleModel;
use super::model::to_host;
use crate::config::{Activation, Family, InputKind, ModelSpec, Norm, OutputKind};
use crate::error::Result;
use crate::float::Float;
use crate::nn::loss::{cross_entropy_loss, mse_loss};
use crate::nn::{BackwardWorkspace, Model, ModelInput, Params};
use crate::normaliser::Attention;
use crate::theory::Outputs;
use candle_core::{DType, Device};
use ndarray::{Array2, Array3};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A random model with a batch of inputs and targets.
pub struct Case {
    /// The model (f64; cast for f32 comparisons).
    pub model: Model<f64>,
    /// Token inputs (used when the model reads tokens).
    pub tokens: Array2<usize>,
    /// Real inputs (used when the model reads real vectors).
    pub x: Array3<f64>,
    /// Targets.
    pub targets: Outputs<f64>,
}

/// A random configuration of `family` (1–3 layers, 1/2/4 heads of width 2 or 4, n 2–6,
/// every norm, causal or not, shared or per-layer positions, GELU or ReLU, token or real
/// input and output) with weights drawn from U(−scale, scale), seeded.
pub fn random_case(family: Family, urpe: bool, seed: u64, scale: f64) -> Result<Case> {
    random_case_of(family, urpe, seed, scale, [2, 4], Attention::SOFTMAX)
}

/// [`random_case`] with heads of the widths `head_widths` (bf16 checks take wider heads:
/// a layer norm over 2 to 4 entries is too ill-conditioned for 8 significant bits) and the
/// normaliser `attention` (a causal-only normaliser or family gets the mask).
pub fn random_case_of(
    family: Family,
    urpe: bool,
    seed: u64,
    scale: f64,
    head_widths: [usize; 2],
    attention: Attention,
) -> Result<Case> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let heads = [1, 2, 4][rng.random_range(0..3)];
    let dh = head_widths[rng.random_range(0..2)];
    let n = rng.random_range(2..7);
    let tokens_io = rng.random_range(0..2) == 0;
    let (input, output) = if tokens_io {
        (InputKind::Tokens { vocab: 5 }, OutputKind::Classes { classes: 3 })
    } else {
        (InputKind::Real { d_in: 3 }, OutputKind::Real { d_out: 2 })
    };
    let mut spec =
        ModelSpec::new(family, rng.random_range(1..4), heads * dh, heads, n + rng.random_range(0..3), input, output);
    spec.urpe = urpe;
    spec.norm = Some([Norm::Post, Norm::Pre, Norm::None][rng.random_range(0..3)]);
    spec.causal = rng.random_range(0..2) == 0 || attention.0.causal_only() || family.causal_only();
    spec.attention = Some(attention);
    spec.share_position = Some(rng.random_range(0..2) == 0);
    spec.activation = Some(if rng.random_range(0..2) == 0 { Activation::Gelu } else { Activation::Relu });
    spec.t5_buckets = Some(6);
    spec.t5_max_distance = Some(5);
    spec.ffn = Some(2 * heads * dh);
    let mut model = Model::<f64>::zeros(spec.resolve()?)?;
    model.params.data.iter_mut().for_each(|v| *v = rng.random_range(-scale..scale));
    let batch = 3;
    let tokens = Array2::from_shape_fn((batch, n), |_| rng.random_range(0..5));
    let x = Array3::from_shape_fn((batch, n, 3), |_| rng.random_range(-1.0..1.0));
    let targets = if tokens_io {
        Outputs::Classes(Array2::from_shape_fn((batch, n), |_| rng.random_range(0..3)))
    } else {
        Outputs::Real(Array3::from_shape_fn((batch, n, 2), |_| rng.random_range(-1.0..1.0)))
    };
    Ok(Case { model, tokens, x, targets })
}

impl Case {
    /// The same case with `bos`: the parameters of the model kept where their shape is
    /// unchanged; the BOS vector and the position tables (sized for one more row) drawn from
    /// U(−scale, scale), seeded.
    pub fn with_bos(&self, seed: u64, scale: f64) -> Result<Case> {
        let mut config = self.model.config.clone();
        config.bos = true;
        let mut model = Model::<f64>::zeros(config)?;
        let (ours, theirs) = (model.layout.tensors.clone(), self.model.layout.tensors.clone());
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for spec in ours.specs() {
            let values = &mut model.params.data[spec.range()];
            match theirs.find(&spec.name).filter(|&id| theirs.spec(id).shape == spec.shape) {
                Some(id) => values.copy_from_slice(self.model.params.slice(id)),
                None => values.iter_mut().for_each(|v| *v = rng.random_range(-scale..scale)),
            }
        }
        Ok(Case { model, tokens: self.tokens.clone(), x: self.x.clone(), targets: self.targets.clone() })
    }

    /// The case's input for a model reading `F`.
    pub fn input<'a, F: Float>(&'a self, x: &'a Array3<F>) -> ModelInput<'a, F> {
        match self.model.config.input {
            InputKind::Tokens { .. } => ModelInput::Tokens(self.tokens.view()),
            InputKind::Real { .. } => ModelInput::Real(x.view()),
        }
    }
}

fn cast_targets<F: Float>(t: &Outputs<f64>) -> Outputs<F> {
    match t {
        Outputs::Real(y) => Outputs::Real(y.mapv(F::c)),
        Outputs::Classes(l) => Outputs::Classes(l.clone()),
    }
}

/// The ndarray engine's output, loss and gradients for one batch.
pub fn reference<F: Float>(
    model: &Model<F>,
    input: &ModelInput<F>,
    targets: &Outputs<F>,
) -> Result<(Vec<f64>, f64, Params<F>)> {
    let (batch, n) = input.batch_and_length();
    let mut cache = model.cache_for(input);
    model.forward(input, &mut cache)?;
    let mut d_out = Array2::zeros(cache.output.raw_dim());
    let loss = match targets {
        Outputs::Real(y) => {
            let y2 = y.view().into_shape_with_order((batch * n, y.dim().2)).expect("contiguous");
            mse_loss(d_out.view_mut(), cache.output.view(), y2, y.len())
        }
        Outputs::Classes(l) => {
            let labels = l.view().into_shape_with_order(batch * n).expect("contiguous");
            cross_entropy_loss(d_out.view_mut(), cache.output.view(), labels, batch * n)
        }
    };
    let mut grads = Params::zeros(model.layout.tensors.clone());
    let mut ws = BackwardWorkspace::new(model, batch, n);
    model.backward(input, &cache, d_out.view(), &mut grads, &mut ws);
    Ok((cache.output.iter().map(|v| v.f64()).collect(), loss, grads))
}

fn largest(values: &[f64]) -> f64 {
    values.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// A relative gap between two value lists with a floor for the denominator.
type Gap = fn(&[f64], &[f64], f64) -> f64;

/// max |ours − theirs| / max(max |theirs|, floor).
pub fn relative_gap(ours: &[f64], theirs: &[f64], floor: f64) -> f64 {
    let diff = ours.iter().zip(theirs).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    diff / largest(theirs).max(floor)
}

/// ‖ours − theirs‖₂ / max(‖theirs‖₂, floor): the norm-wise gap by which mixed precision is
/// judged (one element of a sum that cancels carries the rounding of its largest terms).
pub fn relative_norm_gap(ours: &[f64], theirs: &[f64], floor: f64) -> f64 {
    let diff = ours.iter().zip(theirs).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
    diff / norm(theirs).max(floor)
}

fn norm(values: &[f64]) -> f64 {
    values.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// The worst relative gap between the candle model (variables of `dtype` on `device`,
/// computing in `compute`: `dtype`, or bf16 over f32) and the ndarray engine (as F) over
/// output, loss and every gradient of `case`, and where it is: max-abs gaps relative to
/// max(max |tensor|, α·G), G the largest gradient; in bf16 norm-wise gaps
/// ([`relative_norm_gap`]) relative to max(‖tensor‖, α·‖all gradients‖).
pub fn compare<F: Float>(
    case: &Case,
    device: &Device,
    dtype: DType,
    compute: DType,
    alpha: f64,
) -> Result<(f64, String)> {
    let model: Model<F> = case.model.cast();
    let x: Array3<F> = case.x.mapv(F::c);
    let targets: Outputs<F> = cast_targets(&case.targets);
    let input = case.input(&x);
    let (out, loss, grads) = reference(&model, &input, &targets)?;
    let cm = CandleModel::from_model(&model, device, dtype)?.with_compute(compute)?;
    let (gap, size): (Gap, fn(&[f64]) -> f64) =
        if compute == DType::BF16 { (relative_norm_gap, norm) } else { (relative_gap, largest) };
    let mut worst = (gap(&to_host(&cm.forward(&input)?)?, &out, 1e-6), "output".to_string());
    let (closs, cgrads) = cm.loss_and_grads(&input, &targets)?;
    let cgrads: Params<f64> = cm.grads_to_host(&cgrads)?;
    let mut note = |gap: f64, what: String| {
        if gap > worst.0 {
            worst = (gap, what);
        }
    };
    note(relative_gap(&[closs], &[loss], 1e-6), "loss".into());
    let all: Vec<f64> = grads.data.iter().map(|v| v.f64()).collect();
    let g = size(&all);
    for spec in model.layout.tensors.specs() {
        note(gap(&cgrads.data[spec.range()], &all[spec.range()], alpha * g), format!("gradient of {}", spec.name));
    }
    Ok(worst)
}

/// How far the ndarray engine's own f32 result moves when every parameter moves by one
/// unit in the last place (up for every third parameter, in a fixed pattern): the worst
/// relative change over the output and every gradient, measured as [`compare`] measures a
/// gap (gradients against α·G, G the largest gradient). Two correct f32 implementations
/// that round differently can differ by about this much, so an f32 comparison at a
/// tolerance below it cannot tell a bug from rounding (a model of width 2, whose
/// LayerNorm of two features divides by their difference, moves by 9e-6 relative).
pub fn f32_sensitivity(case: &Case, alpha: f64) -> Result<f64> {
    let model: Model<f32> = case.model.cast();
    let x: Array3<f32> = case.x.mapv(f32::c);
    let targets: Outputs<f32> = cast_targets(&case.targets);
    let input = case.input(&x);
    let (out, _, grads) = reference(&model, &input, &targets)?;
    let mut moved = model.clone();
    for (i, w) in moved.params.data.iter_mut().enumerate() {
        if i % 3 == 0 && w.is_finite() && *w != 0.0 {
            *w = f32::from_bits(w.to_bits() + 1);
        }
    }
    let (out2, _, grads2) = reference(&moved, &input, &targets)?;
    let (g1, g2): (Vec<f64>, Vec<f64>) =
        (grads.data.iter().map(|v| v.f64()).collect(), grads2.data.iter().map(|v| v.f64()).collect());
    let floor = alpha * largest(&g1);
    let mut worst = relative_gap(&out2, &out, 1e-6);
    for spec in model.layout.tensors.specs() {
        worst = worst.max(relative_gap(&g2[spec.range()], &g1[spec.range()], floor));
    }
    Ok(worst)
}

/// Every fused kernel on `device` against its CPU version, on random inputs of awkward
/// sizes (rows and widths not multiples of a warp), in `dtype`: the largest relative gap of
/// each op, by name (in bf16, the ops that have a bf16 form: all but Adam and the sum of
/// squares, which only ever see f32 gradients).
pub fn fused_gaps(device: &Device, dtype: DType) -> Result<Vec<(&'static str, f64)>> {
    use super::fused::*;
    use super::model::err;
    use crate::config::Activation;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut random = |shape: &[usize], lo: f64, hi: f64| -> Result<(candle_core::Tensor, candle_core::Tensor)> {
        let n: usize = shape.iter().product();
        let values: Vec<f64> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
        let cpu =
            candle_core::Tensor::from_vec(values, shape, &Device::Cpu).and_then(|t| t.to_dtype(dtype)).map_err(err)?;
        let on = cpu.to_device(device).map_err(err)?;
        Ok((cpu, on))
    };
    let (x, xd) = random(&[37, 45], -2.0, 2.0)?;
    let (v, vd) = random(&[45], -1.0, 1.0)?;
    let (g, gd) = random(&[37, 45], -1.0, 1.0)?;
    let (s, sd) = random(&[24, 130], -3.0, 3.0)?;
    let (bias, biasd) = random(&[6, 130], -1.0, 1.0)?;
    let (gs, gsd) = random(&[24, 130], -1.0, 1.0)?;
    let (mv, mvd) = random(&[2, 37 * 45], 0.0, 0.5)?;
    let (y, yd) = random(&[2 * 5, 3 * 3 * 4], -1.0, 1.0)?; // rows b·n = 2·5, 3 chunks of 3 heads × 4
    let (yb, ybd) = random(&[3 * 3 * 4], -1.0, 1.0)?;
    let heads: Vec<_> = (0..3).map(|_| random(&[2, 3, 5, 4], -1.0, 1.0)).collect::<Result<_>>()?;
    // heads of width 8 (16 bytes a thread in every type) and a buffer one element longer,
    // read from its second element (an address that is not 16-byte aligned)
    let (y8, y8d) = random(&[2 * 5, 2 * 3 * 8], -1.0, 1.0)?;
    let (y8b, y8bd) = random(&[2 * 3 * 8], -1.0, 1.0)?;
    let wide: Vec<_> = (0..3).map(|_| random(&[2, 3, 5, 8], -1.0, 1.0)).collect::<Result<_>>()?;
    let (flat, flatd) = random(&[2 * 3 * 5 * 8 + 1], -1.0, 1.0)?;
    let adam = |decoupled| AdamUpdate {
        clip: 0.7,
        wd: 0.01,
        decay: 0.999,
        decoupled,
        beta1: 0.9,
        beta2: 0.999,
        step_size: 1e-2,
        bias2_sqrt: 0.3,
        eps: 1e-8,
    };
    type Op<'a> = Box<dyn Fn(&[&candle_core::Tensor]) -> candle_core::Result<candle_core::Tensor> + 'a>;
    /// A kernel's name, the op, and its inputs (CPU, device).
    type KernelCase<'a> = (&'static str, Op<'a>, Vec<(&'a candle_core::Tensor, &'a candle_core::Tensor)>);
    let cases: Vec<KernelCase> = vec![
        ("add_rows", Box::new(|t| add_rows(t[0], t[1])), vec![(&x, &xd), (&v, &vd)]),
        ("mul_rows", Box::new(|t| mul_rows(t[0], t[1])), vec![(&x, &xd), (&v, &vd)]),
        ("softmax", Box::new(|t| softmax(t[0], t[1], 0.3)), vec![(&s, &sd), (&bias, &biasd)]),
        (
            "softmax_backward",
            Box::new(|t| softmax_backward(&softmax(t[0], t[1], 1.0)?, t[2], 0.3)),
            vec![(&s, &sd), (&bias, &biasd), (&gs, &gsd)],
        ),
        ("layer_norm", Box::new(|t| layer_norm(t[0], t[1], t[1])), vec![(&x, &xd), (&v, &vd)]),
        (
            "layer_norm_backward",
            Box::new(|t| layer_norm_backward(t[0], t[1], t[2])),
            vec![(&x, &xd), (&v, &vd), (&g, &gd)],
        ),
        ("layer_norm_xhat_product", Box::new(|t| layer_norm_xhat_product(t[0], t[1])), vec![(&x, &xd), (&g, &gd)]),
        (
            "bias_activation gelu",
            Box::new(|t| bias_activation(t[0], t[1], Activation::Gelu)),
            vec![(&x, &xd), (&v, &vd)],
        ),
        (
            "bias_activation relu",
            Box::new(|t| bias_activation(t[0], t[1], Activation::Relu)),
            vec![(&x, &xd), (&v, &vd)],
        ),
        (
            "bias_activation_backward gelu",
            Box::new(|t| bias_activation_backward(t[0], t[1], t[2], Activation::Gelu)),
            vec![(&x, &xd), (&v, &vd), (&g, &gd)],
        ),
        (
            "bias_activation_backward relu",
            Box::new(|t| bias_activation_backward(t[0], t[1], t[2], Activation::Relu)),
            vec![(&x, &xd), (&v, &vd), (&g, &gd)],
        ),
        ("split_heads", Box::new(|t| split_heads(t[0], t[1], 5, 3, 3)), vec![(&y, &yd), (&yb, &ybd)]),
        ("merge_heads 1", Box::new(|t| merge_heads(&[t[0]])), vec![(&heads[0].0, &heads[0].1)]),
        (
            "merge_heads 3",
            Box::new(|t| merge_heads(&[t[0], t[1], t[2]])),
            vec![(&heads[0].0, &heads[0].1), (&heads[1].0, &heads[1].1), (&heads[2].0, &heads[2].1)],
        ),
        ("split_heads d_h 8", Box::new(|t| split_heads(t[0], t[1], 5, 3, 2)), vec![(&y8, &y8d), (&y8b, &y8bd)]),
        (
            "merge_heads 3 d_h 8",
            Box::new(|t| merge_heads(&[t[0], t[1], t[2]])),
            vec![(&wide[0].0, &wide[0].1), (&wide[1].0, &wide[1].1), (&wide[2].0, &wide[2].1)],
        ),
        (
            "merge_heads 1 d_h 8 unaligned",
            Box::new(|t| merge_heads(&[&t[0].narrow(0, 1, 2 * 3 * 5 * 8)?.reshape((2, 3, 5, 8))?])),
            vec![(&flat, &flatd)],
        ),
        (
            "sum_squares_into",
            Box::new(|t| sum_squares_into(&[t[0].clone(), t[1].clone()])?.sum_all()),
            vec![(&s, &sd), (&x, &xd)],
        ),
        (
            "adam_update adam",
            Box::new(|t| adam_update(t[0], t[1], t[2], adam(false))),
            vec![(&x, &xd), (&g, &gd), (&mv, &mvd)],
        ),
        (
            "adam_update adamw",
            Box::new(|t| adam_update(t[0], t[1], t[2], adam(true))),
            vec![(&x, &xd), (&g, &gd), (&mv, &mvd)],
        ),
    ];
    cases
        .into_iter()
        .filter(|(name, ..)| dtype != DType::BF16 || !(name.starts_with("adam") || name.starts_with("sum_squares")))
        .map(|(name, op, inputs)| {
            let (cpu, on): (Vec<_>, Vec<_>) = inputs.into_iter().unzip();
            let want = to_host(&op(&cpu).map_err(err)?)?;
            let got = to_host(&op(&on).map_err(err)?)?;
            Ok((name, relative_gap(&got, &want, 1e-6)))
        })
        .collect()
}
