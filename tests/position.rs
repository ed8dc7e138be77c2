//! Position families against independent, naive implementations written from the
//! formulas of docs/theory.md §2 (plain loops, f64), and known values of the fixed tables.

use ndarray::{Array2, Array3};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use urpe::config::{Family, InputKind, ModelSpec, Norm, OutputKind, check_combination};
use urpe::family::kernels::{alibi, rope::RopeTables, t5};
use urpe::nn::{Model, ModelInput};
use urpe::normaliser::Attention;

#[path = "support/fire.rs"]
mod fire;

#[test]
fn t5_buckets_match_the_reference_algorithm() {
    // bidirectional, 32 buckets, max distance 128 (T5's defaults); rel = j − i
    let cases =
        [(0, 0), (-1, 1), (1, 17), (-7, 7), (-8, 8), (-12, 9), (-16, 10), (-127, 15), (-500, 15), (500, 31), (16, 26)];
    for (rel, expected) in cases {
        assert_eq!(t5::bucket(rel, true, 32, 128), expected, "bidirectional rel {rel}");
    }
    // causal: only j ≤ i is distinguished
    let cases = [(3, 0), (0, 0), (-1, 1), (-15, 15), (-16, 16), (-127, 31), (-1000, 31)];
    for (rel, expected) in cases {
        assert_eq!(t5::bucket(rel, false, 32, 128), expected, "causal rel {rel}");
    }
}

#[test]
fn alibi_slopes_are_the_papers() {
    let eight: Vec<f64> = (1..=8).map(|h| 2f64.powi(-h)).collect();
    assert_eq!(alibi::slopes(8), eight);
    // 6 heads: the 4-head slopes, then slopes 1 and 3 of the 8-head set
    let four: Vec<f64> = (1..=4).map(|h| 2f64.powi(-2 * h)).collect();
    let mut six = four.clone();
    six.extend([2f64.powi(-1), 2f64.powi(-3)]);
    assert_eq!(alibi::slopes(6), six);
}

#[test]
fn rope_scores_depend_on_the_offset_only() {
    let tables = RopeTables::<f64>::new(40, 6, 10_000.0);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let q: Vec<f64> = (0..6).map(|_| rng.random_range(-1.0..1.0)).collect();
    let k: Vec<f64> = (0..6).map(|_| rng.random_range(-1.0..1.0)).collect();
    let score = |i: usize, j: usize| {
        let mut a = Array2::from_shape_fn((40, 6), |(_, c)| q[c]);
        let mut b = Array2::from_shape_fn((40, 6), |(_, c)| k[c]);
        tables.rotate(a.view_mut(), 1.0);
        tables.rotate(b.view_mut(), 1.0);
        a.row(i).dot(&b.row(j))
    };
    for (i, j, shift) in [(0, 3, 5), (7, 2, 11), (4, 4, 30), (9, 0, 20)] {
        assert!((score(i, j) - score(i + shift, j + shift)).abs() < 1e-12, "({i},{j})+{shift}");
    }
    assert!((score(0, 3) - score(0, 4)).abs() > 1e-3, "rope must depend on the offset");
}

fn model(family: Family, urpe: bool, causal: bool, seed: u64) -> Model<f64> {
    model_with(family, urpe, causal, seed, Attention::SOFTMAX, 1)
}

/// [`model`] with the normaliser `attention` and `depth` blocks.
fn model_with(family: Family, urpe: bool, causal: bool, seed: u64, attention: Attention, depth: usize) -> Model<f64> {
    let mut spec = ModelSpec::new(family, depth, 8, 2, 7, InputKind::Real { d_in: 3 }, OutputKind::Real { d_out: 2 });
    spec.attention = Some(attention);
    spec.urpe = urpe;
    spec.ffn = Some(4);
    spec.norm = Some(Norm::None);
    spec.causal = causal;
    spec.t5_buckets = Some(6);
    spec.t5_max_distance = Some(5);
    spec.rope_base = Some(100.0);
    let config = spec.resolve().unwrap();
    let mut m = Model::<f64>::zeros(config).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    m.params.data.iter_mut().for_each(|v| *v = rng.random_range(-1.0..1.0));
    m
}

