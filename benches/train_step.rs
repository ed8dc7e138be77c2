//! Training-step benchmark: median milliseconds per step (forward + backward + Adam) and
//! achieved GFLOP/s of the ndarray engine, f32, position-id task, post-norm, FFN 4d,
//! t5 and t5 + URPE, for the three shapes:
//! A: n 16, d 32, 4 heads, 2 layers, batch 64; B: n 32, d 64, 4 heads, 4 layers, batch 32;
//! C: n 128, d 64, 4 heads, 3 layers, batch 32.
//!
//! Then, if `python3 -c "import torch"` works, runs `scripts/torch_bench.py` with the same
//! shapes and thread count and prints the ratio. Threads: `URPE_BENCH_THREADS` (default 2).
//!
//! Run: `cargo bench --bench train_step`.

use std::process::Command;
use std::time::Instant;
use urpe::config::{Family, ModelSpec};
use urpe::optim::OptimConfig;
use urpe::theory::{Target, TargetKind};
use urpe::train::{EvalConfig, TrainConfig, Trainer};

/// (name, n, d, heads, layers, batch)
const SHAPES: [(&str, usize, usize, usize, usize, usize); 3] =
    [("A", 16, 32, 4, 2, 64), ("B", 32, 64, 4, 4, 32), ("C", 128, 64, 4, 3, 32)];
const VOCAB: usize = 16;

/// Matrix-multiply FLOPs of one step: forward (projections, scores, mixing, FFN, head)
/// times 3 (backward costs two forward passes).
fn step_flops(n: usize, d: usize, layers: usize, batch: usize) -> f64 {
    let rows = (batch * n) as f64;
    let (n, d) = (n as f64, d as f64);
    let per_layer = 8.0 * rows * d * d + 4.0 * rows * n * d + 16.0 * rows * d * d;
    3.0 * (layers as f64 * per_layer + 2.0 * rows * d * n)
}

fn trainer(n: usize, d: usize, heads: usize, layers: usize, batch: usize, urpe: bool) -> Trainer {
    let target = Target::new(TargetKind::PositionId, n, d, VOCAB);
    let mut spec = ModelSpec::new(Family::T5, layers, d, heads, n, target.input_kind(), target.output_kind());
    spec.urpe = urpe;
    let config = TrainConfig {
        target: TargetKind::PositionId,
        n,
        d,
        vocab: VOCAB,
        model: spec.resolve().expect("a valid benchmark model"),
        steps: 1_000_000,
        batch,
        constant_fraction: 0.5,
        optim: OptimConfig::default(),
        init_seed: 0,
        data_seed: 0,
        eval: EvalConfig { every: 0, sequences: 1, seed: 0 },
    };
    Trainer::new(config).expect("a valid benchmark run")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let threads: usize = std::env::var("URPE_BENCH_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a pool");
    println!("urpe training step, f32, {threads} threads, position-id, post-norm, FFN 4d (median of 15 timings)");
    println!("{:<6} {:<6} {:>10} {:>10}", "shape", "model", "ms/step", "GFLOP/s");
    let mut ours = Vec::new();
    for (name, n, d, heads, layers, batch) in SHAPES {
        for urpe in [false, true] {
            let mut t = trainer(n, d, heads, layers, batch, urpe);
            let reps = if n >= 128 { 3 } else { 10 };
            let times: Vec<f64> = pool.install(|| {
                for _ in 0..reps {
                    t.step().expect("a step");
                }
                (0..15)
                    .map(|_| {
                        let start = Instant::now();
                        for _ in 0..reps {
                            t.step().expect("a step");
                        }
                        start.elapsed().as_secs_f64() / reps as f64
                    })
                    .collect()
            });
            let ms = median(times) * 1e3;
            let gflops = step_flops(n, d, layers, batch) / (ms * 1e-3) / 1e9;
            let label = if urpe { "urpe" } else { "t5" };
            println!("{name:<6} {label:<6} {ms:>10.3} {gflops:>10.1}");
            ours.push((name, label, ms));
        }
    }
    let torch = Command::new("python3").args(["-c", "import torch"]).status().is_ok_and(|s| s.success());
    if !torch {
        println!("(PyTorch not found: `pip install torch` to compare with scripts/torch_bench.py)");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/torch_bench.py");
    let output =
        Command::new("python3").args([script, "--threads", &threads.to_string()]).output().expect("python3 runs");
    let text = String::from_utf8_lossy(&output.stdout);
    print!("{text}");
    println!("{:<6} {:<6} {:>10} {:>10} {:>8}", "shape", "model", "urpe ms", "torch ms", "ratio");
    for line in text.lines().filter(|l| l.starts_with("RESULT")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (shape, model, torch_ms) = (f[1], f[2], f[3].parse::<f64>().unwrap_or(f64::NAN));
        if let Some((_, _, ms)) = ours.iter().find(|(s, m, _)| *s == shape && *m == model) {
            println!("{shape:<6} {model:<6} {ms:>10.3} {torch_ms:>10.3} {:>7.2}x", torch_ms / ms);
        }
    }
}
