//! Runs training steps of a benchmark shape for profiling: `cargo run --release --example
//! profile_step -- C 20` (shape A, B or C; steps).

use urpe::config::{Family, ModelSpec};
use urpe::optim::OptimConfig;
use urpe::theory::{Target, TargetKind};
use urpe::train::{EvalConfig, TrainConfig, Trainer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (n, d, heads, layers, batch) = match args.get(1).map(String::as_str) {
        Some("A") => (16, 32, 4, 2, 64),
        Some("B") => (32, 64, 4, 4, 32),
        _ => (128, 64, 4, 3, 32),
    };
    let steps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let target = Target::new(TargetKind::PositionId, n, d, 16);
    let mut spec = ModelSpec::new(Family::T5, layers, d, heads, n, target.input_kind(), target.output_kind());
    spec.urpe = true;
    let config = TrainConfig {
        target: TargetKind::PositionId,
        n,
        d,
        vocab: 16,
        model: spec.resolve().expect("valid"),
        steps,
        batch,
        constant_fraction: 0.5,
        optim: OptimConfig::default(),
        init_seed: 0,
        data_seed: 0,
        eval: EvalConfig { every: 0, sequences: 1, seed: 0 },
    };
    let threads = std::env::var("THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a pool");
    pool.install(|| {
        let mut t = Trainer::new(config).expect("valid");
        let start = std::time::Instant::now();
        for _ in 0..steps {
            t.step().expect("step");
        }
        println!("{:.3} ms/step", start.elapsed().as_secs_f64() * 1e3 / steps as f64);
    });
}
