//! The exact theory: closed-form floors against their definitions, and the URPE witness.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use urpe::theory::targets::{mse, position_variance};
use urpe::theory::witness::{t5_twin, witness_model};
use urpe::theory::{Floor, FloorEstimate, Outputs, Target, TargetKind};

fn target(kind: TargetKind, n: usize) -> Target {
    Target::new(kind, n, 5, 7)
}

#[test]
fn position_shift_floor_at_16_is_255_over_3072() {
    assert_eq!(position_variance(16), 255.0 / 3072.0);
    assert_eq!(target(TargetKind::PositionShift, 16).floor(), Floor::Mse { mse: 0.0830078125 });
}

/// Closed form against the definition (best equal-row approximation averaged over sampled
/// constant inputs). Targets whose floor does not depend on x agree to f64 rounding
/// (1e-13 relative; labels exactly); the others within 4 standard errors.
#[test]
fn closed_form_floors_match_their_definition() {
    for kind in TargetKind::ALL {
        for n in [1, 2, 3, 7, 16, 33] {
            let t = target(kind, n);
            let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
            match (t.floor(), t.floor_from_definition(2000, &mut rng)) {
                (Floor::Mse { mse }, FloorEstimate::Mse { mse: est }) => {
                    let depends_on_x = matches!(kind, TargetKind::PositionScale | TargetKind::PrefixSum);
                    if depends_on_x && n > 1 {
                        assert!(est.std_error > 0.0, "{kind} n={n}: a positive standard error");
                        assert!(
                            (est.mean - mse).abs() <= 4.0 * est.std_error,
                            "{kind} n={n}: closed {mse} vs definition {} ± {}",
                            est.mean,
                            est.std_error
                        );
                    } else {
                        assert!(
                            (est.mean - mse).abs() <= 1e-13 * mse.max(1e-17),
                            "{kind} n={n}: closed {mse} vs definition {}",
                            est.mean
                        );
                    }
                }
                (
                    Floor::Classes { accuracy, cross_entropy },
                    FloorEstimate::Classes { accuracy: a, cross_entropy: c },
                ) => {
                    assert_eq!(a.mean, accuracy, "{kind} n={n}: accuracy ceiling");
                    assert!((c.mean - cross_entropy).abs() <= 1e-15, "{kind} n={n}: {} vs {cross_entropy}", c.mean);
                    assert_eq!(a.std_error, 0.0);
                }
                (closed, est) => panic!("{kind}: kinds differ: {closed:?} vs {est:?}"),
            }
        }
    }
}

#[test]
fn class_floors_are_the_papers() {
    let pi = target(TargetKind::PositionId, 128).floor();
    assert_eq!(pi, Floor::Classes { accuracy: 1.0 / 128.0, cross_entropy: (128f64).ln() });
    let Floor::Classes { accuracy, cross_entropy } = target(TargetKind::EvenToken, 128).floor() else {
        panic!("class floor")
    };
    assert_eq!(accuracy, 0.5);
    assert!((cross_entropy - 2f64.ln()).abs() < 1e-15);
}

fn witness_errors(n: usize, d: usize, heads: usize) -> (f64, f64, f64) {
    let model = witness_model::<f32>(n, d, heads).unwrap();
    let twin = t5_twin(&model);
    let t = Target::new(TargetKind::PositionShift, n, d, 0);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let s = t.sample::<f32, _>(64, 0.5, &mut rng);
    let Outputs::Real(y) = &s.targets else { unreachable!() };
    let pred = model.predict(&s.inputs.view()).unwrap();
    let twin_pred = twin.predict(&s.inputs.view()).unwrap();
    let constant = s.constant.clone();
    let general: Vec<bool> = constant.iter().map(|c| !c).collect();
    (
        mse(pred.view(), y.view(), Some(&constant)),
        mse(pred.view(), y.view(), Some(&general)),
        mse(twin_pred.view(), y.view(), Some(&constant)),
    )
}

#[test]
fn witness_is_exact_and_its_t5_twin_is_at_the_floor() {
    for (n, d, heads) in [(16, 8, 2), (1, 1, 1), (5, 6, 3), (32, 4, 4)] {
        let (constant, general, twin) = witness_errors(n, d, heads);
        let floor = position_variance(n);
        assert!(constant <= 1e-6 && general <= 1e-6, "n={n} d={d}: {constant} {general}");
        assert!(twin >= floor * (1.0 - 1e-6), "n={n} d={d}: twin {twin} < floor {floor}");
    }
}
