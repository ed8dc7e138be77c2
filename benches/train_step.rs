//! Training-step benchmark: median milliseconds per step (forward + backward + Adam) and
//! achieved GFLOP/s of the ndarray engine, f32, position-id task, post-norm, FFN 4d,
//! t5 and t5 + URPE, for the shapes A, B, C of [`urpe::bench::SHAPES`].
//!
//! Then the rate of a 1024³ f32 product through the engine's own GEMM path
//! ([`urpe::gemm::matmul`], the same pool) and each shape's share of it. Then, if
//! `python3 -c "import torch"` works, runs `scripts/torch_bench.py` with the same
//! shapes and thread count and prints the ratio. Threads: `URPE_BENCH_THREADS` (default 2).
//!
//! Run: `cargo bench --bench train_step`.

use ndarray::Array2;
use std::process::Command;
use std::time::Instant;
use urpe::bench::{SHAPES, time_steps};
use urpe::engine::Backend;
use urpe::gemm::matmul;

fn main() {
    let threads: usize = std::env::var("URPE_BENCH_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a pool");
    println!("urpe training step, f32, {threads} threads, position-id, post-norm, FFN 4d (median of 15 timings)");
    println!("{:<6} {:<6} {:>10} {:>10}", "shape", "model", "ms/step", "GFLOP/s");
    let mut ours = Vec::new();
    for shape in SHAPES.iter().filter(|s| s.name != "paper") {
        for urpe in [false, true] {
            let reps = if shape.n >= 128 { 3 } else { 10 };
            let config = shape.run(urpe).expect("a valid benchmark run");
            let ms = pool.install(|| time_steps(config, &Backend::Ndarray, reps, 15)).expect("steps run");
            let gflops = shape.step_flops() / (ms * 1e-3) / 1e9;
            let label = if urpe { "urpe" } else { "t5" };
            println!("{:<6} {label:<6} {ms:>10.3} {gflops:>10.1}", shape.name);
            ours.push((shape.name, label, ms));
        }
    }
    let sgemm = pool.install(sgemm_gflops);
    println!("sgemm 1024³ through urpe::gemm::matmul: {sgemm:.1} GFLOP/s (median of 7)");
    for shape in SHAPES.iter().filter(|s| s.name != "paper") {
        for (name, label, ms) in ours.iter().filter(|(n, _, _)| *n == shape.name) {
            let share = shape.step_flops() / (ms * 1e-3) / 1e9 / sgemm;
            println!("{name:<6} {label:<6} {:>9.1}% of sgemm", 100.0 * share);
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

/// Median GFLOP/s of C = A·B, 1024 × 1024 × 1024 in f32, through the engine's GEMM.
fn sgemm_gflops() -> f64 {
    let size = 1024;
    let a = Array2::from_shape_fn((size, size), |(i, j)| ((i * 7 + j * 3) % 13) as f32 / 13.0);
    let b = Array2::from_shape_fn((size, size), |(i, j)| ((i * 5 + j * 11) % 17) as f32 / 17.0);
    let mut c = Array2::<f32>::zeros((size, size));
    let mut times: Vec<f64> = (0..8)
        .map(|_| {
            let start = Instant::now();
            matmul(1.0, a.view(), b.view(), 0.0, c.view_mut());
            start.elapsed().as_secs_f64()
        })
        .skip(1)
        .collect();
    times.sort_by(f64::total_cmp);
    2.0 * (size as f64).powi(3) / times[times.len() / 2] / 1e9
}
