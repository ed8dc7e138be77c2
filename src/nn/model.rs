//! The whole model: input map (the BOS row before it with `bos`, then absolute positions),
//! blocks, final LayerNorm (pre-norm), output head (on the input rows only). Parameters live
//! in one flat buffer described by a [`ModelLayout`].

use super::block::{BlockCache, BlockGrads, block_backward, block_forward};
use super::bos;
use super::layernorm::{NormCache, layernorm_backward, layernorm_forward};
use super::layout::{InputIds, ModelLayout};
use super::linear::{InputGrad, linear_backward, linear_forward};
use crate::config::{InputKind, ModelConfig, Norm};
use crate::error::{Error, Result};
use crate::family::PositionTerms;
use crate::float::Float;
use crate::params::{Init, Params};
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, Axis, Zip};
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

/// Every activation of a forward pass, allocated once for a (batch, n) and reused. The
/// blocks run on m rows per sequence: m = n + 1 with `bos` (row 0 the BOS), m = n without.
#[derive(Clone, Debug)]
pub struct ForwardCache<F> {
    /// Sequences in the batch.
    pub batch: usize,
    /// Sequence length of the input (and of the output).
    pub n: usize,
    /// Rows per sequence where the blocks run, m ([`ModelConfig::inner_len`] of n).
    pub inner: usize,
    /// With `bos`: the input map's rows [batch·n, d]; empty without (the input map writes
    /// `embedded` directly).
    pub inputs: Array2<F>,
    /// The blocks' input [batch·m, d]: the BOS row (with `bos`), the input map's rows,
    /// absolute positions.
    pub embedded: Array2<F>,
    /// Blocks.
    pub layers: Vec<BlockCache<F>>,
    /// Final LayerNorm (pre-norm only).
    pub final_norm: Option<NormCache<F>>,
    /// With `bos`: what the head reads, rows 1..=n of every sequence of the last stage,
    /// [batch·n, d]; empty without (the head reads the last stage itself).
    pub head_in: Array2<F>,
    /// Head output (logits or real outputs), [batch·n, out].
    pub output: Array2<F>,
}

impl<F: Float> ForwardCache<F> {
    /// Storage for `batch` sequences of length `n`.
    pub fn new(config: &ModelConfig, batch: usize, n: usize) -> Self {
        let (rows, d) = (batch * n, config.width);
        let inner = config.inner_len(n);
        let bos_rows = if config.bos { rows } else { 0 };
        ForwardCache {
            batch,
            n,
            inner,
            inputs: Array2::zeros((bos_rows, d)),
            embedded: Array2::zeros((batch * inner, d)),
            layers: (0..config.depth).map(|_| BlockCache::new(config, batch, inner)).collect(),
            final_norm: (config.norm == Norm::Pre).then(|| NormCache::new(batch * inner, d)),
            head_in: Array2::zeros((bos_rows, d)),
            output: Array2::zeros((rows, config.output.size())),
        }
    }

    /// The output as [batch, n, out].
    pub fn output3(&self) -> ArrayView3<'_, F> {
        let out = self.output.ncols();
        self.output.view().into_shape_with_order((self.batch, self.n, out)).expect("contiguous output")
    }

    /// The last stage before the head, [batch·m, d]: the final norm's output (pre-norm) or
    /// the last block's output.
    pub fn last_stage(&self, norm: Norm) -> ArrayView2<'_, F> {
        last_stage(&self.final_norm, &self.layers, norm)
    }

    /// What the head reads, [batch·n, d]: the last stage without the BOS rows.
    pub fn head_rows(&self, norm: Norm) -> ArrayView2<'_, F> {
        if self.inner == self.n { self.last_stage(norm) } else { self.head_in.view() }
    }
}

