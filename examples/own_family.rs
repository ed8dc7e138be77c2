//! A position family of one's own, in one file: ALiBi with learned slopes, the scores plus
//! w_h·|j − i| with one learned w per head (`pos.learned_slope`, [heads, 1]). It is one
//! type implementing `PositionFamily`, its terms with forward and backward, and one
//! `register` call; configurations, experiments and the property tests then know it
//! (`tests/barrier.rs` and `tests/gradients.rs` include this file).
//!
//! `cargo run --release --example own_family` prints its classification and the spread of
//! the output rows of random models on a constant input, without and with the URPE gate.

use ndarray::{ArrayView2, ArrayViewMut2};
use std::sync::OnceLock;
use urpe::config::{InputKind, ModelSpec, OutputKind};
use urpe::family::{Family, FamilyDims, FamilyIds, Head, Placement, PositionFamily, Terms, WEIGHT, Work, register};
use urpe::float::Float;
use urpe::params::{ParamLayout, Params};

/// ALiBi with learned slopes: scores + w_h·|j − i|.
pub struct LearnedSlope;

impl PositionFamily for LearnedSlope {
    fn name(&self) -> &'static str {
        "learned-slope"
    }

    fn about(&self) -> &'static str {
        "ALiBi with learned slopes: scores + w_h·|j − i|"
    }

    fn placement(&self) -> Placement {
        Placement { inside_softmax_only: true, reason: "a term in the scores" }
    }

    fn score_term_is_bias(&self) -> bool {
        true
    }

    fn declare(&self, t: &mut ParamLayout, prefix: &str, dims: &FamilyDims) -> FamilyIds {
        FamilyIds::new(&[t.push(format!("{prefix}.learned_slope"), &[dims.heads, 1], WEIGHT)])
    }

    fn grad_len(&self, dims: &FamilyDims) -> usize {
        dims.heads
    }

    fn terms_f32(&self, _: &FamilyDims) -> Box<dyn Terms<f32>> {
        Box::new(SlopeTerms)
    }

    fn terms_f64(&self, _: &FamilyDims) -> Box<dyn Terms<f64>> {
        Box::new(SlopeTerms)
    }
}

/// S_ij += w_h·|j − i|; ∂L/∂w_h = Σ_ij ∂L/∂S_ij·|j − i|.
struct SlopeTerms;

impl<F: Float> Terms<F> for SlopeTerms {
    fn scores(&self, head: &Head<F>, mut s: ArrayViewMut2<F>, _work: &mut Work<F>) {
        let w = head.params.mat(head.ids.get(0))[[head.h, 0]];
        for ((i, j), s) in s.indexed_iter_mut() {
            *s += w * F::c(i.abs_diff(j) as f64);
        }
    }

    fn scores_backward(
        &self,
        head: &Head<F>,
        ds: ArrayView2<F>,
        _dq: ArrayViewMut2<F>,
        _dk: ArrayViewMut2<F>,
        grad: &mut [F],
        _work: &mut Work<F>,
    ) {
        for ((i, j), &d) in ds.indexed_iter() {
            grad[head.h] += d * F::c(i.abs_diff(j) as f64);
        }
    }

    fn fold_grads(&self, total: &[F], _p: &Params<F>, ids: &FamilyIds, _derived: ArrayView2<F>, grads: &mut Params<F>) {
        for (g, &t) in grads.slice_mut(ids.get(0)).iter_mut().zip(total) {
            *g += t;
        }
    }
}

/// The registered family (registered on first use).
pub fn family() -> Family {
    static FAMILY: OnceLock<Family> = OnceLock::new();
    *FAMILY.get_or_init(|| register(&LearnedSlope).expect("a valid family name"))
}

/// The largest difference between the output rows of a random model on a constant input.
fn row_spread(gate: bool, seed: u64) -> f64 {
    let io = (InputKind::Real { d_in: 4 }, OutputKind::Real { d_out: 4 });
    let mut spec = ModelSpec::new(family(), 2, 16, 4, 8, io.0, io.1);
    spec.urpe = gate;
    let config = spec.resolve().expect("a valid configuration");
    let mut model = urpe::nn::Model::<f64>::new(config, seed).expect("a model");
    // a gate of ones is the base family: draw C at random to see what it can do
    for layer in model.layout.layers.clone() {
        if let Some(c) = layer.attn.pos.gate {
            model
                .params
                .slice_mut(c)
                .iter_mut()
                .enumerate()
                .for_each(|(k, v)| *v = 1.0 + 0.5 * ((k * 7919 % 13) as f64 / 13.0));
        }
    }
    let x = ndarray::Array3::from_elem((1, 8, 4), 0.7);
    let input = urpe::nn::ModelInput::Real(x.view());
    let mut cache = model.cache_for(&input);
    model.forward(&input, &mut cache).expect("forward");
    let out = cache.output3();
    let mut spread = 0.0f64;
    for i in 1..8 {
        for o in 0..4 {
            spread = spread.max((out[[0, i, o]] - out[[0, 0, o]]).abs());
        }
    }
    spread
}

#[allow(dead_code)]
fn main() {
    let f = family();
    let placement = f.def().placement();
    println!("{}: {} ({})", f, f.def().about(), if placement.inside_softmax_only { "bound" } else { "free" });
    println!("  why: {}", placement.reason);
    println!("  output rows of a constant input differ by at most {:.1e} (random model, f64)", row_spread(false, 1));
    println!("  with the URPE gate (C drawn at random): {:.1e}", row_spread(true, 1));
}
