//! The hand-written backward pass against central finite differences in f64, for every
//! position family (gate on and off), post/pre/none norms, causal on and off, depth 2,
//! shared and per-layer position tensors, token and real inputs, class and real outputs.
//!
//! Finite differences use the fourth-order stencil
//! g ≈ (−L(θ+2h) + 8L(θ+h) − 8L(θ−h) + L(θ−2h)) / 12h with h = 5e-4 (truncation O(h⁴);
//! the loss is exact to about 1e-15, so rounding adds about 4e-12), and the relative error
//! is |g_analytic − g_numeric| / max(|g_analytic|, |g_numeric|, 1e-4),
//! required ≤ 1e-6 for every checked element: every element of a tensor with at most
//! 64 of them, otherwise a seeded sample of 64. The floor 1e-4 (gradients here are about
//! 1e-2) keeps finite-difference noise on exactly-zero gradients (the key bias) from
//! dominating: below it the check is absolute, to 1e-10.
//!
//! ReLU is not differentiable at 0: an element whose stencil moves some FFN
//! pre-activation across 0 is skipped (finite differences are invalid there), and at most
//! a quarter of the elements may be skipped.

use ndarray::{Array2, Array3};
use rand::seq::index::sample;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use urpe::config::{Activation, Family, InputKind, ModelSpec, Norm, OutputKind, check_combination};
use urpe::nn::loss::{cross_entropy_loss, mse_loss};
use urpe::nn::{BackwardWorkspace, ForwardCache, Model, ModelInput, Params};
use urpe::normaliser::{self, Attention};

const H: f64 = 5e-4;
/// Step for ReLU models: small, so few stencils cross a kink (truncation is negligible at
/// any step where the function is smooth; rounding adds about 4e-11).
const H_RELU: f64 = 5e-5;
const FLOOR: f64 = 1e-4;
const TOLERANCE: f64 = 1e-6;
const PER_TENSOR: usize = 64;

struct Problem {
    model: Model<f64>,
    tokens: Array2<usize>,
    x: Array3<f64>,
    labels: ndarray::Array1<usize>,
    y: Array2<f64>,
}

impl Problem {
    fn input(&self) -> ModelInput<'_, f64> {
        match self.model.config.input {
            InputKind::Tokens { .. } => ModelInput::Tokens(self.tokens.view()),
            InputKind::Real { .. } => ModelInput::Real(self.x.view()),
        }
    }

    /// Signs of every FFN pre-activation of the last forward pass.
    fn kinks(cache: &ForwardCache<f64>) -> Vec<bool> {
        cache.layers.iter().flat_map(|l| l.ffn.up.iter().map(|&v| v > 0.0)).collect()
    }

    /// Loss of the current parameters; fills `d_out` with ∂L/∂output.
    fn loss(&self, cache: &mut ForwardCache<f64>, d_out: &mut Array2<f64>) -> f64 {
        let input = self.input();
        self.model.forward(&input, cache).unwrap();
        match self.model.config.output {
            OutputKind::Classes { .. } => {
                cross_entropy_loss(d_out.view_mut(), cache.output.view(), self.labels.view(), self.labels.len())
            }
            OutputKind::Real { .. } => mse_loss(d_out.view_mut(), cache.output.view(), self.y.view(), self.y.len()),
        }
    }
}

/// A random problem; for ReLU the first seed whose FFN pre-activations all lie at least
/// 1e-2 from the kink at 0 (finite differences need a smooth neighbourhood).
fn problem(family: Family, urpe: bool, norm: Norm, causal: bool, variant: usize) -> Problem {
    problem_with(family, urpe, norm, causal, variant, Attention::SOFTMAX)
}

