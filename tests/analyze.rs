//! The linear-algebra probes on cases with known answers: faer against closed forms, a
//! right-stochastic matrix built by hand, the URPE witness (positional rank exactly 1, row
//! sums of A ⊙ C equal to i/n, the spectrum of a triangular C), and random models of every
//! family against the classification of docs/theory.md §2 (`urpe analyze` end to end: tests/cli.rs).

use ndarray::{Array2, array};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use urpe::analysis::classify::FREE_ABOVE;
use urpe::analysis::linalg::{eigenvalues, singular_values};
use urpe::analysis::random::random_model;
use urpe::analysis::rank::{RANK_TOLERANCE, positional_rank as stage_ranks};
use urpe::analysis::spectrum::toeplitz_spectra;
use urpe::analysis::stochastic::{eigenvalue_nearest_one, heads, row_sum_residual};
use urpe::analysis::{Options, analyze, positional_rank, probe_inputs};
use urpe::config::{Family, InputKind, ModelSpec, Norm, OutputKind};
use urpe::theory::witness::witness_model;

fn sorted_desc(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| b.total_cmp(a));
    v
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-300)
}

/// σ_k of the n × n lower-triangular matrix of ones: 1 / (2 sin((2k − 1)π / (4n + 2))).
fn triangular_ones_singular(n: usize, k: usize) -> f64 {
    1.0 / (2.0 * ((2 * k - 1) as f64 * std::f64::consts::PI / (4 * n + 2) as f64).sin())
}

#[test]
fn faer_matches_closed_forms() {
    // singular values of a permuted, signed diagonal matrix
    let a = array![[0.0, -2.0, 0.0], [0.0, 0.0, 1.0], [3.0, 0.0, 0.0]];
    let s = singular_values(a.view()).unwrap();
    for (got, want) in s.iter().zip([3.0, 2.0, 1.0]) {
        assert!((got - want).abs() < 1e-14, "{s:?}");
    }
    // 11ᵀ: σ = (n, 0, …)
    let ones = Array2::<f64>::ones((9, 9));
    let s = singular_values(ones.view()).unwrap();
    assert!((s[0] - 9.0).abs() < 1e-12 && s[1..].iter().all(|&v| v < 1e-12), "{s:?}");
    // lower-triangular ones
    let n = 16;
    let tri = Array2::from_shape_fn((n, n), |(i, j)| if j <= i { 1.0 } else { 0.0 });
    let s = singular_values(tri.view()).unwrap();
    for (k, &got) in s.iter().enumerate() {
        assert!(relative(got, triangular_ones_singular(n, k + 1)) < 1e-10, "σ_{} = {got}", k + 1);
    }
    // a tall matrix keeps tiny singular values that a Gram matrix would lose (σ² < ε)
    let tall = Array2::from_shape_fn((40, 3), |(i, j)| match j {
        0 => 1.0,
        1 => (i as f64).sin(),
        _ => 1e-10 * (i as f64).cos(),
    });
    let s = singular_values(tall.view()).unwrap();
    assert!(s[2] > 1e-11 && s[2] < 1e-9, "{s:?}");
    // eigenvalues: a rotation has ±i, a triangular matrix its diagonal
    let rot = array![[0.0, -1.0], [1.0, 0.0]];
    let mut ev = eigenvalues(rot.view()).unwrap();
    ev.sort_by(|a, b| a.1.total_cmp(&b.1));
    assert!(ev[0].0.abs() < 1e-14 && (ev[0].1 + 1.0).abs() < 1e-14 && (ev[1].1 - 1.0).abs() < 1e-14, "{ev:?}");
    let upper = array![[2.0, 5.0, -1.0], [0.0, -3.0, 4.0], [0.0, 0.0, 0.5]];
    let re = sorted_desc(eigenvalues(upper.view()).unwrap().into_iter().map(|z| z.0).collect());
    for (got, want) in re.iter().zip([2.0, 0.5, -3.0]) {
        assert!((got - want).abs() < 1e-12, "{re:?}");
    }
}

#[test]
fn a_right_stochastic_matrix_has_eigenvalue_one_with_eigenvector_ones() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let n = 7;
    let mut m = Array2::from_shape_fn((n, n), |_| rng.random_range(0.01..1.0));
    for mut row in m.rows_mut() {
        let s = row.sum();
        row /= s;
    }
    // M·1 = 1 is the eigenvector statement; the eigen solver must find λ = 1
    assert!(row_sum_residual(m.view()) < 1e-15, "‖M1 − 1‖∞ = {}", row_sum_residual(m.view()));
    let (distance, (re, im)) = eigenvalue_nearest_one(m.view()).unwrap();
    assert!(distance < 1e-12 && (re - 1.0).abs() < 1e-12 && im.abs() < 1e-12, "λ = ({re}, {im})");
    // not vacuous: one row scaled by 1.5 breaks both
    m.row_mut(3).mapv_inplace(|v| v * 1.5);
    assert!(row_sum_residual(m.view()) > 0.49);
    let (distance, _) = eigenvalue_nearest_one(m.view()).unwrap();
    assert!(distance > 1e-3, "the scaled matrix still has an eigenvalue at 1: {distance}");
}

