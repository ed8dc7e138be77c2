//! Differential attention (`attention = "differential"`, src/normaliser/differential.rs)
//! beyond the generic loops (finite differences in tests/gradients.rs, naive loops in
//! tests/position.rs, candle in tests/candle_backend.rs, PyTorch in tests/reference.rs):
//!
//! - every row of A = softmax(S¹) − λ·softmax(S²) sums to 1 − λ (λ recomputed here from the
//!   layer's vectors), each half's rows to 1, masked entries are 0 (1e-12, f64);
//! - the URPE gate frees it only weakly: on a constant input each head's G·V has rows s_i·v
//!   (s_i the gated row sums, which differ), and the output rows are
//!   (1 − λ_init)·s_i·v/√(s_i²·mean v² + ε) exactly (1e-12): sign(s_i) times one row, up to
//!   a relative ε/(2·s_i²·mean v²);
//! - configurations it cannot serve are refused, naming the fields: an odd head width
//!   (`attention`, `heads`, `width`), a family whose terms read queries and keys (`family`,
//!   `attention`), at the command line with exit 2 and nothing written;
//! - λ's vectors start at N(0, 0.1²), named `layers.{l}.attn.lambda` [4, d_h/2].

#[path = "support/refusal.rs"]
mod refusal;
use ndarray::{Array2, Axis, s};
use refusal::train_refused;
use urpe::analysis::random::random_model;
use urpe::config::{Family, InputKind, ModelSpec, OutputKind, check_combination};
use urpe::nn::{Model, ModelInput};
use urpe::normaliser::differential::{RMS_EPS, lambda_init};
use urpe::normaliser::{Attention, DIFFERENTIAL};

fn differential() -> Attention {
    Attention(DIFFERENTIAL)
}

fn spec(family: Family, urpe: bool, causal: bool, attention: Attention) -> ModelSpec {
    let mut spec =
        ModelSpec::new(family, 2, 8, 2, 8, InputKind::Tokens { vocab: 11 }, OutputKind::Classes { classes: 5 });
    spec.urpe = urpe;
    spec.causal = causal;
    spec.attention = Some(attention);
    spec
}

/// λ of layer `l` of `m`, from its vectors.
fn lambda_of(m: &Model<f64>, l: usize) -> f64 {
    let v = m.params.mat(m.layout.layers[l].attn.differential.expect("differential attention").lambda);
    v.row(0).dot(&v.row(1)).exp() - v.row(2).dot(&v.row(3)).exp() + lambda_init(l)
}

#[test]
fn rows_of_a_sum_to_one_minus_lambda() {
    for (k, family) in [Family::T5, Family::Alibi, Family::Kerple, Family::Nope].into_iter().enumerate() {
        for causal in [false, true] {
            let m = random_model(spec(family, false, causal, differential()).resolve().unwrap(), 3 + k as u64).unwrap();
            let tokens = Array2::from_shape_fn((3, 8), |(b, i)| (7 * b + 3 * i * i) % 11);
            let input = ModelInput::Tokens(tokens.view());
            let mut cache = m.cache_for(&input);
            m.forward(&input, &mut cache).unwrap();
            for (l, layer) in cache.layers.iter().enumerate() {
                let own = layer.attn.differential.as_ref().expect("differential activations");
                let lambda = lambda_of(&m, l);
                assert!((own.lambda - lambda).abs() < 1e-14, "{family} layer {l}: λ {} vs {lambda}", own.lambda);
                let case = format!("{family} causal={causal} layer {l}");
                for (probs, want) in [(&layer.attn.probs, 1.0 - lambda), (&own.probs1, 1.0), (&own.probs2, 1.0)] {
                    let (batch, heads, n, _) = probs.dim();
                    let every_row =
                        (0..batch).flat_map(|b| (0..heads).flat_map(move |h| (0..n).map(move |i| (b, h, i))));
                    for (b, h, i) in every_row {
                        let row = probs.slice(s![b, h, i, ..]);
                        let sum: f64 = row.sum();
                        assert!((sum - want).abs() < 1e-12, "{case}: row ({b},{h},{i}) sums to {sum}, not {want}");
                        if causal {
                            assert!(row.iter().skip(i + 1).all(|&a| a == 0.0), "{case}: a masked entry has weight");
                        }
                    }
                }
            }
        }
    }
}

/// The spread of the rows of `x` [n, d]: max over rows and features of |x_ij − x_0j|.
fn spread(x: ndarray::ArrayView2<f64>) -> f64 {
    let first = x.row(0).to_owned();
    x.rows().into_iter().flat_map(|r| (&r - &first).into_iter()).fold(0.0, |m, v| m.max(v.abs()))
}

