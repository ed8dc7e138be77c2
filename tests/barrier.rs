//! Exploration scaffold (temporary).

use ndarray::{Array2, Array3, ArrayView3, Axis};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};
use urpe::config::{Activation, Family, InputKind, Norm, OutputKind};
use urpe::nn::{Model, ModelInput};
use urpe::theory::Inputs;
use urpe::{Float, ModelConfig, ModelSpec};

#[derive(Clone, Copy, Debug)]
struct Arch {
    depth: usize,
    heads: usize,
    head_dim: usize,
    n: usize,
    n_max: usize,
    norm: Norm,
    causal: bool,
    share_position: bool,
    activation: Activation,
    input: InputKind,
    output: OutputKind,
}

impl Arch {
    fn config(&self, family: Family, urpe: bool) -> ModelConfig {
        ModelSpec {
            family,
            urpe,
            depth: self.depth,
            width: self.heads * self.head_dim,
            heads: self.heads,
            ffn: None,
            activation: Some(self.activation),
            norm: Some(self.norm),
            causal: self.causal,
            n_max: self.n_max,
            share_position: Some(self.share_position),
            input: self.input,
            output: self.output,
            t5_buckets: None,
            t5_max_distance: None,
            rope_base: None,
        }
        .resolve()
        .expect("the strategies only build valid configurations")
    }
}

fn random_arch(rng: &mut ChaCha8Rng) -> Arch {
    let n = rng.random_range(2..=32);
    Arch {
        depth: rng.random_range(1..=4),
        heads: [1, 2, 4][rng.random_range(0..3)],
        head_dim: [2, 4, 6][rng.random_range(0..3)],
        n,
        n_max: n + rng.random_range(0..=4),
        norm: [Norm::Post, Norm::Pre, Norm::None][rng.random_range(0..3)],
        causal: rng.random(),
        share_position: rng.random(),
        activation: if rng.random() { Activation::Gelu } else { Activation::Relu },
        input: if rng.random() {
            InputKind::Real { d_in: rng.random_range(1..=6) }
        } else {
            InputKind::Tokens { vocab: rng.random_range(2..=10) }
        },
        output: if rng.random() {
            OutputKind::Real { d_out: rng.random_range(1..=6) }
        } else {
            OutputKind::Classes { classes: rng.random_range(2..=10) }
        },
    }
}

fn random_model<F: Float>(config: ModelConfig, scale: f64, rng: &mut ChaCha8Rng) -> Model<F> {
    let mut model = Model::<F>::zeros(config).expect("valid configuration");
    let normal = Normal::new(0.0, scale).expect("positive scale");
    model.params.data.iter_mut().for_each(|v| *v = F::c(normal.sample(rng)));
    model
}

fn inputs<F: Float>(arch: &Arch, batch: usize, constant: bool, rng: &mut ChaCha8Rng) -> Inputs<F> {
    let n = arch.n;
    match arch.input {
        InputKind::Tokens { vocab } => {
            let mut t = Array2::from_shape_fn((batch, n), |_| rng.random_range(0..vocab));
            if constant {
                t.rows_mut().into_iter().for_each(|mut s| { let first = s[0]; s.fill(first) });
            }
            Inputs::Tokens(t)
        }
        InputKind::Real { d_in } => {
            let mut x = Array3::from_shape_fn((batch, n, d_in), |_| F::c(rng.random_range(-1.0..1.0)));
            if constant {
                for mut seq in x.outer_iter_mut() {
                    let first = seq.row(0).to_owned();
                    seq.rows_mut().into_iter().for_each(|mut r| r.assign(&first));
                }
            }
            Inputs::Real(x)
        }
    }
}

/// Per sequence: max_i max_k |y_ik − y_0k| / max(1, max |y|).
fn row_spreads<F: Float>(y: ArrayView3<F>) -> Vec<f64> {
    y.outer_iter()
        .map(|seq| {
            let first = seq.row(0);
            let spread = seq.rows().into_iter().flat_map(|r| r.iter().zip(first.iter()).map(|(a, b)| (a.f64() - b.f64()).abs()).collect::<Vec<_>>()).fold(0.0, f64::max);
            let size = seq.iter().fold(1.0f64, |m, v| m.max(v.f64().abs()));
            spread / size
        })
        .collect()
}

