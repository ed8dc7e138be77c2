//! `urpe classify`: every family × normaliser × gate × BOS × mask setting (the mask always on
//! for stick-breaking and for cope), the theory's verdict
//! against the positional rank of random models. The command covers every setting with no
//! disagreement; the check is not vacuous: a family whose placement lies (it claims to act
//! inside the softmax only but adds a position term to the values) is caught.

#[path = "support/refusal.rs"]
mod refusal;
use ndarray::{ArrayView2, ArrayViewMut2};
use refusal::train_refused;
use std::process::Command;
use urpe::analysis::classify::{Setting, classify, settings};
use urpe::config::check_combination;
use urpe::family::{Family, FamilyDims, Head, Placement, PositionFamily, Terms, Work, register};
use urpe::float::Float;
use urpe::normaliser::{self, Attention};

#[test]
fn the_command_covers_every_setting_and_agrees_with_the_theory() {
    let o = Command::new(env!("CARGO_BIN_EXE_urpe")).args(["classify", "--json"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    // every family × normaliser that takes it × gate off/on × BOS off/on × mask off/on, the mask always on
    // for a causal-only normaliser or family
    let masks = |f: Family, n: Attention| if n.0.causal_only() || f.causal_only() { 1 } else { 2 };
    let pairs = Family::ALL.into_iter().flat_map(|f| normaliser::ALL.map(Attention).map(|n| (f, n)));
    let expected: usize =
        pairs.filter(|&(f, n)| check_combination(f, n).is_ok()).map(|(f, n)| 2 * 2 * masks(f, n)).sum();
    assert_eq!(rows.len(), expected);
    let refused = ["rope", "xpos", "shaw-key", "xl", "cope"];
    assert!(
        rows.iter()
            .filter(|r| r["attention"] == "differential")
            .all(|r| !refused.contains(&r["family"].as_str().unwrap()))
    );
    for key in ["family", "attention", "gate", "bos", "causal", "theory", "measured", "reason"] {
        assert!(rows.iter().all(|r| r.get(key).is_some()), "a row without `{key}`");
    }
    assert!(rows.iter().all(|r| r["theory"] == r["measured"]));
    let bound_with = |family: &str, attention: &str, causal: bool, bos: bool| {
        rows.iter().any(|r| {
            r["family"] == family
                && r["attention"] == attention
                && r["causal"] == causal
                && r["gate"] == false
                && r["bos"] == bos
                && r["theory"] == "bound"
        })
    };
    let bound = |family: &str, attention: &str, causal: bool| bound_with(family, attention, causal, false);
    // Proposition 1 with its classic members, and the normalisers that escape it
    assert!(bound("t5", "softmax", false) && bound("rope", "softmax", true) && bound("alibi", "softmax", false));
    assert!(!bound("t5", "sigmoid", false) && !bound("rope", "relu", false) && !bound("nope", "sigmoid", true));
    assert!(bound("nope", "sigmoid", false) && !bound("shaw-value", "softmax", false));
    assert!(!bound("nope", "stick-breaking", true), "stick-breaking rows grow with the keys they see");
    // differential rows all sum to 1 − λ: bound like softmax, causal or not; free by the values
    assert!(bound("t5", "differential", false) && bound("alibi", "differential", true));
    assert!(bound("kerple", "differential", true) && bound("nope", "differential", true));
    assert!(!bound("shaw-value", "differential", false) && !bound("ape-sin", "differential", true));
    assert!(rows.iter().filter(|r| r["gate"] == true).all(|r| r["theory"] == "free"));
    // a BOS row: only nope without the mask (and without the gate) keeps equal rows, with
    // every normaliser; a family that carries position, or the causal mask, separates them
    assert!(rows.iter().any(|r| r["bos"] == true) && rows.iter().any(|r| r["bos"] == false));
    for r in rows.iter().filter(|r| r["bos"] == true) {
        let expected = r["family"] == "nope" && r["causal"] == false && r["gate"] == false;
        assert_eq!(r["theory"] == "bound", expected, "{r}");
    }
    assert!(bound_with("nope", "softmax", false, true) && bound_with("nope", "sigmoid", false, true));
    assert!(!bound_with("nope", "softmax", true, true), "causal noPE sees the BOS among i keys in row i");
    assert!(!bound_with("t5", "softmax", false, true) && !bound_with("rope", "softmax", true, true));
    assert!(bound("t5", "softmax", false) && bound("nope", "softmax", true), "the same settings without the BOS");
    // cope: causal only; bound under softmax, free where rows need not sum to one
    assert!(bound("cope", "softmax", true) && !bound("cope", "sigmoid", true) && !bound("cope", "relu", true));
    assert!(rows.iter().filter(|r| r["family"] == "cope").all(|r| r["causal"] == true));
}

/// A family that claims to act inside the softmax only, but adds 0.1·i to every entry of
/// row i of the attention output (as a value term would).
struct LyingValue;

impl PositionFamily for LyingValue {
    fn name(&self) -> &'static str {
        "lying-value"
    }

    fn about(&self) -> &'static str {
        "adds 0.1·i to row i of the attention output, and says it does not"
    }

    fn placement(&self) -> Placement {
        Placement { inside_softmax_only: true, reason: "(a lie)" }
    }

    fn terms_f32(&self, _: &FamilyDims) -> Box<dyn Terms<f32>> {
        Box::new(LyingTerms)
    }

    fn terms_f64(&self, _: &FamilyDims) -> Box<dyn Terms<f64>> {
        Box::new(LyingTerms)
    }
}

struct LyingTerms;

impl<F: Float> Terms<F> for LyingTerms {
    fn values(&self, _head: &Head<F>, _mix: ArrayView2<F>, mut out: ArrayViewMut2<F>, _work: &mut Work<F>) {
        for (i, mut row) in out.rows_mut().into_iter().enumerate() {
            row.iter_mut().for_each(|v| *v += F::c(0.1 * i as f64));
        }
    }
}

#[test]
fn a_family_whose_placement_lies_is_caught() {
    let lying = register(&LyingValue).unwrap();
    assert!(settings().iter().any(|s| s.family == lying), "registered families are classified");
    let row = classify(
        Setting { family: lying, attention: Attention::SOFTMAX, gate: false, bos: false, causal: false },
        2,
        1,
    )
    .unwrap();
    assert_eq!((row.theory, row.measured), ("bound", "free"), "{row:?}");
    assert!(!row.agrees());
    // and an honest family is not
    let honest = Setting { family: Family::T5, attention: Attention::SOFTMAX, gate: false, bos: false, causal: true };
    assert!(classify(honest, 2, 1).unwrap().agrees());
}

/// Stick-breaking without the causal mask is a configuration error naming both fields:
/// exit 2, nothing written.
#[test]
fn a_causal_only_normaliser_without_the_mask_is_refused() {
    let err = train_refused(&["--family", "t5", "--attention", "stick-breaking"]);
    assert!(err.contains("`attention` = stick-breaking") && err.contains("causal"), "{err}");
}

/// cope without the causal mask is a configuration error naming `causal` and the family:
/// exit 2, nothing written.
#[test]
fn a_causal_only_family_without_the_mask_is_refused() {
    let err = train_refused(&["--family", "cope"]);
    assert!(err.contains("`causal` = false") && err.contains("`cope` is causal only"), "{err}");
}
