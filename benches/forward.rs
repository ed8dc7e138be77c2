//! Forward throughput (sequences per second) of the ndarray engine, f32, for the issue's
//! reference shape: n = 16, d = 32, 4 heads, 2 layers, FFN 4d, post-norm, batch 64, token
//! input (position-id), t5 and t5 + URPE. Reports the median of repeated timings.
//!
//! Run: `cargo bench --bench forward` (release build).

use std::time::Instant;
use urpe::config::{Family, InputKind, ModelSpec, OutputKind};
use urpe::nn::{Model, ModelInput};

fn model(urpe: bool) -> Model<f32> {
    let mut spec =
        ModelSpec::new(Family::T5, 2, 32, 4, 16, InputKind::Tokens { vocab: 16 }, OutputKind::Classes { classes: 16 });
    spec.urpe = urpe;
    let config = spec.resolve().expect("a valid benchmark configuration");
    Model::new(config, 0).expect("a valid model")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let (batch, n) = (64, 16);
    let tokens = ndarray::Array2::from_shape_fn((batch, n), |(b, i)| (b * 7 + i * 3) % 16);
    println!("forward pass, f32, batch {batch}, n {n}, d 32, 4 heads, 2 layers, FFN 128, post-norm");
    println!("{:<6} {:>14} {:>16}", "model", "median ms", "sequences/s");
    for (name, urpe) in [("t5", false), ("urpe", true)] {
        let m = model(urpe);
        let input = ModelInput::Tokens(tokens.view());
        let mut cache = m.cache_for(&input);
        for _ in 0..20 {
            m.forward(&input, &mut cache).expect("forward");
        }
        let times: Vec<f64> = (0..31)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..10 {
                    m.forward(&input, &mut cache).expect("forward");
                }
                start.elapsed().as_secs_f64() / 10.0
            })
            .collect();
        let t = median(times);
        println!("{name:<6} {:>14.3} {:>16.0}", t * 1e3, batch as f64 / t);
    }
}
