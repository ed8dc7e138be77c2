//! Spectra of the Toeplitz position matrices of a model: B (added to the scores inside
//! the softmax: t5, t5-bucketed expanded to offsets, ALiBi's fixed −m_h·|j − i|) and the
//! URPE gate C (multiplying the probabilities after it), per head, as n × n matrices (n the
//! rows the attention sees: one more than the input's with `bos`).

use super::linalg::singular_values;
use crate::error::Result;
use crate::family::kernels::toeplitz::dense;
use crate::nn::Model;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// The spectrum of one head's Toeplitz matrix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToeplitzSpectrum {
    /// The tensor it comes from (`pos.t5`, `layers.0.pos.urpe`, `alibi (fixed)`, …): the
    /// checkpoint's tensor name, where `layers.L` is block L + 1.
    pub tensor: String,
    /// `B` (inside the softmax) or `C` (the URPE gate).
    pub role: String,
    /// Head, from 1.
    pub head: usize,
    /// Singular values of the n × n matrix, nonincreasing.
    pub singular: Vec<f64>,
    /// C only: ‖C − 11ᵀ‖_F / n, 0 when the gate is the identity map (plain attention).
    pub distance_from_ones: Option<f64>,
}

/// One offset table per head: name, role, rows [heads][2·n_max − 1]: the family's score
/// bias where it is one (B), the gate (C).
fn tables(model: &Model<f64>) -> Vec<(String, &'static str, Array2<f64>)> {
    let p = &model.params;
    let name = |id| p.layout.spec(id).name.clone();
    let mut out: Vec<(String, &'static str, Array2<f64>)> = Vec::new();
    for layer in &model.layout.layers {
        let pos = layer.attn.pos;
        let mut push = |tensor: String, role, table: Array2<f64>| {
            if !out.iter().any(|(t, _, _)| *t == tensor) {
                out.push((tensor, role, table));
            }
        };
        if let Some(bias) = model.terms.offset_bias(p, &pos.family) {
            let tensor = pos.family.all().next().map_or_else(|| format!("{} (fixed)", model.config.family), name);
            push(tensor, "B", bias);
        }
        if let Some(gate) = pos.gate {
            push(name(gate), "C", p.mat(gate).to_owned());
        }
    }
    out
}

/// ‖T − 11ᵀ‖_F / n of an n × n matrix.
pub fn distance_from_ones(t: &Array2<f64>) -> f64 {
    t.iter().map(|v| (v - 1.0) * (v - 1.0)).sum::<f64>().sqrt() / t.nrows() as f64
}

/// Spectra of every Toeplitz position matrix of `model`, per head, at length `n`.
pub fn toeplitz_spectra(model: &Model<f64>, n: usize) -> Result<Vec<ToeplitzSpectrum>> {
    let mut out = Vec::new();
    for (tensor, role, table) in tables(model) {
        for (head, row) in table.rows().into_iter().enumerate() {
            let t = dense(row, n);
            out.push(ToeplitzSpectrum {
                tensor: tensor.clone(),
                role: role.into(),
                head: head + 1,
                singular: singular_values(t.view())?,
                distance_from_ones: (role == "C").then(|| distance_from_ones(&t)),
            });
        }
    }
    Ok(out)
}
