//! The target catalogue of docs/theory.md §4: sequence functions f(X), seeded samplers of
//! constant and general inputs, and each target's exact floor on constant inputs.
//!
//! Positions p_i = i/n for i = 1..n; real inputs are drawn from x ~ U[−1, 1]^d, tokens
//! uniformly from 0..vocab. position-shift uses u = (1, …, 1), so ‖u‖² = d_out.

use crate::config::{InputKind, OutputKind};
use crate::float::Float;
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A function of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum TargetKind {
    /// Row i: x_i + p_i·u.
    PositionShift,
    /// Row i: p_i·x_i.
    PositionScale,
    /// Row i: (1/n)·Σ_{j≤i} x_j.
    PrefixSum,
    /// Token task: class i at position i (PI).
    PositionId,
    /// Token task: the input token at position 2i (1-based) for i ≤ n/2, a filler class
    /// after (ETP).
    EvenToken,
    /// Control (floor 0): row i is x_i.
    Identity,
    /// Control (floor 0): row i is x_i + mean_j x_j.
    AddMean,
    /// Control (floor 0): row i is tanh(x_i), element-wise.
    RowMap,
}

impl TargetKind {
    /// Every target, in catalogue order.
    pub const ALL: [TargetKind; 8] = [
        TargetKind::PositionShift,
        TargetKind::PositionScale,
        TargetKind::PrefixSum,
        TargetKind::PositionId,
        TargetKind::EvenToken,
        TargetKind::Identity,
        TargetKind::AddMean,
        TargetKind::RowMap,
    ];

    /// Name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::PositionShift => "position-shift",
            TargetKind::PositionScale => "position-scale",
            TargetKind::PrefixSum => "prefix-sum",
            TargetKind::PositionId => "position-id",
            TargetKind::EvenToken => "even-token",
            TargetKind::Identity => "identity",
            TargetKind::AddMean => "add-mean",
            TargetKind::RowMap => "row-map",
        }
    }

    /// True for token-classification targets (PI, ETP).
    pub fn is_classification(self) -> bool {
        matches!(self, TargetKind::PositionId | TargetKind::EvenToken)
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A target with its sizes: sequence length n, features d (real targets) or vocabulary
/// (token targets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Which function.
    pub kind: TargetKind,
    /// Sequence length.
    pub n: usize,
    /// Features per position (real targets; ignored by token targets).
    pub d: usize,
    /// Vocabulary (token targets; ignored by real targets).
    pub vocab: usize,
}

/// Inputs of a batch: token ids [batch, n] or real vectors [batch, n, d].
#[derive(Clone, Debug, PartialEq)]
pub enum Inputs<F> {
    /// Token ids.
    Tokens(Array2<usize>),
    /// Real vectors.
    Real(Array3<F>),
}

/// Targets of a batch: class labels [batch, n] or real vectors [batch, n, d_out].
#[derive(Clone, Debug, PartialEq)]
pub enum Outputs<F> {
    /// Labels.
    Classes(Array2<usize>),
    /// Real vectors.
    Real(Array3<F>),
}

/// A sampled batch: inputs, the target's values on them, and which rows are constant.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample<F> {
    /// Inputs.
    pub inputs: Inputs<F>,
    /// f(inputs).
    pub targets: Outputs<F>,
    /// `constant[b]`: sequence b is a constant sequence 1xᵀ.
    pub constant: Vec<bool>,
}

/// The exact bound on constant inputs for every model of Proposition 1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Floor {
    /// Real targets: mean squared error per entry is at least `mse`.
    Mse {
        /// E‖P f(1xᵀ)‖²_F / (n·d_out).
        mse: f64,
    },
    /// Class targets: accuracy at most `accuracy`, mean cross-entropy at least
    /// `cross_entropy` (nats).
    Classes {
        /// Largest label share max_c #{i : t_i = c}/n.
        accuracy: f64,
        /// Entropy of the empirical label distribution.
        cross_entropy: f64,
    },
}

/// A Monte Carlo estimate: mean and standard error of the mean.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// Sample mean.
    pub mean: f64,
    /// Standard error sd/√N.
    pub std_error: f64,
    /// Number of samples.
    pub samples: usize,
}

impl Estimate {
    /// Mean and standard error of `values` (Welford's update, so equal values give their
    /// value exactly).
    pub fn of(values: &[f64]) -> Self {
        let (mut mean, mut m2) = (0.0, 0.0);
        for (k, &v) in values.iter().enumerate() {
            let delta = v - mean;
            mean += delta / (k + 1) as f64;
            m2 += delta * (v - mean);
        }
        let k = values.len() as f64;
        let var = if values.len() > 1 { m2 / (k - 1.0) } else { 0.0 };
        Estimate { mean, std_error: (var / k).sqrt(), samples: values.len() }
    }
}