/// [`problem`] with an attention normaliser; for relu attention also the first seed whose
/// finite attention scores all lie at least 1e-2 from its kink at 0.
fn problem_with(family: Family, urpe: bool, norm: Norm, causal: bool, variant: usize, attention: Attention) -> Problem {
    (0..)
        .map(|attempt| draw(family, urpe, norm, causal, variant, attention, attempt))
        .find(|p| {
            let (relu_ffn, relu_attention) =
                (p.model.config.activation == Activation::Relu, attention == Attention(normaliser::RELU));
            if !relu_ffn && !relu_attention {
                return true;
            }
            let input = p.input();
            let mut cache = p.model.cache_for(&input);
            let mut d_out = Array2::zeros((cache.output.nrows(), p.model.config.output.size()));
            p.loss(&mut cache, &mut d_out);
            let away = |v: &f64| !v.is_finite() || v.abs() >= 1e-2;
            cache.layers.iter().all(|l| {
                (!relu_ffn || l.ffn.up.iter().all(away)) && (!relu_attention || l.attn.scores.iter().all(away))
            })
        })
        .expect("some seed")
}

fn draw(
    family: Family,
    urpe: bool,
    norm: Norm,
    causal: bool,
    variant: usize,
    attention: Attention,
    attempt: u64,
) -> Problem {
    let (batch, n) = (2, 5);
    let tokens_io = variant.is_multiple_of(2);
    let input = if tokens_io { InputKind::Tokens { vocab: 6 } } else { InputKind::Real { d_in: 3 } };
    let output = if tokens_io { OutputKind::Classes { classes: 4 } } else { OutputKind::Real { d_out: 3 } };
    let mut spec = ModelSpec::new(family, 2, 8, 2, 6, input, output);
    spec.urpe = urpe;
    spec.norm = Some(norm);
    spec.causal = causal;
    spec.ffn = Some(12);
    spec.share_position = Some(variant % 3 != 1);
    spec.t5_buckets = Some(6);
    spec.t5_max_distance = Some(5);
    spec.rope_base = Some(50.0);
    spec.activation = Some(if variant == 3 { Activation::Relu } else { Activation::Gelu });
    spec.attention = Some(attention);
    let config = spec.resolve().unwrap();
    let mut model = Model::<f64>::zeros(config).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1000 + variant as u64 + 100 * attempt);
    let layout = model.layout.tensors.clone();
    for spec in layout.specs() {
        let centre = if spec.name.ends_with("norm1.weight")
            || spec.name.ends_with("norm2.weight")
            || spec.name.contains("urpe")
            || spec.name == "final_norm.weight"
        {
            1.0
        } else {
            0.0
        };
        for v in &mut model.params.data[spec.range()] {
            *v = centre + rng.random_range(-0.5..0.5);
        }
    }
    let rows = batch * n;
    Problem {
        model,
        tokens: Array2::from_shape_fn((batch, n), |_| rng.random_range(0..6)),
        x: Array3::from_shape_fn((batch, n, 3), |_| rng.random_range(-1.0..1.0)),
        labels: ndarray::Array1::from_shape_fn(rows, |_| rng.random_range(0..4)),
        y: Array2::from_shape_fn((rows, 3), |_| rng.random_range(-1.0..1.0)),
    }
}

fn relative_error(a: f64, n: f64) -> f64 {
    (a - n).abs() / a.abs().max(n.abs()).max(FLOOR)
}