#[test]
fn the_witness_has_positional_rank_one_and_gated_row_sums_i_over_n() {
    let (n, d, k) = (16, 8, 64);
    let model = witness_model::<f64>(n, d, 1).unwrap();
    let ranks = positional_rank(&model, n, k, 3).unwrap();
    let names: Vec<&str> = ranks.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names, ["input", "block 1", "output"]);
    assert_eq!(ranks[0].rank, 0, "{:?}", ranks[0]);
    assert!(ranks[0].singular[0] < 1e-12);
    for s in &ranks[1..] {
        assert_eq!(s.rank, 1, "{s:?}");
        assert!(s.singular[1] < 1e-12, "{s:?}");
    }
    // exact value: P·h = (p − p̄)uᵀ for each of the k inputs, u = 1, so
    // ‖P·h‖_F² = k·n·Var(p)·d, and σ₁ is all of it (rank 1)
    let x = probe_inputs(&model.config, n, k, true, &mut ChaCha8Rng::seed_from_u64(3));
    let mut cache = model.cache_for(&x.view());
    model.forward(&x.view(), &mut cache).unwrap();
    let h = cache.layers[0].output(Norm::None);
    let norm = h.iter().map(|v| v * v).sum::<f64>().sqrt();
    let var_p = ((n * n - 1) as f64) / (12.0 * (n * n) as f64);
    let sigma = ((k * n * d) as f64 * var_p).sqrt() / norm;
    assert!(relative(ranks[1].singular[0], sigma) < 1e-12, "{} vs {sigma}", ranks[1].singular[0]);
    assert!(relative(ranks[1].energy, sigma * sigma) < 1e-12);
    // the gate: row i of A ⊙ C holds i entries 1/n
    let heads = heads(&cache).unwrap();
    let sums = heads[0].gated_row_sums.as_ref().expect("the witness is gated");
    for (i, &s) in sums.iter().enumerate() {
        assert!((s - (i + 1) as f64 / n as f64).abs() < 1e-12, "row {i}: {s}");
    }
    assert!(heads[0].residual > 0.9, "A ⊙ C is far from stochastic: {}", heads[0].residual);
    // its C is lower-triangular ones, its B zero
    let spectra = toeplitz_spectra(&model, n).unwrap();
    let c = spectra.iter().find(|s| s.role == "C").unwrap();
    for (k, &got) in c.singular.iter().enumerate() {
        assert!(relative(got, triangular_ones_singular(n, k + 1)) < 1e-10, "σ_{} = {got}", k + 1);
    }
    let zeros_above = (n * (n - 1) / 2) as f64;
    assert!(relative(c.distance_from_ones.unwrap(), zeros_above.sqrt() / n as f64) < 1e-14);
    let b = spectra.iter().find(|s| s.role == "B").unwrap();
    assert!(b.singular.iter().all(|&v| v == 0.0));
}

#[test]
fn a_t5_model_has_positional_rank_zero_and_stochastic_heads() {
    let spec = ModelSpec::new(Family::T5, 3, 16, 4, 12, InputKind::Real { d_in: 5 }, OutputKind::Real { d_out: 3 });
    let model = random_model(spec.resolve().unwrap(), 11).unwrap();
    let o = Options { n: 12, rank_inputs: 128, head_inputs: 8, seed: 1 };
    let a = analyze(&model, &o).unwrap();
    assert_eq!(a.rank.len(), 5, "input, 3 blocks, output");
    for s in &a.rank {
        assert!(s.singular[0] < 1e-12, "{s:?}");
    }
    for h in a.heads_constant.iter().chain(&a.heads_general) {
        assert!(h.residual < 1e-14 && h.eigen_distance < 1e-10, "{h:?}");
    }
    // the same model with C ≠ 1 is not bound: its rank turns positive after the gate
    let mut spec = ModelSpec::new(Family::T5, 3, 16, 4, 12, InputKind::Real { d_in: 5 }, OutputKind::Real { d_out: 3 });
    spec.urpe = true;
    let gated = random_model(spec.resolve().unwrap(), 11).unwrap();
    let a = analyze(&gated, &o).unwrap();
    assert_eq!(a.rank[0].rank, 0, "the input is still constant");
    assert!(a.rank[1].singular[0] > 1e-3, "{:?}", a.rank[1]);
    assert!(a.heads_constant.iter().all(|h| h.residual > 1e-3));
}