/// The floor computed from its definition, per the kind of target.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FloorEstimate {
    /// Mean over constant inputs of min_y ‖f(1xᵀ) − 1yᵀ‖²/(n·d_out).
    Mse {
        /// The estimate.
        mse: Estimate,
    },
    /// Mean over constant inputs of the best equal-row accuracy and cross-entropy.
    Classes {
        /// Accuracy ceiling.
        accuracy: Estimate,
        /// Cross-entropy floor.
        cross_entropy: Estimate,
    },
}

/// Var(p) for p_i = i/n, i = 1..n: (n² − 1)/(12n²).
pub fn position_variance(n: usize) -> f64 {
    let n = n as f64;
    (n * n - 1.0) / (12.0 * n * n)
}

/// E‖x‖²/d for x ~ U[−1, 1]^d.
pub const UNIFORM_SECOND_MOMENT: f64 = 1.0 / 3.0;

fn histogram_bounds(labels: impl Iterator<Item = usize>, n: usize) -> (f64, f64) {
    let mut counts = std::collections::BTreeMap::<usize, usize>::new();
    for t in labels {
        *counts.entry(t).or_default() += 1;
    }
    let n = n as f64;
    let top = counts.values().copied().max().unwrap_or(0) as f64 / n;
    let entropy = counts.values().map(|&c| c as f64 / n).map(|q| -q * q.ln()).sum::<f64>();
    (top, entropy)
}

impl Target {
    /// A target of length `n`; `d` for real targets, `vocab` for token targets.
    pub fn new(kind: TargetKind, n: usize, d: usize, vocab: usize) -> Self {
        Target { kind, n, d, vocab }
    }

    /// What a model must read.
    pub fn input_kind(&self) -> InputKind {
        if self.kind.is_classification() {
            InputKind::Tokens { vocab: self.vocab }
        } else {
            InputKind::Real { d_in: self.d }
        }
    }

    /// What a model must write: n classes (PI), vocab + 1 classes (ETP: tokens and the
    /// filler, class `vocab`), or d real features.
    pub fn output_kind(&self) -> OutputKind {
        match self.kind {
            TargetKind::PositionId => OutputKind::Classes { classes: self.n },
            TargetKind::EvenToken => OutputKind::Classes { classes: self.vocab + 1 },
            _ => OutputKind::Real { d_out: self.d },
        }
    }

    /// Class labels of one token sequence (PI, ETP).
    pub fn labels(&self, tokens: ndarray::ArrayView1<usize>) -> Vec<usize> {
        let n = tokens.len();
        match self.kind {
            TargetKind::PositionId => (0..n).collect(),
            TargetKind::EvenToken => (0..n).map(|i| if i < n / 2 { tokens[2 * i + 1] } else { self.vocab }).collect(),
            k => panic!("{k} is not a classification target"),
        }
    }

    /// f(X) for one real sequence X [n, d]: the rows of the target.
    pub fn apply_real<F: Float>(&self, x: ArrayView2<F>) -> Array2<F> {
        let n = x.nrows();
        let p = |i: usize| F::c((i + 1) as f64 / n as f64);
        let inv_n = F::c(1.0 / n as f64);
        match self.kind {
            TargetKind::PositionShift => {
                let mut y = x.to_owned();
                for (i, mut row) in y.rows_mut().into_iter().enumerate() {
                    row.mapv_inplace(|v| v + p(i));
                }
                y
            }
            TargetKind::PositionScale => {
                let mut y = x.to_owned();
                for (i, mut row) in y.rows_mut().into_iter().enumerate() {
                    row.mapv_inplace(|v| v * p(i));
                }
                y
            }
            TargetKind::PrefixSum => {
                let mut y = x.to_owned();
                for i in 1..n {
                    let prev = y.row(i - 1).to_owned();
                    y.row_mut(i).zip_mut_with(&prev, |a, &b| *a += b);
                }
                y.mapv_inplace(|v| v * inv_n);
                y
            }
            TargetKind::Identity => x.to_owned(),
            TargetKind::AddMean => {
                let mean = x.mean_axis(Axis(0)).expect("n ≥ 1");
                &x + &mean
            }
            TargetKind::RowMap => x.mapv(|v| v.tanh()),
            k => panic!("{k} is not a real-valued target"),
        }
    }

