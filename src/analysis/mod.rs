//! Linear-algebra probes: where position information lives in a model.
//!
//! - [`stochastic`]: is each head's mixing matrix right-stochastic (row sums, the
//!   eigenvalue nearest 1, ‖M·1 − 1‖∞)? With the URPE gate, the row sums of A ⊙ C.
//! - [`rank`]: positional rank per stage, from the singular values of the row-centred
//!   hidden states of many constant inputs (0 for every in-softmax family).
//! - [`spectrum`]: singular values of the Toeplitz matrices B and C per head.
//! - [`random`]: random models, to probe a family without training.
//!
//! Everything runs in f64 through faer ([`linalg`]).

pub mod classify;
pub mod linalg;
pub mod random;
pub mod rank;
pub mod spectrum;
pub mod stochastic;

use crate::config::{InputKind, ModelConfig};
use crate::error::Result;
use crate::nn::Model;
use crate::theory::Inputs;
use ndarray::{Array2, Array3};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rank::StageRank;
use serde::{Deserialize, Serialize};
use spectrum::ToeplitzSpectrum;
use stochastic::HeadStochasticity;

/// How much to probe.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// Sequence length (at most the model's n_max).
    pub n: usize,
    /// Constant inputs stacked for the positional rank.
    pub rank_inputs: usize,
    /// Inputs per kind (constant, general) for the stochasticity of the heads.
    pub head_inputs: usize,
    /// Seed of the probe inputs.
    pub seed: u64,
}

/// Everything the probes measured on one model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// The model's label (`t5`, `urpe`, `rope+urpe`, …).
    pub label: String,
    /// Sequence length probed.
    pub n: usize,
    /// Whether Proposition 1 covers the configuration (a bound family of docs/theory.md §2, no gate).
    pub barrier_bound_by_theory: bool,
    /// Every head on constant inputs 1xᵀ.
    pub heads_constant: Vec<HeadStochasticity>,
    /// Every head on general inputs (independent rows).
    pub heads_general: Vec<HeadStochasticity>,
    /// Positional rank per stage, on constant inputs.
    pub rank: Vec<StageRank>,
    /// Toeplitz spectra of B and C per head.
    pub spectra: Vec<ToeplitzSpectrum>,
}

impl Analysis {
    /// The largest positional rank over the stages: 0 means every stage keeps equal rows
    /// on constant inputs (barrier-bound as measured).
    pub fn positional_rank(&self) -> usize {
        self.rank.iter().map(|s| s.rank).max().unwrap_or(0)
    }
}

/// `count` probe inputs of length `n` for `config`: constant sequences (one token, or one
/// x ~ U[−1, 1]^d_in, repeated) when `constant`, else independent rows.
pub fn probe_inputs<R: Rng>(config: &ModelConfig, n: usize, count: usize, constant: bool, rng: &mut R) -> Inputs<f64> {
    match config.input {
        InputKind::Tokens { vocab } => {
            let mut t = Array2::zeros((count, n));
            for mut row in t.rows_mut() {
                let first = rng.random_range(0..vocab);
                row.iter_mut()
                    .enumerate()
                    .for_each(|(i, v)| *v = if constant || i == 0 { first } else { rng.random_range(0..vocab) });
            }
            Inputs::Tokens(t)
        }
        InputKind::Real { d_in } => {
            let mut x = Array3::zeros((count, n, d_in));
            for mut seq in x.outer_iter_mut() {
                let first: Vec<f64> = (0..d_in).map(|_| rng.random_range(-1.0..1.0)).collect();
                for (i, mut row) in seq.rows_mut().into_iter().enumerate() {
                    row.iter_mut()
                        .zip(&first)
                        .for_each(|(v, &f)| *v = if constant || i == 0 { f } else { rng.random_range(-1.0..1.0) });
                }
            }
            Inputs::Real(x)
        }
    }
}

/// Positional rank of every stage of `model` on `inputs` constant inputs of length `n`.
pub fn positional_rank(model: &Model<f64>, n: usize, inputs: usize, seed: u64) -> Result<Vec<StageRank>> {
    let x = probe_inputs(&model.config, n, inputs, true, &mut ChaCha8Rng::seed_from_u64(seed));
    let mut cache = model.cache_for(&x.view());
    model.forward(&x.view(), &mut cache)?;
    rank::positional_rank(&cache, model.config.norm)
}

/// Runs every probe on `model`.
pub fn analyze(model: &Model<f64>, o: &Options) -> Result<Analysis> {
    model.config.check_length(o.n)?;
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    let mut heads_of = |constant: bool| -> Result<Vec<HeadStochasticity>> {
        let x = probe_inputs(&model.config, o.n, o.head_inputs, constant, &mut rng);
        let mut cache = model.cache_for(&x.view());
        model.forward(&x.view(), &mut cache)?;
        stochastic::heads(&cache)
    };
    let heads_constant = heads_of(true)?;
    let heads_general = heads_of(false)?;
    Ok(Analysis {
        label: model.config.label(),
        n: o.n,
        barrier_bound_by_theory: model.config.barrier_bound(),
        heads_constant,
        heads_general,
        rank: positional_rank(model, o.n, o.rank_inputs, o.seed.wrapping_add(1))?,
        spectra: spectrum::toeplitz_spectra(model, model.config.inner_len(o.n))?,
    })
}