#[test]
fn random_models_of_every_family_match_the_theory() {
    let mut checked = (0, 0);
    for family in Family::ALL {
        for urpe in [false, true] {
            for norm in [Norm::Post, Norm::Pre, Norm::None] {
                let mut spec = ModelSpec::new(
                    family,
                    2,
                    8,
                    2,
                    8,
                    InputKind::Tokens { vocab: 11 },
                    OutputKind::Classes { classes: 5 },
                );
                spec.urpe = urpe;
                spec.norm = Some(norm);
                spec.causal = family.causal_only();
                let config = spec.resolve().unwrap();
                let bound = config.barrier_bound();
                let model = random_model(config, 5).unwrap();
                let a = analyze(&model, &Options { n: 8, rank_inputs: 32, head_inputs: 4, seed: 2 }).unwrap();
                let case = format!("{} norm {norm:?}", a.label);
                assert_eq!(a.barrier_bound_by_theory, bound);
                if bound {
                    let worst = a.rank.iter().map(|s| s.singular[0]).fold(0.0, f64::max);
                    assert!(worst < 1e-12, "{case}: σ₁/‖h‖ = {worst}");
                    checked.0 += 1;
                } else {
                    let best = a.rank.iter().map(|s| s.singular[0]).fold(0.0, f64::max);
                    assert!(a.positional_rank() > 0 && best > 1e-4, "{case}: σ₁/‖h‖ = {best}");
                    checked.1 += 1;
                }
                assert!(best_positive(&a.rank) || bound, "{case}");
            }
        }
    }
    // in-softmax families × 3 norms bound; free families × 3 norms + every gated family × 3 free
    let inside = Family::ALL.iter().filter(|f| f.inside_softmax_only()).count();
    let all = Family::ALL.len();
    assert_eq!(checked, (3 * inside, 3 * (all - inside) + 3 * all));
    assert!(inside >= 7 && all - inside >= 3, "the catalogue lost families");
}

/// Every normaliser, causal or not, every family it takes, gate on and off: the theory's
/// verdict (`ModelConfig::barrier_bound`) is what random models show. For each normaliser
/// both verdicts occur (softmax and differential, whose rows all have the same sum: the
/// in-softmax families bound; sigmoid and relu: only nope without the mask is, every family
/// with position terms is free; stick-breaking, causal only: nothing is bound).
#[test]
fn random_models_with_every_normaliser_match_the_theory() {
    for attention in urpe::normaliser::ALL.map(urpe::normaliser::Attention) {
        let mut checked = (0, 0);
        for family in Family::ALL.into_iter().filter(|&f| urpe::config::check_combination(f, attention).is_ok()) {
            for urpe in [false, true] {
                for causal in [false, true] {
                    if (attention.0.causal_only() || family.causal_only()) && !causal {
                        continue;
                    }
                    let mut spec = ModelSpec::new(
                        family,
                        2,
                        8,
                        2,
                        8,
                        InputKind::Tokens { vocab: 11 },
                        OutputKind::Classes { classes: 5 },
                    );
                    spec.urpe = urpe;
                    spec.causal = causal;
                    spec.attention = Some(attention);
                    let config = spec.resolve().unwrap();
                    let bound = config.barrier_bound();
                    let model = random_model(config, 5).unwrap();
                    let a = analyze(&model, &Options { n: 8, rank_inputs: 32, head_inputs: 4, seed: 2 }).unwrap();
                    let case = format!("{} {attention} causal {causal}", a.label);
                    let largest = a.rank.iter().map(|s| s.singular[0]).fold(0.0, f64::max);
                    if bound {
                        assert!(largest < 1e-12, "{case}: σ₁/‖h‖ = {largest}");
                        checked.0 += 1;
                    } else {
                        // classify's threshold: the weakest free settings (differential with the
                        // gate) carry a signal of the order of the head norm's ε
                        assert!(largest > FREE_ABOVE, "{case}: σ₁/‖h‖ = {largest}");
                        checked.1 += 1;
                    }
                }
            }
        }
        assert!(checked.1 > 0, "{attention}: bound/free {checked:?}");
        match (attention.0.rows_sum_equal(), attention.0.causal_only()) {
            (true, _) => assert!(checked.0 > 0, "{attention}: bound/free {checked:?}"),
            (false, false) => assert_eq!(checked.0, 1, "{attention}: only nope without the mask or the gate is bound"),
            (false, true) => assert_eq!(checked.0, 0, "{attention}: causal only, so nothing is bound"),
        }
    }
}