    /// Draws `batch` sequences: the first round(batch·`constant_fraction`) are constant
    /// sequences 1xᵀ, the rest have independent rows.
    pub fn sample<F: Float, R: Rng>(&self, batch: usize, constant_fraction: f64, rng: &mut R) -> Sample<F> {
        let n = self.n;
        let n_constant = ((batch as f64) * constant_fraction.clamp(0.0, 1.0)).round() as usize;
        let constant: Vec<bool> = (0..batch).map(|b| b < n_constant).collect();
        if self.kind.is_classification() {
            let mut tokens = Array2::zeros((batch, n));
            for (b, mut row) in tokens.rows_mut().into_iter().enumerate() {
                if constant[b] {
                    row.fill(rng.random_range(0..self.vocab));
                } else {
                    row.iter_mut().for_each(|t| *t = rng.random_range(0..self.vocab));
                }
            }
            let mut labels = Array2::zeros((batch, n));
            for (mut out, row) in labels.rows_mut().into_iter().zip(tokens.rows()) {
                out.assign(&ndarray::Array1::from(self.labels(row)));
            }
            return Sample { inputs: Inputs::Tokens(tokens), targets: Outputs::Classes(labels), constant };
        }
        let mut x = Array3::zeros((batch, n, self.d));
        for (b, mut seq) in x.outer_iter_mut().enumerate() {
            if constant[b] {
                let row: Vec<F> = (0..self.d).map(|_| F::c(rng.random_range(-1.0..1.0))).collect();
                for mut r in seq.rows_mut() {
                    r.assign(&ndarray::ArrayView1::from(&row));
                }
            } else {
                seq.iter_mut().for_each(|v| *v = F::c(rng.random_range(-1.0..1.0)));
            }
        }
        let mut y = Array3::zeros((batch, n, self.d));
        for (mut out, seq) in y.outer_iter_mut().zip(x.outer_iter()) {
            out.assign(&self.apply_real(seq));
        }
        Sample { inputs: Inputs::Real(x), targets: Outputs::Real(y), constant }
    }

    /// The floor in closed form (docs/theory.md §4).
    pub fn floor(&self) -> Floor {
        let var_p = position_variance(self.n);
        let n = self.n as f64;
        match self.kind {
            TargetKind::PositionShift => Floor::Mse { mse: var_p },
            TargetKind::PositionScale | TargetKind::PrefixSum => Floor::Mse { mse: var_p * UNIFORM_SECOND_MOMENT },
            TargetKind::Identity | TargetKind::AddMean | TargetKind::RowMap => Floor::Mse { mse: 0.0 },
            TargetKind::PositionId => Floor::Classes { accuracy: 1.0 / n, cross_entropy: n.ln() },
            TargetKind::EvenToken => {
                let copied = self.n / 2;
                let (accuracy, cross_entropy) = histogram_bounds((0..self.n).map(|i| usize::from(i >= copied)), self.n);
                Floor::Classes { accuracy, cross_entropy }
            }
        }
    }

    /// The floor from its definition: for `samples` constant inputs drawn by the sampler,
    /// the error of the best equal-row approximation of f(1xᵀ) (the row mean; for labels,
    /// the label histogram), averaged.
    pub fn floor_from_definition<R: Rng>(&self, samples: usize, rng: &mut R) -> FloorEstimate {
        let sample = self.sample::<f64, R>(samples, 1.0, rng);
        match sample.targets {
            Outputs::Real(y) => {
                let errors: Vec<f64> = y
                    .outer_iter()
                    .map(|f| {
                        let mean = f.mean_axis(Axis(0)).expect("n ≥ 1");
                        (&f - &mean).mapv(|e| e * e).sum() / f.len() as f64
                    })
                    .collect();
                FloorEstimate::Mse { mse: Estimate::of(&errors) }
            }
            Outputs::Classes(labels) => {
                let (acc, ce): (Vec<f64>, Vec<f64>) =
                    labels.rows().into_iter().map(|t| histogram_bounds(t.iter().copied(), self.n)).unzip();
                FloorEstimate::Classes { accuracy: Estimate::of(&acc), cross_entropy: Estimate::of(&ce) }
            }
        }
    }
}

impl<F: Float> Inputs<F> {
    /// The batch as a model input.
    pub fn view(&self) -> crate::nn::ModelInput<'_, F> {
        match self {
            Inputs::Tokens(t) => crate::nn::ModelInput::Tokens(t.view()),
            Inputs::Real(x) => crate::nn::ModelInput::Real(x.view()),
        }
    }
}

/// Mean squared error per entry between predictions and real targets over the sequences
/// selected by `keep` (all when `keep` is `None`).
pub fn mse<F: Float>(pred: ArrayView3<F>, target: ArrayView3<F>, keep: Option<&[bool]>) -> f64 {
    let (mut sum, mut count) = (0.0, 0usize);
    for (b, (p, t)) in pred.outer_iter().zip(target.outer_iter()).enumerate() {
        if keep.is_none_or(|k| k[b]) {
            sum += p.iter().zip(t.iter()).map(|(a, b)| (a.f64() - b.f64()).powi(2)).sum::<f64>();
            count += p.len();
        }
    }
    sum / count as f64
}
