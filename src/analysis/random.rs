//! Random models for probing a family without training: every parameter drawn at random,
//! position tables and the URPE gate C included (the training initialisation sets C = 1,
//! which makes a URPE model equal to its base family and would hide the gate).

use crate::config::ModelConfig;
use crate::error::Result;
use crate::nn::Model;
use crate::params::Init;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// A model of `config` whose every parameter is random, drawn from `seed` by role:
/// weights and position tables (initialised N(0, σ²) in training) N(0, 1/rows) for a tensor
/// of `rows` leading rows; biases (zeros in training) N(0, 0.1²); LayerNorm gains and C
/// (ones in training) uniform on [0.5, 1.5].
pub fn random_model(config: ModelConfig, seed: u64) -> Result<Model<f64>> {
    let mut model = Model::<f64>::zeros(config)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let layout = model.params.layout.clone();
    for spec in layout.specs() {
        let values = &mut model.params.data[spec.range()];
        match spec.init {
            Init::Normal(_) => {
                let normal = Normal::new(0.0, 1.0 / (spec.shape[0] as f64).sqrt()).expect("positive deviation");
                values.iter_mut().for_each(|v| *v = normal.sample(&mut rng));
            }
            Init::Zeros => {
                let normal = Normal::new(0.0, 0.1).expect("positive deviation");
                values.iter_mut().for_each(|v| *v = normal.sample(&mut rng));
            }
            Init::Ones => values.iter_mut().for_each(|v| *v = rng.random_range(0.5..1.5)),
        }
    }
    Ok(model)
}