/// Checks every parameter tensor and, for real inputs, the input; returns the largest
/// relative error with the place it occurred.
fn check(mut p: Problem, corrupt: Option<(&str, f64)>) -> (f64, String) {
    let h = if p.model.config.activation == Activation::Relu { H_RELU } else { H };
    let input_owned = p.input();
    let (batch, n) = input_owned.batch_and_length();
    let mut cache = p.model.cache_for(&input_owned);
    let out = p.model.config.output.size();
    let mut d_out = Array2::zeros((batch * n, out));
    p.loss(&mut cache, &mut d_out);
    let mut grads = Params::zeros(p.model.layout.tensors.clone());
    let mut ws = BackwardWorkspace::new(&p.model, batch, n);
    p.model.backward(&p.input(), &cache, d_out.view(), &mut grads, &mut ws);
    let d_input = ws.d_input.clone();
    if let Some((name, factor)) = corrupt {
        let id = p.model.layout.tensors.find(name).expect("a tensor of the model");
        grads.slice_mut(id).iter_mut().for_each(|g| *g *= factor);
    }

    let mut worst = (0.0, String::new());
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let layout = p.model.layout.tensors.clone();
    let kinks = Problem::kinks(&cache);
    let relu = p.model.config.activation == Activation::Relu;
    let mut skipped = 0usize;
    let mut checked = 0usize;
    // the stencil, or None where it crosses a ReLU kink
    let mut numeric = |p: &mut Problem,
                       get: &dyn Fn(&mut Problem) -> &mut f64,
                       cache: &mut ForwardCache<f64>,
                       d_out: &mut Array2<f64>| {
        let original = *get(p);
        let mut smooth = true;
        let mut at = |delta: f64, p: &mut Problem| {
            *get(p) = original + delta;
            let l = p.loss(cache, d_out);
            smooth &= !relu || Problem::kinks(cache) == kinks;
            l
        };
        let g = (-at(2.0 * h, p) + 8.0 * at(h, p) - 8.0 * at(-h, p) + at(-2.0 * h, p)) / (12.0 * h);
        *get(p) = original;
        checked += 1;
        if !smooth {
            skipped += 1;
        }
        smooth.then_some(g)
    };
    for spec in layout.specs() {
        let len = spec.len();
        let picks: Vec<usize> =
            if len <= PER_TENSOR { (0..len).collect() } else { sample(&mut rng, len, PER_TENSOR).into_vec() };
        for k in picks {
            let idx = spec.offset + k;
            let Some(num) =
                numeric(&mut p, &move |p: &mut Problem| &mut p.model.params.data[idx], &mut cache, &mut d_out)
            else {
                continue;
            };
            let err = relative_error(grads.data[idx], num);
            if err > worst.0 {
                worst = (err, format!("{}[{k}]: analytic {:e}, numeric {num:e}", spec.name, grads.data[idx]));
            }
        }
    }
    if let InputKind::Real { .. } = p.model.config.input {
        for idx in 0..p.x.len() {
            let Some(num) =
                numeric(&mut p, &move |p: &mut Problem| &mut p.x.as_slice_mut().unwrap()[idx], &mut cache, &mut d_out)
            else {
                continue;
            };
            let a = d_input.as_slice().unwrap()[idx];
            let err = relative_error(a, num);
            if err > worst.0 {
                worst = (err, format!("input[{idx}]: analytic {a:e}, numeric {num:e}"));
            }
        }
    }
    assert!(4 * skipped <= checked, "{skipped} of {checked} elements cross a ReLU kink");
    worst
}