#[test]
fn the_gate_frees_differential_attention_only_at_the_order_of_epsilon() {
    let tokens = Array2::from_elem((1, 8), 4usize);
    let input = ModelInput::Tokens(tokens.view());
    for (k, family) in [Family::T5, Family::Alibi, Family::Nope].into_iter().enumerate() {
        let config = spec(family, true, k == 1, differential()).resolve().unwrap();
        assert!(!config.barrier_bound() && config.barrier_verdict().1.contains("ε"), "{}", config.barrier_verdict().1);
        let m = random_model(config, 10 + k as u64).unwrap();
        let mut cache = m.cache_for(&input);
        m.forward(&input, &mut cache).unwrap();
        let attn = &cache.layers[0].attn;
        let own = attn.differential.as_ref().unwrap();
        let out_scale = 1.0 - lambda_init(0);
        for h in 0..2 {
            let cols = s![.., h * 4..(h + 1) * 4];
            // G·V = s_i·v: the unnormalised rows are the gated row sums times one vector
            let v = attn.v.slice(s![0, h * 4..(h + 1) * 4]).to_owned();
            let sums = attn.gated.slice(s![0, h, .., ..]).sum_axis(Axis(1));
            let (o, y) = (own.unnormed.slice(cols), attn.heads.slice(cols));
            let mean_v2 = v.iter().map(|x| x * x).sum::<f64>() / 4.0;
            for i in 0..8 {
                let s_i = sums[i];
                for e in 0..4 {
                    assert!((o[[i, e]] - s_i * v[e]).abs() < 1e-12, "{family} head {h}: O[{i}] is not s_i·v");
                    let want = out_scale * s_i * v[e] / (s_i * s_i * mean_v2 + RMS_EPS).sqrt();
                    assert!((y[[i, e]] - want).abs() < 1e-12, "{family} head {h}: Y[{i},{e}] {} vs {want}", y[[i, e]]);
                }
            }
            // the gate scales O's rows by visibly different s_i; Y_i is sign(s_i)·u, u the
            // unit row (1 − λ_init)·v/√(mean v²), within |u|·x_i/2, x_i = ε/(s_i²·mean v²)
            let (lo, hi) = sums.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &s| (a.min(s), b.max(s)));
            assert!(hi - lo > 1e-2 * hi.abs().max(lo.abs()), "{family} head {h}: row sums {sums}");
            let unit = &v * (out_scale / mean_v2.sqrt());
            for i in 0..8 {
                let x = RMS_EPS / (sums[i] * sums[i] * mean_v2);
                for e in 0..4 {
                    let gap = (y[[i, e]] - sums[i].signum() * unit[e]).abs();
                    assert!(gap <= unit[e].abs() * x / 2.0 + 1e-12, "{family} head {h}: Y[{i},{e}] {gap:e} from ±u");
                }
            }
            assert!(spread(y) > 0.0, "{family} head {h}: ε keeps a trace of the s_i");
        }
    }
}

#[test]
fn an_odd_head_width_is_refused_naming_the_fields() {
    let mut s = spec(Family::T5, false, false, differential());
    (s.width, s.heads) = (6, 2);
    let err = s.resolve().unwrap_err();
    assert_eq!(err.field, "attention");
    assert!(err.allowed.contains("`heads`") && err.allowed.contains("`width`") && err.allowed.contains("= 3"), "{err}");
    let mut even = spec(Family::T5, false, false, differential());
    (even.width, even.heads) = (6, 3);
    assert!(even.resolve().is_ok(), "width 6, 3 heads: d_h = 2 is even");
}

#[test]
fn families_whose_terms_read_queries_and_keys_are_refused_naming_the_fields() {
    let refused: Vec<Family> =
        Family::ALL.into_iter().filter(|&f| check_combination(f, differential()).is_err()).collect();
    assert_eq!(refused, [Family::Rope, Family::ShawKey, Family::Xl, Family::Xpos, Family::Cope]);
    for family in refused {
        let err = spec(family, false, true, differential()).resolve().unwrap_err();
        assert_eq!(err.field, "family");
        assert!(err.value == family.name() && err.allowed.contains("`attention` = differential"), "{err}");
        assert!(err.allowed.contains("t5, t5-bucketed, alibi"), "the error lists the families it takes: {err}");
        // every other normaliser takes them
        assert!(spec(family, false, true, Attention::SOFTMAX).resolve().is_ok());
    }
}

#[test]
fn the_command_line_refuses_rope_with_differential_attention() {
    let err = train_refused(&["--family", "rope", "--attention", "differential"]);
    assert!(err.contains("`family` = rope") && err.contains("`attention` = differential"), "{err}");
}

#[test]
fn lambda_vectors_are_named_shaped_and_initialised_as_the_paper() {
    let mut s = spec(Family::Alibi, false, false, differential());
    (s.width, s.heads, s.depth) = (64, 2, 3);
    let m = Model::<f64>::new(s.resolve().unwrap(), 7).unwrap();
    let mut values = Vec::new();
    for l in 0..3 {
        let id = m.layout.tensors.find(&format!("layers.{l}.attn.lambda")).expect("λ's tensor");
        assert_eq!(m.layout.tensors.spec(id).shape, [4, 16]);
        values.extend_from_slice(m.params.slice(id));
    }
    let std = (values.iter().map(|v| v * v).sum::<f64>() / values.len() as f64).sqrt();
    assert!((0.08..0.12).contains(&std), "λ's vectors: std {std} over {} values, expected 0.1", values.len());
    let softmax = spec(Family::Alibi, false, false, Attention::SOFTMAX).resolve().unwrap();
    let plain = Model::<f64>::new(softmax, 7).unwrap();
    assert!(plain.layout.tensors.specs().iter().all(|t| !t.name.contains("lambda")), "only differential has λ");
}
