//! Every attention normaliser of `urpe::normaliser::ALL`: a normaliser that says its rows
//! are right-stochastic gives rows ≥ 0 that sum to 1 (within 1e-12 in f64, masked entries
//! 0), and its row backward agrees with central finite differences (relative 1e-7), for
//! the scores and, where it has one, its learned scalar β (which others report as 0).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use urpe::normaliser::{ALL, rows};

#[test]
fn every_normaliser_keeps_its_word_and_its_backward_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    assert!(!ALL.is_empty());
    for normaliser in ALL {
        let r = rows::<f64>(normaliser);
        for n in [1usize, 2, 7, 16] {
            let mut s: Vec<f64> = (0..n).map(|_| rng.random_range(-4.0..4.0)).collect();
            if n > 2 {
                s[n - 1] = f64::NEG_INFINITY; // a masked entry
            }
            let beta = if normaliser.learned_per_head().is_some() { rng.random_range(-2.0..2.0) } else { 0.0 };
            let mut a = vec![0.0; n];
            r.forward(&mut a, &s, beta);
            if normaliser.right_stochastic() {
                let sum: f64 = a.iter().sum();
                assert!((sum - 1.0).abs() < 1e-12, "{}: a row sums to {sum}", normaliser.name());
                assert!(a.iter().all(|&v| v >= 0.0), "{}: a negative weight", normaliser.name());
                if n > 2 {
                    assert_eq!(a[n - 1], 0.0, "{}: a masked entry has weight", normaliser.name());
                }
            }
            // L = Σ w_j a_j: backward from ∂L/∂a = w against finite differences of L(s)
            let w: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut d = w.clone();
            let d_beta = r.backward(&mut d, &a, &s, beta);
            let loss_at = |s: &[f64], beta: f64| {
                let mut a = vec![0.0; n];
                r.forward(&mut a, s, beta);
                a.iter().zip(&w).map(|(a, w)| a * w).sum::<f64>()
            };
            let loss = |s: &[f64]| loss_at(s, beta);
            let h = 1e-5;
            let numeric = (loss_at(&s, beta + h) - loss_at(&s, beta - h)) / (2.0 * h);
            let err = (d_beta - numeric).abs() / d_beta.abs().max(numeric.abs()).max(1e-3);
            assert!(err < 1e-7, "{} n {n} β: analytic {d_beta} numeric {numeric}", normaliser.name());
            for j in (0..n).filter(|&j| s[j].is_finite()) {
                let h = 1e-5;
                let (mut up, mut down) = (s.clone(), s.clone());
                up[j] += h;
                down[j] -= h;
                let numeric = (loss(&up) - loss(&down)) / (2.0 * h);
                let err = (d[j] - numeric).abs() / d[j].abs().max(numeric.abs()).max(1e-3);
                assert!(err < 1e-7, "{} n {n} entry {j}: analytic {} numeric {numeric}", normaliser.name(), d[j]);
            }
        }
    }
}