fn check_family(family: Family) {
    let mut failures = Vec::new();
    let mut variant = 0;
    for urpe in [false, true] {
        for norm in [Norm::Post, Norm::Pre, Norm::None] {
            for causal in [false, true] {
                let (err, at) = check(problem(family, urpe, norm, causal, variant % 6), None);
                variant += 1;
                if std::env::var_os("URPE_REPORT").is_some() {
                    eprintln!("worst {err:.2e} {family} urpe={urpe} {norm:?} causal={causal} at {at}");
                }
                if err > TOLERANCE {
                    failures.push(format!("{family} urpe={urpe} {norm:?} causal={causal}: {err:.2e} at {at}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "gradient check failures:\n{}", failures.join("\n"));
}

macro_rules! family_tests {
    ($($name:ident => $family:expr),* $(,)?) => {$(
        /// Backward vs finite differences, every option combination of this family.
        #[test]
        fn $name() {
            check_family($family);
        }
    )*};
}

family_tests! {
    nope => Family::Nope,
    ape_learned => Family::ApeLearned,
    ape_sin => Family::ApeSin,
    t5 => Family::T5,
    t5_bucketed => Family::T5Bucketed,
    alibi => Family::Alibi,
    rope => Family::Rope,
    shaw_key => Family::ShawKey,
    shaw_value => Family::ShawValue,
    xl => Family::Xl,
    kerple => Family::Kerple,
    own_family_learned_slope => own_family::family(),
}

/// Backward vs finite differences with the normalisers other than softmax, on a family of
/// each kind (none, a score bias, a q/k transform, a value term) that the normaliser takes,
/// gate on and off, causal or not.
#[test]
fn every_normaliser() {
    let mut failures = Vec::new();
    for attention in normaliser::ALL.into_iter().map(Attention).filter(|a| !a.is_softmax()) {
        let kinds = [Family::Nope, Family::T5, Family::Rope, Family::ShawValue].into_iter().enumerate();
        for (variant, family) in kinds.filter(|&(_, f)| check_combination(f, attention).is_ok()) {
            for (urpe, causal) in [(false, false), (true, true)] {
                let causal = causal || attention.0.causal_only();
                let (err, at) = check(problem_with(family, urpe, Norm::Post, causal, variant, attention), None);
                if err > TOLERANCE {
                    failures.push(format!("{attention} {family} urpe={urpe} causal={causal}: {err:.2e} at {at}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "gradient check failures:\n{}", failures.join("\n"));
}

/// Differential attention on every family it takes (its score bias added to both halves:
/// t5-bucketed's buckets, alibi's fixed slopes, kerple's softplus, a family of one's own;
/// ape's input rows; shaw-value's value term), gate on and off, each norm, causal or not:
/// λ's vectors and every other tensor against finite differences.
#[test]
fn differential_on_every_family_it_takes() {
    let attention = Attention(normaliser::DIFFERENTIAL);
    own_family::family();
    let mut failures = Vec::new();
    let families: Vec<Family> =
        Family::all().into_iter().filter(|&f| check_combination(f, attention).is_ok()).collect();
    assert!(families.len() >= 9, "{families:?}");
    for (k, family) in families.into_iter().enumerate() {
        for (urpe, causal) in [(false, k % 2 == 0), (true, k % 2 == 1)] {
            let norm = [Norm::Post, Norm::Pre, Norm::None][k % 3];
            let (err, at) = check(problem_with(family, urpe, norm, causal, k % 6, attention), None);
            if std::env::var_os("URPE_REPORT").is_some() {
                eprintln!("worst {err:.2e} differential {family} urpe={urpe} {norm:?} causal={causal} at {at}");
            }
            if err > TOLERANCE {
                failures.push(format!("{family} urpe={urpe} {norm:?} causal={causal}: {err:.2e} at {at}"));
            }
        }
    }
    assert!(failures.is_empty(), "gradient check failures:\n{}", failures.join("\n"));
}

#[path = "../examples/own_family.rs"]
#[allow(dead_code)]
mod own_family;

/// The comparison is not vacuous: scaling the analytic gradient of one tensor by
/// 1 + 1e-5 is reported as an error above the tolerance.
#[test]
fn a_slightly_wrong_gradient_is_detected() {
    let (err, at) = check(problem(Family::T5, true, Norm::Post, false, 0), Some(("pos.urpe", 1.0 + 1e-5)));
    assert!(err > TOLERANCE && at.starts_with("pos.urpe"), "{err:e} at {at}");
}

/// Every tensor receives a gradient: somewhere non-zero, except the key bias, which
/// shifts every score of a row equally and so cannot change a softmax (exactly zero;
/// rope rotates it by position, so there it does count).
#[test]
fn every_tensor_gets_a_gradient() {
    for family in Family::ALL {
        let p = problem(family, true, Norm::Pre, false, 1);
        let input = p.input();
        let (batch, n) = input.batch_and_length();
        let mut cache = p.model.cache_for(&input);
        let mut d_out = Array2::zeros((batch * n, p.model.config.output.size()));
        p.loss(&mut cache, &mut d_out);
        let mut grads = Params::zeros(p.model.layout.tensors.clone());
        let mut ws = BackwardWorkspace::new(&p.model, batch, n);
        p.model.backward(&input, &cache, d_out.view(), &mut grads, &mut ws);
        for spec in p.model.layout.tensors.specs() {
            let largest = grads.data[spec.range()].iter().fold(0.0f64, |m, g| m.max(g.abs()));
            // the key bias adds q_i·b_k to every score of row i, which softmax ignores, unless
            // the keys are transformed by their position first (rope, xpos)
            let keys_move = family.def().terms_f64(&p.model.config.family_dims()).transforms();
            if spec.name.ends_with("attn.k.bias") && !keys_move {
                assert!(largest < 1e-12, "{family}: {} should be 0, is {largest:e}", spec.name);
            } else {
                assert!(largest > 1e-8, "{family}: {} has no gradient", spec.name);
            }
        }
    }
}
