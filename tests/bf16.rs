//! bf16 mixed precision of the candle engine (feature `candle`), on the CPU: the fused
//! kernels load bf16, compute in f32 and round once (what their CUDA versions do, which
//! `urpe check-device` compares against these); whole models stay within the stated
//! bf16 tolerance of the f32 engine for every family, and visibly differ from it (the
//! bf16 path is really taken); a bf16 run trains; precisions that do not apply are input
//! errors.
#![cfg(feature = "candle")]

use candle_core::{DType, Device, Tensor};
use std::sync::atomic::AtomicBool;
use urpe::candle::check::{compare, random_case_of};
use urpe::candle::fused::{
    AdamUpdate, adam_update, bias_activation, bias_activation_backward, layer_norm, layer_norm_backward, mul_rows,
    softmax, softmax_backward, split_heads,
};
use urpe::config::{Activation, Family, ModelSpec};
use urpe::engine::BF16_TOLERANCE;
use urpe::engine::{Backend, Precision};
use urpe::normaliser::Attention;
use urpe::optim::OptimConfig;
use urpe::theory::{Target, TargetKind};
use urpe::train::{EvalConfig, TrainConfig, Trainer};

fn random(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let values: Vec<f32> =
        (0..n).map(|i| (((i as u64 * 7919 + seed * 104_729) % 2001) as f32 / 1000.0) - 1.0).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap().to_dtype(DType::BF16).unwrap()
}

/// Each fused op on bf16 operands equals the f32 op on the same (widened) operands, rounded
/// to bf16 once: bit for bit.
#[test]
fn fused_bf16_ops_are_the_f32_ops_rounded_once() {
    type Op = Box<dyn Fn(&[Tensor]) -> candle_core::Result<Tensor>>;
    let (x, v, g) = (random(&[6, 10], 1), random(&[10], 2), random(&[6, 10], 3));
    let (s, bias) = (random(&[8, 10], 4), random(&[2, 10], 5));
    let cases: Vec<(&str, Op, Vec<Tensor>)> = vec![
        ("mul_rows", Box::new(|t| mul_rows(&t[0], &t[1])), vec![x.clone(), v.clone()]),
        ("softmax", Box::new(|t| softmax(&t[0], &t[1], 0.7)), vec![s.clone(), bias.clone()]),
        ("softmax_backward", Box::new(|t| softmax_backward(&t[0], &t[1], 0.7)), vec![s.clone(), s.clone()]),
        ("layer_norm", Box::new(|t| layer_norm(&t[0], &t[1], &t[1])), vec![x.clone(), v.clone()]),
        (
            "layer_norm_backward",
            Box::new(|t| layer_norm_backward(&t[0], &t[1], &t[2])),
            vec![x.clone(), v.clone(), g.clone()],
        ),
        ("gelu", Box::new(|t| bias_activation(&t[0], &t[1], Activation::Gelu)), vec![x.clone(), v.clone()]),
        (
            "gelu backward",
            Box::new(|t| bias_activation_backward(&t[0], &t[1], &t[2], Activation::Gelu)),
            vec![x.clone(), v.clone(), g.clone()],
        ),
        ("split_heads", Box::new(|t| split_heads(&t[0], &t[1], 3, 5, 1)), vec![x.clone(), v.clone()]),
    ];
    for (name, op, inputs) in cases {
        let ours = op(&inputs).unwrap();
        assert_eq!(ours.dtype(), DType::BF16, "{name}");
        let wide: Vec<Tensor> = inputs.iter().map(|t| t.to_dtype(DType::F32).unwrap()).collect();
        let want = op(&wide).unwrap().to_dtype(DType::BF16).unwrap();
        let bits = |t: &Tensor| t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(bits(&ours), bits(&want), "{name}");
    }
}

/// Adam only ever sees f32 (or f64) gradients and weights: a bf16 operand is an error
/// naming the op, the operand and what it takes.
#[test]
fn adam_refuses_bf16() {
    let t = random(&[4], 1);
    let mv = random(&[2, 4], 2);
    let update = AdamUpdate {
        clip: 1.0,
        wd: 0.0,
        decay: 1.0,
        decoupled: false,
        beta1: 0.9,
        beta2: 0.999,
        step_size: 1e-3,
        bias2_sqrt: 1.0,
        eps: 1e-8,
    };
    let e = adam_update(&t, &t, &mv, update).unwrap_err().to_string();
    assert!(e.contains("adam_update") && e.contains("theta") && e.contains("f32, f64"), "{e}");
}

/// Whole models in bf16 mixed precision against the f32 ndarray engine, every family, gate
/// on and off, two random models each (heads of width 8 or 16, as `urpe check-device`):
/// within the stated norm-wise tolerance, and not vacuous: at least 1e-4 off somewhere
/// (an f32 computation would be about 1e-7 off).
#[test]
fn bf16_models_stay_within_the_stated_tolerance_of_f32() {
    let mut failures = Vec::new();
    for family in Family::all() {
        for urpe in [false, true] {
            for seed in 0..2 {
                let case =
                    random_case_of(family, urpe, 100 * seed + family.index() as u64, 0.3, [8, 16], Attention::SOFTMAX)
                        .unwrap();
                let (gap, at) = compare::<f32>(&case, &Device::Cpu, DType::F32, DType::BF16, 1.0).unwrap();
                if !(1e-4..=BF16_TOLERANCE).contains(&gap) {
                    failures.push(format!("{family} urpe {urpe} seed {seed}: {at}: {gap:e}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A bf16 run on the CPU learns position-id (loss falls below a fifth of its start) and its
/// record names the engine.
#[test]
fn a_bf16_run_trains_and_says_so() {
    let target = Target::new(TargetKind::PositionId, 8, 0, 8);
    let mut spec = ModelSpec::new(Family::T5, 2, 32, 4, 8, target.input_kind(), target.output_kind());
    spec.urpe = true;
    let config = TrainConfig {
        target: TargetKind::PositionId,
        n: 8,
        d: 0,
        vocab: 8,
        model: spec.resolve().unwrap(),
        steps: 200,
        batch: 16,
        constant_fraction: 0.0,
        optim: OptimConfig { lr: 3e-3, ..OptimConfig::default() },
        init_seed: 1,
        data_seed: 2,
        eval: EvalConfig { every: 0, sequences: 32, seed: 3 },
    };
    let backend = Backend::Candle { device: "cpu".into(), precision: Precision::Bf16 };
    let record = Trainer::with_backend(config, &backend).unwrap().run(&AtomicBool::new(false), |_| {}).unwrap();
    let (first, last) = (record.curve.first().unwrap().loss, record.curve.last().unwrap().loss);
    assert!(last < first / 5.0, "loss {first} → {last}");
    assert_eq!(record.engine.as_deref(), Some("candle cpu bf16"));
}

/// Precisions that do not apply are input errors naming the flag and the way out.
#[test]
fn precisions_that_do_not_apply_are_input_errors() {
    let e = Backend::parse("ndarray", "cpu", Precision::Bf16).unwrap_err().to_string();
    assert!(e.contains("--precision bf16") && e.contains("--backend candle"), "{e}");
    if !cfg!(feature = "cuda") {
        let e = Backend::parse("candle", "cpu", Precision::Tf32).unwrap_err().to_string();
        assert!(e.contains("--precision tf32") && e.contains("CUDA"), "{e}");
    }
    assert_eq!(Precision::parse("bf16").unwrap(), Precision::Bf16);
    assert!(Precision::parse("fp16").unwrap_err().to_string().contains("fp32, tf32 or bf16"));
    assert!(Backend::parse("candle", "cpu", Precision::Bf16).is_ok());
}
