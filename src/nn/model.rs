//! The whole model: input map (+ absolute positions), blocks, final LayerNorm (pre-norm),
//! output head. Parameters live in one flat buffer described by a [`ModelLayout`].

use super::block::{BlockCache, BlockGrads, block_backward, block_forward};
use super::layernorm::{NormCache, layernorm_backward, layernorm_forward};
use super::layout::{InputIds, ModelLayout};
use super::linear::{linear_backward, linear_forward};
use crate::config::{InputKind, ModelConfig};
use crate::error::{Error, Result};
use crate::family::PositionTerms;
use crate::float::Float;
use crate::params::{Init, Params};
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis, Zip};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::sync::Arc;

/// A batch of model inputs: token ids [batch, n] or real vectors [batch, n, d_in].
#[derive(Clone, Copy, Debug)]
pub enum ModelInput<'a, F> {
    /// Token ids.
    Tokens(ArrayView2<'a, usize>),
    /// Real vectors.
    Real(ArrayView3<'a, F>),
}

impl<F> ModelInput<'_, F> {
    /// (batch, n).
    pub fn batch_and_length(&self) -> (usize, usize) {
        match self {
            ModelInput::Tokens(t) => t.dim(),
            ModelInput::Real(x) => (x.dim().0, x.dim().1),
        }
    }
}

/// Every activation of a forward pass, allocated once for a (batch, n) and reused.
#[derive(Clone, Debug)]
pub struct ForwardCache<F> {
    /// Sequences in the batch.
    pub batch: usize,
    /// Sequence length.
    pub n: usize,
    /// Input rows after the input map and absolute positions, [batch·n, d].
    pub embedded: Array2<F>,
    /// Blocks.
    pub layers: Vec<BlockCache<F>>,
    /// Final LayerNorm (pre-norm only).
    pub final_norm: Option<NormCache<F>>,
    /// Head output (logits or real outputs), [batch·n, out].
    pub output: Array2<F>,
}

impl<F: Float> ForwardCache<F> {
    /// Storage for `batch` sequences of length `n`.
    pub fn new(config: &ModelConfig, batch: usize, n: usize) -> Self {
        let rows = batch * n;
        ForwardCache {
            batch,
            n,
            embedded: Array2::zeros((rows, config.width)),
            layers: (0..config.depth).map(|_| BlockCache::new(config, batch, n)).collect(),
            final_norm: (config.norm == crate::config::Norm::Pre).then(|| NormCache::new(rows, config.width)),
            output: Array2::zeros((rows, config.output.size())),
        }
    }

    /// The output as [batch, n, out].
    pub fn output3(&self) -> ArrayView3<'_, F> {
        let out = self.output.ncols();
        self.output.view().into_shape_with_order((self.batch, self.n, out)).expect("contiguous output")
    }
}

/// A model: configuration, tensor layout, fixed position tables and parameter values.
#[derive(Clone, Debug)]
pub struct Model<F> {
    /// The validated configuration.
    pub config: ModelConfig,
    /// Tensor names, shapes and typed handles.
    pub layout: Arc<ModelLayout>,
    /// The position family's terms (with its fixed tables).
    pub terms: PositionTerms<F>,
    /// Parameter values.
    pub params: Params<F>,
}

/// Fills `params` following each tensor's [`Init`]: N(0, 0.02) weights, zero biases,
/// unit LayerNorm gains, C = ones (URPE starts equal to its base family).
pub fn official_init<F: Float>(params: &mut Params<F>, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let layout = params.layout.clone();
    for spec in layout.specs() {
        let values = &mut params.data[spec.range()];
        match spec.init {
            Init::Zeros => values.fill(F::zero()),
            Init::Ones => values.fill(F::one()),
            Init::Normal(std) => {
                let normal = Normal::new(0.0, std).expect("positive standard deviation");
                values.iter_mut().for_each(|v| *v = F::c(normal.sample(&mut rng)));
            }
        }
    }
}

impl<F: Float> Model<F> {
    /// A model with the official initialisation drawn from `seed`.
    pub fn new(config: ModelConfig, seed: u64) -> Result<Self> {
        let mut model = Self::zeros(config)?;
        official_init(&mut model.params, seed);
        Ok(model)
    }

    /// A model whose parameters are all zero (to be filled by a checkpoint or by hand).
    pub fn zeros(config: ModelConfig) -> Result<Self> {
        config.validate()?;
        let layout = Arc::new(ModelLayout::new(&config));
        let params = Params::zeros(layout.tensors.clone());
        let terms = PositionTerms::new(config.family, &config.family_dims());
        Ok(Model { config, layout, terms, params })
    }