#[test]
#[ignore]
fn explore() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let cases: usize = std::env::var("CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let mut nonfinite = std::collections::BTreeMap::<String, usize>::new();
    let mut max_sum_err = 0.0f64;
    let mut max_b32 = (0.0f64, String::new());
    let mut max_b64 = 0.0f64;
    let mut c_min: std::collections::BTreeMap<String, (f64, String)> = Default::default();
    for _ in 0..cases {
        let arch = random_arch(&mut rng);
        let scale = [0.02, 1.0, 4.0][rng.random_range(0..3)];
        let seed: u64 = rng.random();
        for family in Family::ALL {
            for urpe in [false, true] {
                let config = arch.config(family, urpe);
                let mut r = ChaCha8Rng::seed_from_u64(seed);
                let m32 = random_model::<f32>(config.clone(), scale, &mut r);
                let x = inputs::<f32>(&arch, 2, false, &mut r);
                let view = x.view();
                let mut cache = m32.cache_for(&view);
                let y = m32.forward(&view, &mut cache).unwrap();
                let finite = y.iter().all(|v| v.is_finite());
                if !finite {
                    *nonfinite.entry(format!("{:?} s={scale} d={}", arch.norm, arch.depth)).or_default() += 1;
                    continue;
                }
                for l in &cache.layers {
                    for row in l.attn.probs.lanes(Axis(3)) {
                        let s: f64 = row.iter().map(|v| v.f64()).sum();
                        max_sum_err = max_sum_err.max((s - 1.0).abs());
                    }
                }
                if family.inside_softmax_only() && !urpe {
                    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 7);
                    let m64 = random_model::<f64>(config.clone(), scale, &mut ChaCha8Rng::seed_from_u64(seed));
                    let xc = inputs::<f64>(&arch, 3, true, &mut r);
                    let y64 = m64.predict(&xc.view()).unwrap();
                    let y32 = m32.cast::<f32>().predict(&match &xc { Inputs::Tokens(t) => Inputs::Tokens(t.clone()), Inputs::Real(x) => Inputs::Real(x.mapv(|v| v as f32)) }.view()).unwrap();
                    let s32 = row_spreads(y32.view()).into_iter().fold(0.0, f64::max);
                    if s32 > max_b32.0 { max_b32 = (s32, format!("{family} s={scale} {arch:?}")); }
                    max_b64 = max_b64.max(row_spreads(y64.view()).into_iter().fold(0.0, f64::max));
                }
            }
        }
        // property c exploration, f64
        for cs in [0.5, 1.0] {
            for family in Family::ALL {
                for urpe in [false, true] {
                    if !urpe && family.inside_softmax_only() { continue; }
                    let config = arch.config(family, urpe);
                    let mut r = ChaCha8Rng::seed_from_u64(seed);
                    let mut m = random_model::<f64>(config, cs, &mut r);
                    if urpe {
                        let u = Uniform::new(0.5, 1.5).unwrap();
                        for layer in m.layout.clone().layers.iter() {
                            let g = layer.attn.pos.gate.unwrap();
                            m.params.slice_mut(g).iter_mut().for_each(|c| *c = u.sample(&mut r));
                        }
                    }
                    let xc = inputs::<f64>(&arch, 3, true, &mut r);
                    let y = m.predict(&xc.view()).unwrap();
                    let s = row_spreads(y.view()).into_iter().fold(f64::INFINITY, f64::min);
                    let key = format!("{family}{} s={cs}", if urpe { "+urpe" } else { "" });
                    let e = c_min.entry(key).or_insert((f64::INFINITY, String::new()));
                    if s < e.0 { *e = (s, format!("{arch:?}")); }
                }
            }
        }
    }
    println!("nonfinite: {nonfinite:?}");
    println!("max |sum-1| f32: {max_sum_err:e}");
    println!("max b spread f32: {:e} at {}", max_b32.0, max_b32.1);
    println!("max b spread f64: {max_b64:e}");
    for (k, (v, a)) in &c_min { println!("c min {k}: {v:e}   {a}"); }
    let _ = ModelInput::<f32>::Tokens;
}

#[test]
#[ignore]
fn explore_b() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let cases: usize = std::env::var("CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let mut per_seq: Vec<(f64, String)> = vec![];
    let mut whole: Vec<(f64, String)> = vec![];
    for _ in 0..cases {
        let arch = random_arch(&mut rng);
        let scale = [0.02, 1.0, 4.0][rng.random_range(0..3)];
        let seed: u64 = rng.random();
        for family in Family::ALL {
            if !family.inside_softmax_only() { continue; }
            let config = arch.config(family, false);
            let m32 = random_model::<f32>(config.clone(), scale, &mut ChaCha8Rng::seed_from_u64(seed));
            let xc = inputs::<f32>(&arch, 4, true, &mut ChaCha8Rng::seed_from_u64(seed ^ 7));
            let y = m32.predict(&xc.view()).unwrap();
            if !y.iter().all(|v| v.is_finite()) { continue; }
            let tag = format!("{family} s={scale} {arch:?}");
            per_seq.push((row_spreads(y.view()).into_iter().fold(0.0, f64::max), tag.clone()));
            let size = y.iter().fold(1.0f64, |m, v| m.max(v.f64().abs()));
            let raw: f64 = row_spreads(y.view()).into_iter().zip(y.outer_iter()).map(|(s, q)| s * q.iter().fold(1.0f64, |m, v| m.max(v.f64().abs()))).fold(0.0, f64::max);
            whole.push((raw / size, tag));
        }
    }
    for (name, mut v) in [("per_seq", per_seq), ("whole", whole)] {
        v.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap());
        let n = v.len();
        println!("{name}: n={n} >1e-5: {} >3e-6: {} median {:e}", v.iter().filter(|x| x.0 > 1e-5).count(), v.iter().filter(|x| x.0 > 3e-6).count(), v[n/2].0);
        for x in v.iter().take(8) { println!("  {:e} {}", x.0, x.1); }
    }
}
