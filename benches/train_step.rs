//! Training-step benchmark: median milliseconds per step (forward + backward + Adam) and
//! achieved GFLOP/s of the ndarray engine, f32, position-id task, post-norm, FFN 4d,
//! t5 and t5 + URPE, for the shapes A, B, C of [`urpe::bench::SHAPES`].
//!
//! Then, if `python3 -c "import torch"` works, runs `scripts/torch_bench.py` with the same
//! shapes and thread count and prints the ratio. Threads: `URPE_BENCH_THREADS` (default 2).
//!
//! Run: `cargo bench --bench train_step`.

use std::process::Command;
use urpe::bench::{SHAPES, time_steps};
use urpe::engine::Backend;

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