fn best_positive(ranks: &[urpe::analysis::rank::StageRank]) -> bool {
    ranks.iter().any(|s| s.rank > 0 && s.singular[0] > RANK_TOLERANCE)
}

#[test]
fn stage_ranks_follow_the_forward_pass() {
    let mut spec = ModelSpec::new(Family::Rope, 2, 8, 2, 6, InputKind::Real { d_in: 4 }, OutputKind::Real { d_out: 2 });
    spec.norm = Some(Norm::Pre);
    let model = random_model(spec.resolve().unwrap(), 3).unwrap();
    let x = probe_inputs(&model.config, 6, 4, true, &mut ChaCha8Rng::seed_from_u64(0));
    let mut cache = model.cache_for(&x.view());
    model.forward(&x.view(), &mut cache).unwrap();
    let names: Vec<String> = stage_ranks(&cache, Norm::Pre).unwrap().into_iter().map(|s| s.stage).collect();
    assert_eq!(names, ["input", "block 1", "block 2", "final norm", "output"]);
}

/// With `bos` the probes measure the n input positions: for nope without the mask every
/// stage has positional rank 0, although the blocks' rows (the BOS row included) differ; with
/// the mask, or with t5, the input rows themselves differ. The heads' matrices and the
/// Toeplitz matrices are those the attention applies, (n + 1) × (n + 1).
#[test]
fn the_probes_leave_the_bos_row_out() {
    let model = |family, causal| {
        let mut spec =
            ModelSpec::new(family, 2, 8, 2, 8, InputKind::Tokens { vocab: 11 }, OutputKind::Real { d_out: 3 });
        spec.bos = true;
        spec.causal = causal;
        random_model(spec.resolve().unwrap(), 4).unwrap()
    };
    let o = Options { n: 6, rank_inputs: 16, head_inputs: 2, seed: 1 };
    let bound = model(Family::Nope, false);
    let a = analyze(&bound, &o).unwrap();
    assert!(a.barrier_bound_by_theory);
    let largest = a.rank.iter().map(|s| s.singular[0]).fold(0.0, f64::max);
    assert!(largest < 1e-12, "σ₁/‖h‖ = {largest}");
    // not vacuous: with the BOS row each block's rows differ
    let x = probe_inputs(&bound.config, 6, 16, true, &mut ChaCha8Rng::seed_from_u64(1));
    let mut cache = bound.cache_for(&x.view());
    bound.forward(&x.view(), &mut cache).unwrap();
    assert_eq!((cache.n, cache.inner, cache.embedded.nrows()), (6, 7, 16 * 7));
    let with_bos = urpe::analysis::rank::stage_rank("block 1", cache.layers[0].output(Norm::Post).view(), 7).unwrap();
    assert!(with_bos.singular[0] > 1e-3, "{with_bos:?}");
    assert!(a.heads_constant.iter().all(|h| h.residual < 1e-12));
    for free in [model(Family::Nope, true), model(Family::T5, false)] {
        let a = analyze(&free, &o).unwrap();
        assert!(!a.barrier_bound_by_theory && a.rank[0].rank == 0, "{}: the input rows are equal", a.label);
        assert!(a.rank[1].singular[0] > 1e-4, "{}: {:?}", a.label, a.rank[1]);
    }
    let t5 = analyze(&model(Family::T5, false), &o).unwrap();
    assert!(t5.spectra.iter().all(|s| s.singular.len() == 7), "{:?}", t5.spectra);
}

/// faer against LAPACK (ndarray-linalg) on random matrices: `cargo test --features lapack`
/// on a machine with a system OpenBLAS.
#[cfg(feature = "lapack")]
#[test]
fn faer_agrees_with_lapack() {
    use urpe::analysis::linalg::lapack;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for (rows, cols) in [(5, 5), (40, 7), (7, 40), (16, 16)] {
        let a = Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0..1.0));
        let (f, l) = (singular_values(a.view()).unwrap(), lapack::singular_values(a.view()).unwrap());
        for (x, y) in f.iter().zip(&l) {
            assert!((x - y).abs() <= 1e-12 * f[0], "{rows}×{cols}: {f:?} vs {l:?}");
        }
        if rows == cols {
            let key = |v: Vec<(f64, f64)>| {
                let mut v = v;
                v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
                v
            };
            let (f, l) = (key(eigenvalues(a.view()).unwrap()), key(lapack::eigenvalues(a.view()).unwrap()));
            for (x, y) in f.iter().zip(&l) {
                assert!((x.0 - y.0).hypot(x.1 - y.1) < 1e-10, "{f:?} vs {l:?}");
            }
        }
    }
}
