//! FIRE's score bias written from the formula of src/family/fire.rs (plain f64), for the
//! naive loops of tests/position.rs and the kink search of tests/gradients.rs.

use urpe::nn::Model;
use urpe::nn::layout::PositionIds;

/// One layer's FIRE tensors, read from the model.
pub struct FireParams {
    /// Hidden weights [H].
    pub w1: Vec<f64>,
    /// Hidden biases [H].
    pub b1: Vec<f64>,
    /// Output weights [heads, H].
    pub w2: ndarray::Array2<f64>,
    /// Output biases [heads].
    pub b2: Vec<f64>,
    /// c = 0.1·e^{ρ_c}.
    pub c: f64,
    /// L = n_max·e^{ρ_L}.
    pub l: f64,
}

impl FireParams {
    /// The tensors `pos` names (w1, b1, w2, b2, ρ in declaration order).
    pub fn of(m: &Model<f64>, pos: &PositionIds) -> Self {
        let (p, t) = (&m.params, |k: usize| pos.family.get(k));
        let rho = p.vec(t(4));
        FireParams {
            w1: p.vec(t(0)).to_vec(),
            b1: p.vec(t(1)).to_vec(),
            w2: p.mat(t(2)).to_owned(),
            b2: p.vec(t(3)).to_vec(),
            c: 0.1 * rho[0].exp(),
            l: m.config.n_max as f64 * rho[1].exp(),
        }
    }

    /// x_ij = sign(i − j)·ψ(|i − j|)/ψ(max(L, i)), ψ(t) = ln(1 + c·t).
    pub fn x(&self, i: usize, j: usize) -> f64 {
        let psi = |t: f64| (1.0 + self.c * t).ln();
        let t = i as f64 - j as f64;
        let sign = if t > 0.0 {
            1.0
        } else if t < 0.0 {
            -1.0
        } else {
            0.0
        };
        sign * psi(t.abs()) / psi(self.l.max(i as f64))
    }

    /// The hidden units' inputs w1_k·x_ij + b1_k.
    pub fn pre(&self, i: usize, j: usize) -> Vec<f64> {
        let x = self.x(i, j);
        self.w1.iter().zip(&self.b1).map(|(w, b)| w * x + b).collect()
    }

    /// b_h(i, j) = b2_h + Σ_k w2[h, k]·relu(w1_k·x_ij + b1_k).
    pub fn bias(&self, h: usize, i: usize, j: usize) -> f64 {
        self.b2[h] + self.pre(i, j).iter().enumerate().map(|(k, u)| self.w2[[h, k]] * u.max(0.0)).sum::<f64>()
    }
}