    /// The same model with parameters of another float type.
    pub fn cast<G: Float>(&self) -> Model<G> {
        Model {
            config: self.config.clone(),
            layout: self.layout.clone(),
            terms: PositionTerms::new(self.config.family, &self.config.family_dims()),
            params: self.params.cast(),
        }
    }

    /// Checks that `input` fits the model: kind, width, length, token range.
    pub fn check_input(&self, input: &ModelInput<F>) -> Result<()> {
        let (batch, n) = input.batch_and_length();
        if batch == 0 {
            return Err(Error::Input("the input batch is empty".into()));
        }
        self.config.check_length(n)?;
        match (input, self.config.input) {
            (ModelInput::Tokens(t), InputKind::Tokens { vocab }) => {
                if let Some(&bad) = t.iter().find(|&&t| t >= vocab) {
                    return Err(Error::Input(format!(
                        "token id {bad} is out of range: the model's vocabulary is 0..{vocab}"
                    )));
                }
            }
            (ModelInput::Real(x), InputKind::Real { d_in }) => {
                if x.dim().2 != d_in {
                    return Err(Error::Input(format!(
                        "input has {} features per position but the model reads d_in = {d_in}",
                        x.dim().2
                    )));
                }
            }
            (ModelInput::Tokens(_), InputKind::Real { d_in }) => {
                return Err(Error::Input(format!(
                    "input holds token ids [batch, n] but the model reads real vectors [batch, n, {d_in}]"
                )));
            }
            (ModelInput::Real(_), InputKind::Tokens { vocab }) => {
                return Err(Error::Input(format!(
                    "input holds real vectors but the model reads token ids [batch, n] in 0..{vocab}"
                )));
            }
        }
        Ok(())
    }

    /// A cache sized for `input` (reuse it across calls of the same shape).
    pub fn cache_for(&self, input: &ModelInput<F>) -> ForwardCache<F> {
        let (batch, n) = input.batch_and_length();
        ForwardCache::new(&self.config, batch, n)
    }

