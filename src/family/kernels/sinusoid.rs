//! Sinusoidal tables (Vaswani et al.): feature 2k holds sin(t·ω_k), feature 2k + 1 holds
//! cos(t·ω_k), with ω_k = 10000^(−2k/d).

use crate::float::Float;
use ndarray::Array2;

fn fill<F: Float>(table: &mut Array2<F>, row: usize, t: f64) {
    let d = table.ncols();
    for k in 0..d / 2 {
        let omega = 10_000f64.powf(-2.0 * k as f64 / d as f64);
        table[[row, 2 * k]] = F::c((t * omega).sin());
        table[[row, 2 * k + 1]] = F::c((t * omega).cos());
    }
}

/// Row i (from 0) holds the sinusoid of position i: [n_max, d] (ape-sin).
pub fn position_table<F: Float>(n_max: usize, d: usize) -> Array2<F> {
    let mut table = Array2::zeros((n_max, d));
    for i in 0..n_max {
        fill(&mut table, i, i as f64);
    }
    table
}

/// Row o holds the sinusoid of the distance i − j = n_max − 1 − o, o the offset index
/// of j − i: [2·n_max − 1, d] (Transformer-XL's R_{i−j}).
pub fn distance_table<F: Float>(n_max: usize, d: usize) -> Array2<F> {
    let mut table = Array2::zeros((2 * n_max - 1, d));
    for o in 0..2 * n_max - 1 {
        fill(&mut table, o, n_max as f64 - 1.0 - o as f64);
    }
    table
}
