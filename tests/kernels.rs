//! The fast f32 kernels against libm: eˣ within 2 ulp, erf within 5e-7 absolute, over
//! dense grids of their working ranges.

use urpe::Float;

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