/// The final norm's output (pre-norm) or the last block's output.
fn last_stage<'c, F: Float>(
    final_norm: &'c Option<NormCache<F>>,
    layers: &'c [BlockCache<F>],
    norm: Norm,
) -> ArrayView2<'c, F> {
    match final_norm {
        Some(fnc) => fnc.out.view(),
        None => layers.last().expect("depth ≥ 1").output(norm).view(),
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
        if (cache.batch, cache.n, cache.inner) != (batch, n, self.config.inner_len(n))
            || cache.layers.len() != self.config.depth
        {
            *cache = ForwardCache::new(&self.config, batch, n);
        }
        let (p, ids) = (&self.params, &*self.layout);
        match ids.bos {
            None => self.input_map(input, cache.embedded.view_mut()),
            Some(b) => {
                self.input_map(input, cache.inputs.view_mut());
                bos::with_first_rows(cache.embedded.view_mut(), cache.inputs.view(), Some(p.vec(b)));
            }
        }
        let m = cache.inner;
        if let Some(table) = self.terms.input_rows(p, &self.layout.input_pos) {
            for (r, mut row) in cache.embedded.rows_mut().into_iter().enumerate() {
                row += &table.row(r % m);
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
        let last = last_stage(&cache.final_norm, &cache.layers, self.config.norm);
        let head_in = match ids.bos {
            None => last,
            Some(_) => {
                bos::without_first_rows(cache.head_in.view_mut(), last);
                cache.head_in.view()
            }
        };
        linear_forward(cache.output.view_mut(), head_in, p.mat(ids.head.weight), p.vec(ids.head.bias));
        Ok(cache.output3())
    }

    /// The input map's rows, [batch·n, d]: embedded tokens or x·W + b.
    fn input_map(&self, input: &ModelInput<F>, mut out: ArrayViewMut2<F>) {
        let (p, ids) = (&self.params, &*self.layout);
        let (batch, n) = input.batch_and_length();
        match (input, ids.input) {
            (ModelInput::Tokens(tokens), InputIds::Embed(e)) => {
                let table = p.mat(e);
                Zip::from(out.rows_mut())
                    .and(tokens.view().into_shape_with_order(batch * n).expect("contiguous ids"))
                    .for_each(|mut row, &t| row.assign(&table.row(t)));
            }
            (ModelInput::Real(x), InputIds::Linear(lin)) => {
                let rows = x.as_standard_layout();
                let x2 = rows.view().into_shape_with_order((batch * n, x.dim().2)).expect("contiguous input");
                linear_forward(out, x2, p.mat(lin.weight), p.vec(lin.bias));
            }
            _ => unreachable!("check_input matched the input kind"),
        }
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
        let (n, m) = (cache.n, cache.inner);
        let BackwardWorkspace { d_a, d_b, d_rows, block, d_input } = ws;
        let (head_in, w_head) = (cache.head_rows(norm), p.mat(ids.head.weight));
        match ids.bos {
            None => linear_backward(InputGrad::Write(d_a.view_mut()), grads, ids.head, d_output, head_in, w_head),
            Some(_) => {
                // the head read rows 1..=n: the BOS rows get no gradient from it
                linear_backward(InputGrad::Write(d_rows.view_mut()), grads, ids.head, d_output, head_in, w_head);
                bos::with_first_rows(d_a.view_mut(), d_rows.view(), None);
            }
        }
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
        // d_a = ∂L/∂(embedded rows), m per sequence
        for chunk in d_a.axis_chunks_iter(Axis(0), m) {
            self.terms.input_rows_backward(chunk, &ids.input_pos, grads);
        }
        // ∂L/∂(the input map's rows): d_a itself, or its rows 1..=n with `bos`
        let d_map = match ids.bos {
            None => d_a.view(),
            Some(b) => {
                bos::first_rows_backward(grads.vec_mut(b), d_a.view(), m);
                bos::without_first_rows(d_rows.view_mut(), d_a.view());
                d_rows.view()
            }
        };
        match (input, ids.input) {
            (ModelInput::Tokens(tokens), InputIds::Embed(e)) => {
                let mut d_embed = grads.mat_mut(e);
                for (&t, row) in tokens.iter().zip(d_map.rows()) {
                    d_embed.row_mut(t).zip_mut_with(&row, |g, &d| *g += d);
                }
            }
            (ModelInput::Real(x), InputIds::Linear(lin)) => {
                let rows = x.as_standard_layout();
                let x2 = rows.view().into_shape_with_order((cache.batch * n, x.dim().2)).expect("contiguous input");
                linear_backward(InputGrad::Write(d_input.view_mut()), grads, lin, d_map, x2, p.mat(lin.weight));
            }
            _ => unreachable!("forward checked the input kind"),
        }
    }
}

/// Workspace of [`Model::backward`], allocated once per (batch, n) and reused.
#[derive(Clone, Debug)]
pub struct BackwardWorkspace<F> {
    d_a: Array2<F>,
    d_b: Array2<F>,
    /// With `bos`: gradients of the n input rows per sequence, [batch·n, d] (empty without).
    d_rows: Array2<F>,
    block: BlockGrads<F>,
    /// ∂L/∂input for real inputs, [batch·n, d_in] (empty for tokens).
    pub d_input: Array2<F>,
}

impl<F: Float> BackwardWorkspace<F> {
    /// Storage for `batch` sequences of length `n` of `model`.
    pub fn new(model: &Model<F>, batch: usize, n: usize) -> Self {
        let c = &model.config;
        let (rows, inner) = (batch * n, c.inner_len(n));
        let d_in = match c.input {
            InputKind::Real { d_in } => d_in,
            InputKind::Tokens { .. } => 0,
        };
        BackwardWorkspace {
            d_a: Array2::zeros((batch * inner, c.width)),
            d_b: Array2::zeros((batch * inner, c.width)),
            d_rows: Array2::zeros((if c.bos { rows } else { 0 }, c.width)),
            block: BlockGrads::new(c, batch, inner, &model.layout.layers[0]),
            d_input: Array2::zeros((if d_in > 0 { rows } else { 0 }, d_in)),
        }
    }
}
