//! The hand-written backward pass against central finite differences in f64, for every
//! position family (gate on and off), post/pre/none norms, causal on and off, depth 2,
//! shared and per-layer position tensors, token and real inputs, class and real outputs, and
//! with a BOS vector (`bos`) on families of each kind.
//!
//! Finite differences use the fourth-order stencil
//! g ≈ (−L(θ+2h) + 8L(θ+h) − 8L(θ−h) + L(θ−2h)) / 12h with h = 2.5e-4 (truncation O(h⁴):
//! at h = 5e-4 one xpos element, embed.weight of the gated pre-norm token model, was off by
//! 1.25e-6 relative, and by 7.8e-8 at 2.5e-4, 16 times less as h⁴ says; the loss is exact
//! to about 1e-15, so rounding adds about 8e-12), and the relative error
//! is |g_analytic − g_numeric| / max(|g_analytic|, |g_numeric|, 1e-4),
//! required ≤ 1e-6 for every checked element: every element of a tensor with at most
//! 64 of them, otherwise a seeded sample of 64. The floor 1e-4 (gradients here are about
//! 1e-2) keeps finite-difference noise on exactly-zero gradients (the key bias) from
//! dominating: below it the check is absolute, to 1e-10.
//!
//! ReLU is not differentiable at 0, fire has ReLUs in its MLP and a max(L, i), and cope's
//! interpolation between integer positions has a kink wherever a contextual position p_ij
//! crosses an integer: an element whose stencil moves some FFN pre-activation (ReLU FFN),
//! some input of fire's hidden ReLUs or of its max(L, i) across 0, or some ⌊p_ij⌋ is skipped
//! (finite differences are invalid there), and at most a quarter of the elements may be
//! skipped.

use ndarray::{Array2, Array3, ArrayView2};
use rand::seq::index::sample;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use urpe::config::{Activation, Family, InputKind, ModelSpec, Norm, OutputKind, check_combination};
use urpe::family::{FamilyDims, FamilyIds, Head, Work, work_len};
use urpe::nn::loss::{cross_entropy_loss, mse_loss};
use urpe::nn::{BackwardWorkspace, ForwardCache, Model, ModelInput, ParamLayout, Params};
use urpe::normaliser::{self, Attention};

#[path = "support/fire.rs"]
#[allow(dead_code)]
mod fire;