fn sinusoid(t: f64, d: usize) -> Vec<f64> {
    (0..d)
        .map(|f| {
            let w = 10_000f64.powf(-2.0 * (f / 2) as f64 / d as f64);
            if f % 2 == 0 { (t * w).sin() } else { (t * w).cos() }
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Rotates a head vector by angle i·θ_k, half-split pairing, written from the formula.
fn rotate(v: &[f64], i: usize, base: f64) -> Vec<f64> {
    let half = v.len() / 2;
    let mut out = v.to_vec();
    for k in 0..half {
        let a = i as f64 * base.powf(-2.0 * k as f64 / v.len() as f64);
        out[k] = v[k] * a.cos() - v[k + half] * a.sin();
        out[k + half] = v[k] * a.sin() + v[k + half] * a.cos();
    }
    out
}

/// The first layer's scores and attention output computed with plain loops from the
/// formulas, given the layer input h [n, d].
fn naive_attention(m: &Model<f64>, h: &Array2<f64>) -> (Array3<f64>, Array2<f64>) {
    let c = &m.config;
    let (n, d, heads, dh, n_max) = (h.nrows(), c.width, c.heads, c.head_dim(), c.n_max);
    let ids = m.layout.layers[0].attn;
    let p = &m.params;
    let affine = |lin: urpe::nn::layout::LinearIds| {
        let (w, b) = (p.mat(lin.weight), p.vec(lin.bias));
        Array2::from_shape_fn((n, d), |(i, o)| b[o] + (0..d).map(|k| h[[i, k]] * w[[k, o]]).sum::<f64>())
    };
    let (q, k, v) = (affine(ids.q), affine(ids.k), affine(ids.v));
    let scale = 1.0 / (dh as f64).sqrt();
    let idx = |i: usize, j: usize| j + n_max - 1 - i;
    let mut scores = Array3::<f64>::zeros((heads, n, n));
    let mut heads_out = Array2::<f64>::zeros((n, d));
    for hd in 0..heads {
        let cols = hd * dh..(hd + 1) * dh;
        let row = |a: &Array2<f64>, i: usize| a.row(i).as_slice().unwrap()[cols.clone()].to_vec();
        for i in 0..n {
            for j in 0..n {
                let (qi, kj) = (row(&q, i), row(&k, j));
                let (f, t) = (c.family, |i: usize| ids.pos.family.get(i));
                let s = if f == Family::Rope {
                    scale * dot(&rotate(&qi, i, c.rope_base), &rotate(&kj, j, c.rope_base))
                } else if f == Family::Xpos {
                    // rotated, then pair k scaled by ζ_k^{±position/512}, ζ_k = (k/(d_h/2) + 0.4)/1.4
                    let scaled = |v: Vec<f64>, power: f64| -> Vec<f64> {
                        let half = v.len() / 2;
                        let zeta = |k: usize| ((k % half) as f64 / half as f64 + 0.4) / 1.4;
                        v.iter().enumerate().map(|(e, x)| x * zeta(e).powf(power / 512.0)).collect()
                    };
                    let (qx, kx) = (rotate(&qi, i, c.rope_base), rotate(&kj, j, c.rope_base));
                    scale * dot(&scaled(qx, i as f64), &scaled(kx, -(j as f64)))
                } else if f == Family::ShawKey {
                    scale * (dot(&qi, &kj) + dot(&qi, p.mat(t(0)).row(idx(i, j)).as_slice().unwrap()))
                } else if f == Family::Cope {
                    // p = Σ_{m=j..i} σ(c_im), clamped to n_max − 1; q_i·e[p] interpolated linearly
                    let top = n_max - 1;
                    let gate = |m: usize| 1.0 / (1.0 + (-scale * dot(&qi, &row(&k, m))).exp());
                    let pos = (j..=i).map(gate).sum::<f64>().min(top as f64);
                    let e = p.mat(t(0));
                    let z = |at: usize| dot(&qi, e.row(at).as_slice().unwrap());
                    let (lo, w) = (pos.floor() as usize, pos - pos.floor());
                    scale * (dot(&qi, &kj) + (1.0 - w) * z(lo) + w * z((lo + 1).min(top)))
                } else if f == Family::Xl {
                    let (u, vb, r) = (t(0), t(1), t(2));
                    // R_{i−j} projected by W_R, this head's columns
                    let rel = sinusoid(i as f64 - j as f64, d);
                    let w = p.mat(r);
                    let proj: Vec<f64> = cols.clone().map(|o| (0..d).map(|f| rel[f] * w[[f, o]]).sum()).collect();
                    let qu: Vec<f64> = qi.iter().zip(p.mat(u).row(hd)).map(|(a, b)| a + b).collect();
                    let qv: Vec<f64> = qi.iter().zip(p.mat(vb).row(hd)).map(|(a, b)| a + b).collect();
                    scale * (dot(&qu, &kj) + dot(&qv, &proj))
                } else {
                    scale * dot(&qi, &kj) + naive_bias(m, hd, i, j)
                };
                scores[[hd, i, j]] = if c.causal && j > i { f64::NEG_INFINITY } else { s };
            }
            let max = (0..n).map(|j| scores[[hd, i, j]]).fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = (0..n).map(|j| (scores[[hd, i, j]] - max).exp()).sum();
            for j in 0..n {
                let mut a = (scores[[hd, i, j]] - max).exp() / z;
                if let Some(g) = ids.pos.gate {
                    a *= p.mat(g)[[hd, idx(i, j)]];
                }
                for (o, col) in cols.clone().enumerate() {
                    heads_out[[i, col]] += a * (v[[j, col]] + shaw_value(m, 0, i, j, o));
                }
            }
        }
    }
    (scores, output_map(m, 0, &heads_out))
}

/// The score bias B_h[i, j] of the families whose score term is one (t5, t5-bucketed, alibi,
/// kerple, fire), from the formulas; 0 for the others.
fn naive_bias(m: &Model<f64>, hd: usize, i: usize, j: usize) -> f64 {
    let (c, p) = (&m.config, &m.params);
    let table = || p.mat(m.layout.layers[0].attn.pos.family.get(0));
    if c.family == Family::T5 {
        table()[[hd, j + c.n_max - 1 - i]]
    } else if c.family == Family::T5Bucketed {
        table()[[hd, t5::bucket(j as i64 - i as i64, !c.causal, c.t5_buckets, c.t5_max_distance)]]
    } else if c.family == Family::Alibi {
        -alibi::slopes(c.heads)[hd] * (i.abs_diff(j) as f64)
    } else if c.family == Family::Kerple {
        // r = softplus(ρ) per head
        let rho = table();
        let (r1, r2) = ((1.0 + rho[[hd, 0]].exp()).ln(), (1.0 + rho[[hd, 1]].exp()).ln());
        -r1 * (1.0 + r2 * i.abs_diff(j) as f64).ln()
    } else if c.family == Family::Fire {
        // b_h(i, j) = f_θ(x_ij)_h after the scale, x_ij = ψ̃(i − j)/ψ(max(L, i))
        fire::FireParams::of(m, &m.layout.layers[0].attn.pos).bias(hd, i, j)
    } else {
        0.0
    }
}

/// shaw-value's a^V_{j−i}, feature o, of layer `l` (0 for the other families).
fn shaw_value(m: &Model<f64>, l: usize, i: usize, j: usize, o: usize) -> f64 {
    match m.config.family == Family::ShawValue {
        true => m.params.mat(m.layout.layers[l].attn.pos.family.get(0))[[j + m.config.n_max - 1 - i, o]],
        false => 0.0,
    }
}

/// The output map of layer `l`: heads side by side [n, d] times W_O, plus b_O.
fn output_map(m: &Model<f64>, l: usize, heads: &Array2<f64>) -> Array2<f64> {
    let ids = m.layout.layers[l].attn;
    let (wo, bo) = (m.params.mat(ids.o.weight), m.params.vec(ids.o.bias));
    let (n, d) = heads.dim();
    Array2::from_shape_fn((n, d), |(i, o)| bo[o] + (0..d).map(|k| heads[[i, k]] * wo[[k, o]]).sum::<f64>())
}

/// Layer `l`'s differential attention output, with plain loops from its definition
/// (src/normaliser/differential.rs), given the layer input h [n, d]: per head and half c,
/// S^c_ij = q^c_i·k^c_j/√(d_h/2) + B_h[i, j] (masked), A = softmax(S¹) − λ·softmax(S²),
/// G = A ⊙ C or A, O_i = Σ_j G_ij (v_j + a^V_{j−i}), Y_i = (1 − λ_init)·O_i/√(mean O_i² + 1e-5),
/// λ = exp(λ_q1·λ_k1) − exp(λ_q2·λ_k2) + 0.8 − 0.6·exp(−0.3·l).
fn naive_differential(m: &Model<f64>, l: usize, h: &Array2<f64>) -> Array2<f64> {
    let c = &m.config;
    let (n, d, dh, n_max) = (h.nrows(), c.width, c.head_dim(), c.n_max);
    let half = dh / 2;
    let ids = m.layout.layers[l].attn;
    let p = &m.params;
    let affine = |lin: urpe::nn::layout::LinearIds| {
        let (w, b) = (p.mat(lin.weight), p.vec(lin.bias));
        Array2::from_shape_fn((n, d), |(i, o)| b[o] + (0..d).map(|k| h[[i, k]] * w[[k, o]]).sum::<f64>())
    };
    let (q, k, v) = (affine(ids.q), affine(ids.k), affine(ids.v));
    let vectors = p.mat(ids.differential.expect("differential attention").lambda);
    let row = |r: usize| vectors.row(r).to_vec();
    let lambda_init = 0.8 - 0.6 * (-0.3 * l as f64).exp();
    let lambda = dot(&row(0), &row(1)).exp() - dot(&row(2), &row(3)).exp() + lambda_init;
    let mut heads_out = Array2::<f64>::zeros((n, d));
    for hd in 0..c.heads {
        let softmax_of_half = |part: usize, i: usize| -> Vec<f64> {
            let cols = hd * dh + part * half..hd * dh + (part + 1) * half;
            let s: Vec<f64> = (0..n)
                .map(|j| match c.causal && j > i {
                    true => f64::NEG_INFINITY,
                    false => {
                        let qk: f64 = cols.clone().map(|e| q[[i, e]] * k[[j, e]]).sum();
                        qk / (half as f64).sqrt() + naive_bias(m, hd, i, j)
                    }
                })
                .collect();
            let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = s.iter().map(|x| (x - max).exp()).sum();
            s.iter().map(|x| (x - max).exp() / z).collect()
        };
        for i in 0..n {
            let (a1, a2) = (softmax_of_half(0, i), softmax_of_half(1, i));
            let mut o = vec![0.0; dh];
            for j in 0..n {
                let mut g = a1[j] - lambda * a2[j];
                if let Some(gate) = ids.pos.gate {
                    g *= p.mat(gate)[[hd, j + n_max - 1 - i]];
                }
                for (e, o) in o.iter_mut().enumerate() {
                    *o += g * (v[[j, hd * dh + e]] + shaw_value(m, l, i, j, e));
                }
            }
            let rms = (o.iter().map(|x| x * x).sum::<f64>() / dh as f64 + 1e-5).sqrt();
            for (e, o) in o.iter().enumerate() {
                heads_out[[i, hd * dh + e]] = (1.0 - lambda_init) * o / rms;
            }
        }
    }
    output_map(m, l, &heads_out)
}

/// Differential attention on every family it takes, gate on and off, causal on and off, in
/// both blocks of a depth-2 model (λ_init differs per layer): the engine's attention output
/// agrees with the naive loops to 1e-12 (absolute, values of order 1).
#[test]
fn differential_attention_matches_naive_loops() {
    let attention = Attention(urpe::normaliser::DIFFERENTIAL);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut checked = 0;
    for (f, family) in Family::ALL.into_iter().enumerate().filter(|&(_, f)| check_combination(f, attention).is_ok()) {
        for (urpe, causal) in [(false, false), (true, false), (false, true), (true, true)] {
            let m = model_with(family, urpe, causal, 40 + f as u64, attention, 2);
            let n = 6;
            let x = Array3::from_shape_fn((2, n, 3), |_| rng.random_range(-1.0..1.0));
            let input = ModelInput::Real(x.view());
            let mut cache = m.cache_for(&input);
            m.forward(&input, &mut cache).unwrap();
            for b in 0..2 {
                let rows = ndarray::s![b * n..(b + 1) * n, ..];
                for l in 0..2 {
                    let input = if l == 0 { &cache.embedded } else { cache.layers[0].output(Norm::None) };
                    let want = naive_differential(&m, l, &input.slice(rows).to_owned());
                    let got = cache.layers[l].attn.out.slice(rows);
                    let gap = (&got - &want).iter().fold(0.0f64, |g, x| g.max(x.abs()));
                    assert!(gap < 1e-12, "{family} urpe={urpe} causal={causal} layer {l} sequence {b}: {gap:e}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 9 * 4 * 2 * 2, "every family that differential attention takes");
}

/// Runs `m` on `x` [2, n, 3] and checks the first layer's scores (finite entries) and
/// attention output against the naive loops to 1e-12 (absolute, values of order 1), masked
/// entries −∞ in both; returns the forward cache.
fn assert_matches_naive(m: &Model<f64>, x: &Array3<f64>, case: &str) -> urpe::nn::ForwardCache<f64> {
    let n = x.dim().1;
    let input = ModelInput::Real(x.view());
    let mut cache = m.cache_for(&input);
    m.forward(&input, &mut cache).unwrap();
    for b in 0..x.dim().0 {
        let rows = cache.embedded.slice(ndarray::s![b * n..(b + 1) * n, ..]).to_owned();
        let (scores, out) = naive_attention(m, &rows);
        let attn = &cache.layers[0].attn;
        for ((hd, i, j), &s) in scores.indexed_iter() {
            let got = attn.scores[[b, hd, i, j]];
            let ok = if s.is_finite() { (got - s).abs() < 1e-12 } else { got == s };
            assert!(ok, "{case} score[{b},{hd},{i},{j}]: {got} vs {s}");
        }
        for ((i, o), &want) in out.indexed_iter() {
            let got = attn.out[[b * n + i, o]];
            assert!((got - want).abs() < 1e-12, "{case} out[{b},{i},{o}]: {got} vs {want}");
        }
    }
    cache
}

/// Every family, gate on and off, causal on and off (a causal-only family with the mask
/// only): the engine agrees with the naive loops ([`assert_matches_naive`]).
#[test]
fn attention_matches_naive_loops_for_every_family() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for (f, family) in Family::ALL.into_iter().enumerate() {
        for (urpe, causal) in [(false, false), (true, false), (false, true), (true, true)] {
            if family.causal_only() && !causal {
                continue;
            }
            let m = model(family, urpe, causal, f as u64);
            let x = Array3::from_shape_fn((2, 6, 3), |_| rng.random_range(-1.0..1.0));
            assert_matches_naive(&m, &x, &format!("{family} urpe={urpe} causal={causal}"));
        }
    }
}

/// cope at n = n_max with query and key biases of 1 (gates near 0.9): some contextual
/// positions exceed P = n_max − 1 and are clamped, others are not, and the engine still
/// agrees with the naive loops, gate on and off.
#[test]
fn cope_clamps_contextual_positions_at_n_max() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for urpe in [false, true] {
        let mut m = model(Family::Cope, urpe, true, 5);
        let (n, dh) = (m.config.n_max, m.config.head_dim());
        let ids = m.layout.layers[0].attn;
        m.params.slice_mut(ids.q.bias).fill(1.0);
        m.params.slice_mut(ids.k.bias).fill(1.0);
        let x = Array3::from_shape_fn((2, n, 3), |_| rng.random_range(-1.0..1.0));
        let cache = assert_matches_naive(&m, &x, &format!("cope urpe={urpe} at n = n_max"));
        // p_ij from the engine's queries and keys, for every head, row and key of both sequences
        let (q, k) = (&cache.layers[0].attn.q, &cache.layers[0].attn.k);
        let mut positions = Vec::new();
        for (b, h, i) in triples(2, m.config.heads, n) {
            let mut pos = 0.0;
            for j in (0..=i).rev() {
                let c: f64 = (0..dh).map(|e| q[[b * n + i, h * dh + e]] * k[[b * n + j, h * dh + e]]).sum();
                pos += 1.0 / (1.0 + (-c / (dh as f64).sqrt()).exp());
                positions.push(pos);
            }
        }
        let clamped = positions.iter().filter(|&&p| p > (n - 1) as f64).count();
        assert!(clamped > 0 && clamped < positions.len(), "urpe={urpe}: {clamped} of {} clamped", positions.len());
    }
}

/// Every (batch, head, row) triple, in order.
fn triples(batch: usize, heads: usize, n: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    (0..batch).flat_map(move |b| (0..heads).flat_map(move |h| (0..n).map(move |i| (b, h, i))))
}

/// ape-sin adds sin/cos of the position (from 0) to the input rows; ape-learned adds its
/// table row.
#[test]
fn absolute_positions_are_added_to_the_input_rows() {
    for family in [Family::ApeSin, Family::ApeLearned] {
        let m = model(family, false, false, 4);
        let x = Array3::<f64>::zeros((1, 5, 3));
        let input = ModelInput::Real(x.view());
        let mut cache = m.cache_for(&input);
        m.forward(&input, &mut cache).unwrap();
        let urpe::nn::layout::InputIds::Linear(lin) = m.layout.input else { unreachable!() };
        let bias = m.params.vec(lin.bias);
        for i in 0..5 {
            let pos: Vec<f64> = match m.layout.input_pos.all().next() {
                Some(ape) => m.params.mat(ape).row(i).to_vec(),
                None => sinusoid(i as f64, 8),
            };
            for o in 0..8 {
                assert!((cache.embedded[[i, o]] - bias[o] - pos[o]).abs() < 1e-15, "{family} row {i}");
            }
        }
    }
}

/// fire with L = 2.5 (ρ_L = ln(2.5/7), n_max = 7): queries i ≥ 3 divide by ψ(i) instead of
/// ψ(L), and the engine still matches the naive loops. The engine's table then shows the
/// interpolation: b(i, 0) is the same for every i ≥ 3 (x = ψ(i)/ψ(i) = 1) and b(i, j) ≠
/// b(i + 1, j + 1) there, while at ρ_L = 0 (L = n_max) the table is Toeplitz, b(i, j) =
/// b(i + 1, j + 1) for all i, j < n_max − 1, to 1e-12.
#[test]
fn fire_interpolates_beyond_l_and_is_toeplitz_within_it() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for causal in [false, true] {
        let mut m = model(Family::Fire, false, causal, 3);
        let rho = m.layout.layers[0].attn.pos.family.get(4);
        let table = |m: &Model<f64>| {
            let x = Array3::<f64>::zeros((1, 7, 3));
            let input = ModelInput::Real(x.view());
            let mut cache = m.cache_for(&input);
            m.forward(&input, &mut cache).unwrap();
            cache.layers[0].attn.derived.clone()
        };
        let b = |t: &Array2<f64>, h: usize, i: usize, j: usize| t[[h, i * 7 + j]];
        m.params.vec_mut(rho)[1] = 0.0;
        let within = table(&m);
        for (h, i, j) in (0..2).flat_map(|h| (0..6).flat_map(move |i| (0..6).map(move |j| (h, i, j)))) {
            assert!((b(&within, h, i, j) - b(&within, h, i + 1, j + 1)).abs() < 1e-12, "L = n_max: ({i}, {j})");
        }
        m.params.vec_mut(rho)[1] = (2.5f64 / 7.0).ln();
        let x = Array3::from_shape_fn((2, 6, 3), |_| rng.random_range(-1.0..1.0));
        assert_matches_naive(&m, &x, &format!("fire L = 2.5 causal={causal}"));
        let beyond = table(&m);
        for h in 0..2 {
            for i in 4..7 {
                assert!((b(&beyond, h, i, 0) - b(&beyond, h, 3, 0)).abs() < 1e-12, "b({i}, 0) = b(3, 0)");
            }
            let moved = (3..6).map(|i| (b(&beyond, h, i, 1) - b(&beyond, h, i + 1, 2)).abs()).fold(0.0, f64::max);
            assert!(moved > 1e-6, "head {h}: beyond L the table is not Toeplitz ({moved:e})");
        }
    }
}
