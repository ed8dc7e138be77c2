//! Fixed (not learned) position tables of a configuration, computed once per model.

use crate::config::{Family, ModelConfig};
use crate::family::kernels::{alibi, rope, sinusoid, t5};
use crate::float::Float;
use ndarray::Array2;

/// Fixed (not learned) tables of a configuration, computed once per model.
#[derive(Clone, Debug)]
pub struct PositionTables<F> {
    /// ape-sin: sinusoid of position i (from 0), [n_max, d].
    pub ape_sin: Option<Array2<F>>,
    /// xl: sinusoid of the distance i − j for each offset index, [2·n_max − 1, d].
    pub xl_sinusoid: Option<Array2<F>>,
    /// alibi: −m_h·|j − i| per head and offset index, [heads, 2·n_max − 1].
    pub alibi: Option<Array2<F>>,
    /// t5-bucketed: bucket of each offset index, [2·n_max − 1].
    pub t5_bucket: Option<Vec<usize>>,
    /// rope: cos and sin of i·θ_k, each [n_max, head_dim / 2].
    pub rope: Option<rope::RopeTables<F>>,
}

impl<F: Float> PositionTables<F> {
    /// The tables `config`'s family uses; the others stay `None`.
    pub fn new(config: &ModelConfig) -> Self {
        let (n_max, d) = (config.n_max, config.width);
        PositionTables {
            ape_sin: (config.family == Family::ApeSin).then(|| sinusoid::position_table(n_max, d)),
            xl_sinusoid: (config.family == Family::Xl).then(|| sinusoid::distance_table(n_max, d)),
            alibi: (config.family == Family::Alibi).then(|| alibi::offset_bias(config.heads, n_max)),
            t5_bucket: (config.family == Family::T5Bucketed).then(|| {
                (0..config.offsets())
                    .map(|o| {
                        let rel = o as i64 - (n_max as i64 - 1);
                        t5::bucket(rel, !config.causal, config.t5_buckets, config.t5_max_distance)
                    })
                    .collect()
            }),
            rope: (config.family == Family::Rope)
                .then(|| rope::RopeTables::new(n_max, config.head_dim(), config.rope_base)),
        }
    }
}