const H: f64 = 2.5e-4;
/// Step for models with a ReLU (a ReLU FFN, fire's MLP): small, so few stencils cross a kink (truncation is negligible at
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

    /// True when the model has a ReLU or a max somewhere: a ReLU FFN, or fire's MLP.
    fn has_relu(&self) -> bool {
        self.model.config.activation == Activation::Relu || self.model.config.family == Family::Fire
    }

    /// Which side of every kink the last forward pass was on: the sign of every FFN
    /// pre-activation (ReLU models), for fire of every hidden unit's input w1_k·x_ij + b1_k
    /// and of L − i, i, j < n_max (from the formula, tests/support/fire.rs), and ⌊p_ij⌋ of
    /// every contextual position (cope).
    fn kinks(&self, cache: &ForwardCache<f64>) -> Vec<i64> {
        let relu = self.model.config.activation == Activation::Relu;
        let mut out: Vec<i64> =
            cache.layers.iter().flat_map(|l| l.ffn.up.iter().map(|&v| i64::from(v > 0.0))).filter(|_| relu).collect();
        if self.model.config.family == Family::Fire {
            let n_max = self.model.config.n_max;
            for layer in &self.model.layout.layers {
                let f = fire::FireParams::of(&self.model, &layer.attn.pos);
                for (i, j) in (0..n_max).flat_map(|i| (0..n_max).map(move |j| (i, j))) {
                    out.extend(f.pre(i, j).iter().map(|&u| i64::from(u > 0.0)));
                }
                out.extend((0..n_max).map(|i| i64::from(f.l > i as f64)));
            }
        }
        out.extend(contextual_positions(&self.model, cache).into_iter().map(|p| p.floor() as i64));
        out
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

/// Every contextual position p_ij (j ≤ i, clamped to n_max − 1) of a cope model's last
/// forward pass, from the formula on its cached queries and keys; none for other families.
fn contextual_positions(model: &Model<f64>, cache: &ForwardCache<f64>) -> Vec<f64> {
    if model.config.family != Family::Cope {
        return Vec::new();
    }
    let (heads, dh, top) = (model.config.heads, model.config.head_dim(), (model.config.n_max - 1) as f64);
    let mut out = Vec::new();
    for layer in &cache.layers {
        let (q, k, n) = (&layer.attn.q, &layer.attn.k, layer.attn.scores.dim().2);
        for b in 0..q.nrows() / n {
            for h in 0..heads {
                let cols = h * dh..(h + 1) * dh;
                let row = |m: &Array2<f64>, i: usize| m.slice(ndarray::s![b * n + i, cols.clone()]).to_owned();
                for i in 0..n {
                    let mut p = 0.0;
                    for j in (0..=i).rev() {
                        let c = row(q, i).dot(&row(k, j)) / (dh as f64).sqrt();
                        p += 1.0 / (1.0 + (-c).exp());
                        out.push(p.min(top));
                    }
                }
            }
        }
    }
    out
}

/// Checks one problem and records the result under `what`: its worst error on stderr when
/// `URPE_REPORT` is set, a failure above [`TOLERANCE`].
fn judge(failures: &mut Vec<String>, problem: Problem, what: String) {
    let (err, at) = check(problem, None);
    if std::env::var_os("URPE_REPORT").is_some() {
        eprintln!("worst {err:.2e} {what} at {at}");
    }
    if err > TOLERANCE {
        failures.push(format!("{what}: {err:.2e} at {at}"));
    }
}

/// A random problem; for ReLU the first seed whose FFN pre-activations all lie at least
/// 1e-2 from the kink at 0, for cope the first whose contextual positions all lie at least
/// 1e-2 from an integer (finite differences need a smooth neighbourhood).
fn problem(family: Family, urpe: bool, norm: Norm, causal: bool, variant: usize) -> Problem {
    problem_with(family, urpe, norm, causal, variant, Attention::SOFTMAX, false)
}

/// [`problem`] with an attention normaliser and, with `bos`, a BOS vector; for relu attention
/// also the first seed whose finite attention scores all lie at least 1e-2 from its kink at 0.
fn problem_with(
    family: Family,
    urpe: bool,
    norm: Norm,
    causal: bool,
    variant: usize,
    attention: Attention,
    bos: bool,
) -> Problem {
    (0..)
        .map(|attempt| draw(family, urpe, norm, causal, variant, attention, bos, attempt))
        .find(|p| {
            let (relu_ffn, relu_attention) =
                (p.model.config.activation == Activation::Relu, attention == Attention(normaliser::RELU));
            if !relu_ffn && !relu_attention && family != Family::Cope {
                return true;
            }
            let input = p.input();
            let mut cache = p.model.cache_for(&input);
            let mut d_out = Array2::zeros((cache.output.nrows(), p.model.config.output.size()));
            p.loss(&mut cache, &mut d_out);
            let away = |v: &f64| !v.is_finite() || v.abs() >= 1e-2;
            let integers_away = |p: &f64| (p - p.round()).abs() >= 1e-2;
            cache.layers.iter().all(|l| {
                (!relu_ffn || l.ffn.up.iter().all(away)) && (!relu_attention || l.attn.scores.iter().all(away))
            }) && contextual_positions(&p.model, &cache).iter().all(integers_away)
        })
        .expect("some seed")
}

#[allow(clippy::too_many_arguments)]
fn draw(
    family: Family,
    urpe: bool,
    norm: Norm,
    causal: bool,
    variant: usize,
    attention: Attention,
    bos: bool,
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
    spec.bos = bos;
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
    let h = if p.has_relu() { H_RELU } else { H };
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
    let kinks = p.kinks(&cache);
    let mut skipped = 0usize;
    let mut checked = 0usize;
    // the stencil, or None where it crosses a kink
    let mut numeric = |p: &mut Problem,
                       get: &dyn Fn(&mut Problem) -> &mut f64,
                       cache: &mut ForwardCache<f64>,
                       d_out: &mut Array2<f64>| {
        let original = *get(p);
        let mut smooth = true;
        let mut at = |delta: f64, p: &mut Problem| {
            *get(p) = original + delta;
            let l = p.loss(cache, d_out);
            smooth &= p.kinks(cache) == kinks;
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
    assert!(4 * skipped <= checked, "{skipped} of {checked} elements cross a kink");
    worst
}

fn check_family(family: Family) {
    let mut failures = Vec::new();
    let mut variant = 0;
    for urpe in [false, true] {
        for norm in [Norm::Post, Norm::Pre, Norm::None] {
            for causal in [false, true] {
                // a causal-only family (cope) gets the mask in every variant
                let causal = causal || family.causal_only();
                let what = format!("{family} urpe={urpe} {norm:?} causal={causal}");
                judge(&mut failures, problem(family, urpe, norm, causal, variant % 6), what);
                variant += 1;
            }
        }
    }
    assert!(failures.is_empty(), "gradient check failures:\n{}", failures.join("\n"));
}

macro_rules! family_tests {
    ($($name:ident => $family:expr),* $(,)?) => {
        $(
            /// Backward vs finite differences, every option combination of this family.
            #[test]
            fn $name() {
                check_family($family);
            }
        )*

        /// The families the tests above check.
        fn checked_families() -> Vec<Family> {
            vec![$($family),*]
        }
    };
}

/// Every built-in family has its finite-difference test above.
#[test]
fn every_family_is_checked() {
    let checked = checked_families();
    let missing: Vec<Family> = Family::ALL.into_iter().filter(|f| !checked.contains(f)).collect();
    assert!(missing.is_empty(), "no gradient check for {missing:?}");
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
    xpos => Family::Xpos,
    fire => Family::Fire,
    cope => Family::Cope,
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
                let problem = problem_with(family, urpe, Norm::Post, causal, variant, attention, false);
                let (err, at) = check(problem, None);
                if err > TOLERANCE {
                    failures.push(format!("{attention} {family} urpe={urpe} causal={causal}: {err:.2e} at {at}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "gradient check failures:\n{}", failures.join("\n"));
}

/// Backward vs finite differences with a BOS vector (`bos`, its gradient included), on a
/// family of each kind (none, input rows, a score bias, a q/k transform, a value term): token
/// and real input, causal and not, each norm, gate on and off; every normaliser on nope.
#[test]
fn with_bos() {
    let mut failures = Vec::new();
    let families = [Family::Nope, Family::ApeLearned, Family::T5, Family::Rope, Family::ShawValue];
    let mut cases: Vec<(Family, bool, Norm, bool, Attention)> = Vec::new();
    for family in families {
        for (urpe, norm, causal) in [(false, Norm::Post, false), (false, Norm::Pre, true), (true, Norm::None, false)] {
            cases.push((family, urpe, norm, causal, Attention::SOFTMAX));
        }
    }
    for attention in normaliser::ALL.into_iter().map(Attention).filter(|a| !a.is_softmax()) {
        cases.push((Family::Nope, false, Norm::Post, attention.0.causal_only(), attention));
    }
    for (variant, (family, urpe, norm, causal, attention)) in cases.into_iter().enumerate() {
        // variants alternate token and real input; 3 is the ReLU one
        let problem = problem_with(family, urpe, norm, causal, variant % 6, attention, true);
        assert!(problem.model.layout.bos.is_some());
        judge(&mut failures, problem, format!("bos {family} {attention} urpe={urpe} {norm:?} causal={causal}"));
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
            let what = format!("differential {family} urpe={urpe} {norm:?} causal={causal}");
            judge(&mut failures, problem_with(family, urpe, norm, causal, k % 6, attention, false), what);
        }
    }
    assert!(failures.is_empty(), "gradient check failures:\n{}", failures.join("\n"));
}

#[path = "../examples/own_family.rs"]
#[allow(dead_code)]
mod own_family;

/// fire beyond L: with ρ_L = −0.9 (L = 6·e^{−0.9} ≈ 2.44, n = 5) queries i = 3, 4 divide
/// by ψ(i), so the branch of max(L, i) without a gradient for ρ_L is checked too, gate on
/// and off, causal or not, at the tolerance of the family tests.
#[test]
fn fire_beyond_l() {
    let mut failures = Vec::new();
    for (variant, (urpe, causal)) in [(false, false), (true, true), (false, true)].into_iter().enumerate() {
        let mut p = problem(Family::Fire, urpe, Norm::Pre, causal, variant);
        for layer in p.model.layout.layers.clone() {
            p.model.params.vec_mut(layer.attn.pos.family.get(4))[1] = -0.9;
        }
        judge(&mut failures, p, format!("fire beyond L urpe={urpe} causal={causal}"));
    }
    assert!(failures.is_empty(), "gradient check failures:\n{}", failures.join("\n"));
}

/// The comparison is not vacuous: scaling the analytic gradient of one tensor by
/// 1 + 1e-5 is reported as an error above the tolerance.
#[test]
fn a_slightly_wrong_gradient_is_detected() {
    let (err, at) = check(problem(Family::T5, true, Norm::Post, false, 0), Some(("pos.urpe", 1.0 + 1e-5)));
    assert!(err > TOLERANCE && at.starts_with("pos.urpe"), "{err:e} at {at}");
}

/// Every tensor receives a gradient: somewhere non-zero, except the key bias, which
/// shifts every score of a row equally and so cannot change a softmax (exactly zero;
/// rope and xpos transform it by position, and cope's gates σ(c_ij) turn the shift into
/// different contextual positions, so there it does count).
#[test]
fn every_tensor_gets_a_gradient() {
    for (family, bos) in Family::ALL.into_iter().flat_map(|f| [(f, false), (f, true)]) {
        let p = problem_with(family, true, Norm::Pre, family.causal_only(), 1, Attention::SOFTMAX, bos);
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
            // the keys are transformed by their position first (rope, xpos) or the gates read
            // the content scores (cope)
            let keys_move =
                family.def().terms_f64(&p.model.config.family_dims()).transforms() || family == Family::Cope;
            // fire's b2_h likewise shifts every score of a row of head h equally
            if spec.name.ends_with("attn.k.bias") && !keys_move || spec.name.ends_with("fire.b2") {
                assert!(largest < 1e-12, "{family} bos={bos}: {} should be 0, is {largest:e}", spec.name);
            } else {
                assert!(largest > 1e-8, "{family} bos={bos}: {} has no gradient", spec.name);
            }
        }
    }
}

/// One head of q, k [n, d_h] (all the columns) for a family's terms; no derived table.
fn one_head<'a>(q: &'a Array2<f64>, k: &'a Array2<f64>, params: &'a Params<f64>, ids: &'a FamilyIds) -> Head<'a, f64> {
    let (n, dh) = q.dim();
    Head {
        h: 0,
        n,
        n_max: n,
        scale: 1.0 / (dh as f64).sqrt(),
        q: q.view(),
        k: k.view(),
        cols: 0..dh,
        params,
        ids,
        derived: ArrayView2::from_shape((0, 0), &[]).unwrap(),
    }
}

/// cope's score term alone, one head at n = n_max with gates near 0.92 (q and k about 1.12
/// per feature), so that some contextual positions exceed P = n_max − 1 and are clamped:
/// its backward against finite differences of L = Σ_{j≤i} D_ij·T_ij (T the term, D random)
/// in every element of q, k and the table e, within the tolerance above. Every position
/// lies at least 1e-2 from an integer (checked), so no stencil crosses a kink.
#[test]
fn cope_term_through_clamped_positions() {
    let (n, dh) = (5, 4);
    let dims = FamilyDims {
        heads: 1,
        head_dim: dh,
        width: dh,
        n_max: n,
        causal: true,
        t5_buckets: 6,
        t5_max_distance: 5,
        rope_base: 50.0,
    };
    let family = Family::Cope.def();
    let mut layout = ParamLayout::default();
    let ids = family.declare(&mut layout, "pos", &dims);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut params = Params::<f64>::zeros(Arc::new(layout));
    params.data.iter_mut().for_each(|v| *v = rng.random_range(-0.5..0.5));
    let mut q = Array2::from_shape_fn((n, dh), |_| 1.12 + rng.random_range(-0.2..0.2));
    let mut k = Array2::from_shape_fn((n, dh), |_| 1.12 + rng.random_range(-0.2..0.2));
    let d = Array2::from_shape_fn((n, n), |(i, j)| if j <= i { rng.random_range(-1.0..1.0) } else { 0.0 });
    let terms = family.terms_f64(&dims);
    let scale = 1.0 / (dh as f64).sqrt();
    let mut buf = vec![0.0; work_len(n, dh)];
    let loss = |q: &Array2<f64>, k: &Array2<f64>, params: &Params<f64>, buf: &mut [f64]| -> f64 {
        let head = one_head(q, k, params, &ids);
        let content = q.dot(&k.t()) * scale;
        let mut s = content.clone();
        terms.scores(&head, s.view_mut(), &mut Work::new(buf, n, dh));
        ((s - content) * &d).sum()
    };
    // the positions: some clamped, none within 1e-2 of an integer
    let c = q.dot(&k.t()) * scale;
    let positions: Vec<f64> = (0..n)
        .flat_map(|i| (0..=i).map(move |j| (i, j)))
        .map(|(i, j)| (j..=i).map(|m| 1.0 / (1.0 + (-c[[i, m]]).exp())).sum::<f64>())
        .collect();
    assert!(positions.iter().any(|&p| p > (n - 1) as f64), "no clamped position: {positions:?}");
    assert!(positions.iter().all(|p| (p - p.round()).abs() >= 1e-2), "a position near a kink: {positions:?}");
    // the analytic gradient
    let (mut dq, mut dk) = (Array2::zeros((n, dh)), Array2::zeros((n, dh)));
    let mut de = vec![0.0; n * dh];
    let head = one_head(&q, &k, &params, &ids);
    terms.scores_backward(&head, d.view(), dq.view_mut(), dk.view_mut(), &mut de, &mut Work::new(&mut buf, n, dh));
    let stencil = |f: &mut dyn FnMut(f64) -> f64| (-f(2.0 * H) + 8.0 * f(H) - 8.0 * f(-H) + f(-2.0 * H)) / (12.0 * H);
    let mut worst = (0.0f64, String::new());
    let mut note = |what: String, analytic: f64, numeric: f64| {
        let err = relative_error(analytic, numeric);
        if err > worst.0 {
            worst = (err, format!("{what}: analytic {analytic:e}, numeric {numeric:e}"));
        }
    };
    for (idx, &de_idx) in de.iter().enumerate() {
        let (i, e) = (idx / dh, idx % dh);
        let x = q[[i, e]];
        let g = stencil(&mut |h| {
            q[[i, e]] = x + h;
            loss(&q, &k, &params, &mut buf)
        });
        q[[i, e]] = x;
        note(format!("q[{i},{e}]"), dq[[i, e]], g);
        let x = k[[i, e]];
        let g = stencil(&mut |h| {
            k[[i, e]] = x + h;
            loss(&q, &k, &params, &mut buf)
        });
        k[[i, e]] = x;
        note(format!("k[{i},{e}]"), dk[[i, e]], g);
        let x = params.data[idx];
        let g = stencil(&mut |h| {
            params.data[idx] = x + h;
            loss(&q, &k, &params, &mut buf)
        });
        params.data[idx] = x;
        note(format!("e[{i},{e}]"), de_idx, g);
    }
    if std::env::var_os("URPE_REPORT").is_some() {
        eprintln!("worst {:.2e} cope term at n = n_max at {}", worst.0, worst.1);
    }
    assert!(worst.0 <= TOLERANCE, "{}: {:e}", worst.1, worst.0);
}