    /// Forward pass; fills every activation of `cache` and returns the output [batch, n, out].
    /// The cache is reallocated when its shape differs from the input's.
    pub fn forward<'c>(&self, input: &ModelInput<F>, cache: &'c mut ForwardCache<F>) -> Result<ArrayView3<'c, F>> {
        self.check_input(input)?;
        let (batch, n) = input.batch_and_length();
        if (cache.batch, cache.n) != (batch, n) || cache.layers.len() != self.config.depth {
            *cache = ForwardCache::new(&self.config, batch, n);
        }
        let (p, ids) = (&self.params, &*self.layout);
        match (input, ids.input) {
            (ModelInput::Tokens(tokens), InputIds::Embed(e)) => {
                let table = p.mat(e);
                Zip::from(cache.embedded.rows_mut())
                    .and(tokens.view().into_shape_with_order(batch * n).expect("contiguous ids"))
                    .for_each(|mut row, &t| row.assign(&table.row(t)));
            }
            (ModelInput::Real(x), InputIds::Linear(lin)) => {
                let rows = x.as_standard_layout();
                let x2 = rows.view().into_shape_with_order((batch * n, x.dim().2)).expect("contiguous input");
                linear_forward(cache.embedded.view_mut(), x2, p.mat(lin.weight), p.vec(lin.bias));
            }
            _ => unreachable!("check_input matched the input kind"),
        }
        if let Some(table) = self.terms.input_rows(p, &self.layout.input_pos) {
            for (r, mut row) in cache.embedded.rows_mut().into_iter().enumerate() {
                row += &table.row(r % n);
            }
        }
        for l in 0..self.config.depth {
            let (before, rest) = cache.layers.split_at_mut(l);
            let x = before.last().map_or(cache.embedded.view(), |b| b.output(self.config.norm).view());
            block_forward(&mut rest[0], x, p, &ids.layers[l], &self.terms, &self.config);
        }
        if let (Some(fnc), Some(fid)) = (&mut cache.final_norm, ids.final_norm) {
            let last = cache.layers.last().expect("depth ≥ 1").output(self.config.norm);
            layernorm_forward(fnc, last.view(), p.vec(fid.weight), p.vec(fid.bias));
        }
        let h = head_input(&cache.final_norm, &cache.layers, self.config.norm);
        linear_forward(cache.output.view_mut(), h, p.mat(ids.head.weight), p.vec(ids.head.bias));
        Ok(cache.output3())
    }

    /// Forward pass with a fresh cache; returns the output [batch, n, out].
    pub fn predict(&self, input: &ModelInput<F>) -> Result<Array3<F>> {
        let mut cache = self.cache_for(input);
        Ok(self.forward(input, &mut cache)?.to_owned())
    }

    /// Backward pass: from ∂L/∂output [batch·n, out] (the cache of the matching forward),
    /// accumulates every parameter gradient into `grads` and, for real inputs, writes
    /// ∂L/∂input into `ws.d_input`.
    pub fn backward(
        &self,
        input: &ModelInput<F>,
        cache: &ForwardCache<F>,
        d_output: ArrayView2<F>,
        grads: &mut Params<F>,
        ws: &mut BackwardWorkspace<F>,
    ) {
        let (p, ids, norm) = (&self.params, &*self.layout, self.config.norm);
        let n = cache.n;
        let BackwardWorkspace { d_a, d_b, block, d_input } = ws;
        d_a.fill(F::zero());
        linear_backward(
            Some(d_a.view_mut()),
            grads,
            ids.head,
            d_output,
            head_input(&cache.final_norm, &cache.layers, self.config.norm),
            p.mat(ids.head.weight),
        );
        if let (Some(fnc), Some(fid)) = (&cache.final_norm, ids.final_norm) {
            d_b.fill(F::zero());
            layernorm_backward(d_b.view_mut(), grads, fid, d_a.view(), fnc, p.vec(fid.weight));
            std::mem::swap(d_a, d_b);
        }
        for l in (0..self.config.depth).rev() {
            let x = if l == 0 { cache.embedded.view() } else { cache.layers[l - 1].output(norm).view() };
            block_backward(
                d_b.view_mut(),
                grads,
                block,
                d_a.view(),
                &cache.layers[l],
                x,
                p,
                &ids.layers[l],
                &self.terms,
                &self.config,
            );
            std::mem::swap(d_a, d_b);
        }
        // d_a = ∂L/∂(embedded rows)
        for chunk in d_a.axis_chunks_iter(Axis(0), n) {
            self.terms.input_rows_backward(chunk, &ids.input_pos, grads);
        }
        match (input, ids.input) {
            (ModelInput::Tokens(tokens), InputIds::Embed(e)) => {
                let mut d_embed = grads.mat_mut(e);
                for (&t, row) in tokens.iter().zip(d_a.rows()) {
                    d_embed.row_mut(t).zip_mut_with(&row, |g, &d| *g += d);
                }
            }
            (ModelInput::Real(x), InputIds::Linear(lin)) => {
                let rows = x.as_standard_layout();
                let x2 = rows.view().into_shape_with_order((cache.batch * n, x.dim().2)).expect("contiguous input");
                d_input.fill(F::zero());
                linear_backward(Some(d_input.view_mut()), grads, lin, d_a.view(), x2, p.mat(lin.weight));
            }
            _ => unreachable!("forward checked the input kind"),
        }
    }
}

/// What the head reads: the final norm's output (pre-norm) or the last block's output.
fn head_input<'c, F: Float>(
    final_norm: &'c Option<NormCache<F>>,
    layers: &'c [BlockCache<F>],
    norm: crate::config::Norm,
) -> ArrayView2<'c, F> {
    match final_norm {
        Some(fnc) => fnc.out.view(),
        None => layers.last().expect("depth ≥ 1").output(norm).view(),
    }
}

/// Workspace of [`Model::backward`], allocated once per (batch, n) and reused.
#[derive(Clone, Debug)]
pub struct BackwardWorkspace<F> {
    d_a: Array2<F>,
    d_b: Array2<F>,
    block: BlockGrads<F>,
    /// ∂L/∂input for real inputs, [batch·n, d_in] (empty for tokens).
    pub d_input: Array2<F>,
}

impl<F: Float> BackwardWorkspace<F> {
    /// Storage for `batch` sequences of length `n` of `model`.
    pub fn new(model: &Model<F>, batch: usize, n: usize) -> Self {
        let c = &model.config;
        let rows = batch * n;
        let d_in = match c.input {
            InputKind::Real { d_in } => d_in,
            InputKind::Tokens { .. } => 0,
        };
        BackwardWorkspace {
            d_a: Array2::zeros((rows, c.width)),
            d_b: Array2::zeros((rows, c.width)),
            block: BlockGrads::new(c, batch, n, &model.layout.layers[0]),
            d_input: Array2::zeros((if d_in > 0 { rows } else { 0 }, d_in)),
        }
    }
}
