//! The fast f32 kernels against libm: eˣ within 2 ulp, erf within 5e-7 absolute, over
//! dense grids of their working ranges. The matrix products against naive loops in f64,
//! on every layout the engine hands them, and the token-wise product bit-identical
//! whether it is split over threads or not.

use ndarray::{Array2, ArrayView2, s};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use urpe::Float;
use urpe::gemm::{matmul, small_matmul};

#[test]
fn fast_exp_is_within_two_ulp_and_vanishes_below_the_range() {
    let mut worst = 0.0f64;
    let mut x = -87.0f32;
    while x < 88.0 {
        let (fast, exact) = (x.exp_fast() as f64, (x as f64).exp());
        worst = worst.max(((fast - exact) / exact).abs());
        x += 0.000_97;
    }
    assert!(worst <= 2.0 * f32::EPSILON as f64, "worst relative error {worst:e}");
    assert_eq!(f32::NEG_INFINITY.exp_fast(), 0.0);
    assert_eq!((-100.0f32).exp_fast(), 0.0);
    assert_eq!(0.0f32.exp_fast(), 1.0);
}

#[test]
fn fast_erf_is_within_5e_7() {
    let mut worst = 0.0f64;
    let mut x = -6.0f32;
    while x < 6.0 {
        worst = worst.max((x.erf_fast() as f64 - libm::erf(x as f64)).abs());
        x += 0.000_13;
    }
    assert!(worst <= 5e-7, "worst absolute error {worst:e}");
}

/// Naive C = α·A·B + β·C in f64 (β = 0 ignores C).
fn naive(alpha: f64, a: ArrayView2<f64>, b: ArrayView2<f64>, beta: f64, c: &Array2<f64>) -> Array2<f64> {
    Array2::from_shape_fn(c.dim(), |(i, j)| {
        let sum: f64 = (0..a.ncols()).map(|p| a[[i, p]] * b[[p, j]]).sum();
        alpha * sum + if beta == 0.0 { 0.0 } else { beta * c[[i, j]] }
    })
}

fn random(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0..1.0))
}

/// small_matmul on the per-head layouts of attention (a head's columns of a wider matrix,
/// transposed operands, C a column block), β = 0 over NaN and β = 1, in f64 (1e-13
/// relative to the largest |C|) and f32 (1e-5).
#[test]
fn small_matmul_matches_naive_loops_on_every_layout() {
    // (5, 3, 8), (6, 16, 24), (16, 8, 16), (7, 0, 8): the register-tiled path where the
    // layout allows it (rows of B contiguous, n a multiple of 8, a partial last row tile)
    for (m, k, n) in
        [(1, 1, 1), (5, 3, 7), (5, 3, 8), (6, 16, 24), (16, 8, 16), (33, 16, 33), (128, 16, 128), (7, 0, 4), (7, 0, 8)]
    {
        for (transpose_a, transpose_b, beta) in
            [(false, true, 0.0), (false, false, 0.0), (true, false, 0.0), (false, false, 1.0), (true, true, 0.5)]
        {
            let seed = (m * 1000 + k * 10 + n) as u64;
            // operands as column blocks of wider matrices, transposed where asked
            let wide_a = if transpose_a { random(k, m + 3, seed) } else { random(m, k + 3, seed) };
            let wide_b = if transpose_b { random(n, k + 2, seed + 1) } else { random(k, n + 2, seed + 1) };
            let a = if transpose_a {
                wide_a.slice(s![.., 1..m + 1]).reversed_axes()
            } else {
                wide_a.slice(s![.., 1..k + 1])
            };
            let b = if transpose_b {
                wide_b.slice(s![.., 2..k + 2]).reversed_axes()
            } else {
                wide_b.slice(s![.., 2..n + 2])
            };
            let mut wide_c = random(m, n + 4, seed + 2);
            if beta == 0.0 {
                wide_c.fill(f64::NAN);
            }
            let c0 = wide_c.slice(s![.., 3..n + 3]).to_owned();
            let expected = naive(0.7, a, b, beta, &c0);
            let scale = expected.iter().fold(1e-300f64, |s, v| s.max(v.abs()));
            let mut c64 = wide_c.clone();
            small_matmul(0.7, a, b, beta, c64.slice_mut(s![.., 3..n + 3]));
            let gap = (&c64.slice(s![.., 3..n + 3]) - &expected).iter().fold(0.0f64, |g, v| g.max(v.abs())) / scale;
            assert!(gap <= 1e-13, "f64 {m}×{k}·{k}×{n} ta={transpose_a} tb={transpose_b} β={beta}: {gap:e}");
            assert!(
                c64.slice(s![.., ..3]).iter().zip(wide_c.slice(s![.., ..3])).all(|(x, y)| x.to_bits() == y.to_bits()),
                "wrote outside C"
            );
            let (a32, b32) = (a.mapv(|v| v as f32), b.mapv(|v| v as f32));
            let mut c32 = c0.mapv(|v| v as f32);
            small_matmul(0.7f32, a32.view(), b32.view(), beta as f32, c32.view_mut());
            let gap = c32.iter().zip(&expected).fold(0.0f64, |g, (&x, &y)| g.max((x as f64 - y).abs())) / scale;
            assert!(gap <= 1e-5, "f32 {m}×{k}·{k}×{n} ta={transpose_a} tb={transpose_b} β={beta}: {gap:e}");
        }
    }
}

/// The token-wise product split over two threads (rows of C in tasks) equals the product on
/// one thread bit for bit, at a size above the split threshold, and both match naive loops.
#[test]
fn matmul_is_bit_identical_split_or_not() {
    let (a, b) = (random(512, 96, 1).mapv(|v| v as f32), random(96, 160, 2).mapv(|v| v as f32));
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut c = Array2::<f32>::from_elem((512, 160), f32::NAN);
        pool.install(|| matmul(1.0, a.view(), b.view(), 0.0, c.view_mut()));
        c
    };
    let (one, two) = (run(1), run(2));
    assert!(one.iter().zip(&two).all(|(x, y)| x.to_bits() == y.to_bits()), "1 and 2 threads differ");
    let expected =
        naive(1.0, a.mapv(|v| v as f64).view(), b.mapv(|v| v as f64).view(), 0.0, &Array2::zeros((512, 160)));
    let gap = one.iter().zip(&expected).fold(0.0f64, |g, (&x, &y)| g.max((x as f64 - y).abs()));
    assert!(gap <= 1e-4, "{gap:e}");
}
