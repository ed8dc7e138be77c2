//! Adam and AdamW with bias correction, a warm-up + decay learning-rate schedule, and
//! gradient-norm clipping, all as one flat walk over the parameter buffer (the same
//! buffer and order the checkpoint code uses).

use crate::float::{Float, lane_sum_f64_of};
use serde::{Deserialize, Serialize};

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Adam; weight decay, if any, is added to the gradient (L2), as PyTorch's Adam.
    Adam,
    /// AdamW: decoupled weight decay θ ← θ·(1 − lr·λ) before the Adam step.
    Adamw,
}

/// Shape of the learning rate after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Decay {
    /// Linear from the peak to 0 at the last step.
    Linear,
    /// Half a cosine from the peak to 0 at the last step.
    Cosine,
    /// Stay at the peak.
    Constant,
}

/// Optimiser and schedule settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Update rule.
    pub kind: OptimizerKind,
    /// Peak learning rate.
    pub lr: f64,
    /// First-moment decay β₁.
    pub beta1: f64,
    /// Second-moment decay β₂.
    pub beta2: f64,
    /// ε added to √v̂.
    pub eps: f64,
    /// Weight decay λ (L2 for Adam, decoupled for AdamW).
    pub weight_decay: f64,
    /// Linear warm-up steps from 0 to the peak.
    pub warmup: usize,
    /// Decay after warm-up.
    pub decay: Decay,
    /// Clip the global gradient norm to this value (none when absent).
    pub clip: Option<f64>,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            kind: OptimizerKind::Adam,
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            warmup: 0,
            decay: Decay::Linear,
            clip: None,
        }
    }
}

impl OptimConfig {
    /// Learning rate at `step` (from 0) of `total`: (step + 1)/warmup·peak during warm-up,
    /// then the decay from the peak towards 0 at step `total`.
    pub fn learning_rate(&self, step: usize, total: usize) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let span = total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        match self.decay {
            Decay::Constant => self.lr,
            Decay::Linear => self.lr * (1.0 - progress),
            Decay::Cosine => self.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        }
    }

    /// Checks the values; the message names the field.
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        use crate::config::ConfigError;
        let positive = |field: &str, v: f64| {
            if v.is_finite() && v > 0.0 { Ok(()) } else { Err(ConfigError::new(field, v, "a finite number above 0")) }
        };
        positive("optim.lr", self.lr)?;
        positive("optim.eps", self.eps)?;
        for (field, beta) in [("optim.beta1", self.beta1), ("optim.beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(ConfigError::new(field, beta, "a number in [0, 1)"));
            }
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(ConfigError::new("optim.weight_decay", self.weight_decay, "a finite number ≥ 0"));
        }
        if let Some(clip) = self.clip {
            positive("optim.clip", clip)?;
        }
        Ok(())
    }
}

/// Adam state: first and second moments per parameter and the step count.
#[derive(Clone, Debug)]
pub struct Adam<F> {
    m: Vec<F>,
    v: Vec<F>,
    t: i32,
}

/// Adam's state as plain values: first and second moments in the parameter layout's
/// order and the number of updates done (saved with a run stopped mid-way).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamMoments {
    /// First moments.
    pub m: Vec<f32>,
    /// Second moments.
    pub v: Vec<f32>,
    /// Updates done.
    pub t: i32,
}

/// √(Σ g²), accumulated in f64 with eight partial sums (a fixed order, see
/// [`crate::float::lane_sum`]).
pub fn grad_norm<F: Float>(grads: &[F]) -> f64 {
    lane_sum_f64_of(grads, |g| g.f64() * g.f64()).sqrt()
}

impl<F: Float> Adam<F> {
    /// Zero moments for `len` parameters.
    pub fn new(len: usize) -> Self {
        Adam { m: vec![F::zero(); len], v: vec![F::zero(); len], t: 0 }
    }

    /// The state as plain values.
    pub fn moments(&self) -> AdamMoments {
        AdamMoments {
            m: self.m.iter().map(|x| x.f32()).collect(),
            v: self.v.iter().map(|x| x.f32()).collect(),
            t: self.t,
        }
    }

    /// The state `moments` describes.
    pub fn from_moments(moments: &AdamMoments) -> Self {
        let cast = |x: &[f32]| x.iter().map(|&v| F::c(v as f64)).collect();
        Adam { m: cast(&moments.m), v: cast(&moments.v), t: moments.t }
    }

    /// One update of `params` from `grads` (whose norm is `norm`, see [`grad_norm`]) at
    /// learning rate `lr`. With clipping the gradient is scaled by min(1, clip/‖g‖).
    pub fn step(&mut self, params: &mut [F], grads: &[F], norm: f64, lr: f64, c: &OptimConfig) {
        self.t += 1;
        let clip_scale = match c.clip {
            Some(max) if norm > max => F::c(max / norm),
            _ => F::one(),
        };
        let (b1, b2) = (F::c(c.beta1), F::c(c.beta2));
        let bias1 = F::c(1.0 - c.beta1.powi(self.t));
        let bias2_sqrt = F::c((1.0 - c.beta2.powi(self.t)).sqrt());
        let step_size = F::c(lr) / bias1;
        let (eps, wd) = (F::c(c.eps), F::c(c.weight_decay));
        let decoupled = F::one() - F::c(lr * c.weight_decay);
        for (((p, &g), m), v) in params.iter_mut().zip(grads).zip(&mut self.m).zip(&mut self.v) {
            let mut g = g * clip_scale;
            match c.kind {
                OptimizerKind::Adam => g += wd * *p,
                OptimizerKind::Adamw => *p *= decoupled,
            }
            *m = b1 * *m + (F::one() - b1) * g;
            *v = b2 * *v + (F::one() - b2) * g * g;
            *p -= step_size * *m / ((*v).sqrt() / bias2_sqrt + eps);
        }
    }
}
