//! `t5-bucketed`: scores + b_h[bucket(j − i)] with T5's logarithmic buckets
//! (`{prefix}.t5_bucketed`, [heads, t5_buckets]). The bucket biases are expanded to one
//! value per offset before the heads run and their gradients folded back.

use super::kernels::{t5, toeplitz};
use super::{
    ConfigError, FamilyDims, FamilyIds, Head, Placement, PositionFamily, Terms, WEIGHT, Work, grad_block,
    grad_block_ref,
};
use crate::float::Float;
use crate::params::{ParamLayout, Params};
use ndarray::{ArrayView2, ArrayViewMut2, Axis};

/// T5 bias with T5's logarithmic offset buckets.
pub struct T5Bucketed;

impl PositionFamily for T5Bucketed {
    fn name(&self) -> &'static str {
        "t5-bucketed"
    }

    fn about(&self) -> &'static str {
        "T5 bias with T5's logarithmic buckets: scores + b_h[bucket(j − i)]"
    }

    fn placement(&self) -> Placement {
        Placement { inside_softmax_only: true, reason: "a term in the scores, like t5" }
    }

    fn score_term_is_bias(&self) -> bool {
        true
    }

    fn declare(&self, t: &mut ParamLayout, prefix: &str, dims: &FamilyDims) -> FamilyIds {
        FamilyIds::new(&[t.push(format!("{prefix}.t5_bucketed"), &[dims.heads, dims.t5_buckets], WEIGHT)])
    }

    fn validate(&self, dims: &FamilyDims) -> Result<(), ConfigError> {
        // Bidirectional buckets split in two halves, each with an exact part of half its size.
        let per_side = if dims.causal { dims.t5_buckets } else { dims.t5_buckets / 2 };
        let min = if dims.causal { 2 } else { 4 };
        if dims.t5_buckets < min {
            return Err(ConfigError::new(
                "t5_buckets",
                dims.t5_buckets,
                format!("at least {min} (each direction needs an exact and a log part)"),
            ));
        }
        if dims.t5_max_distance <= per_side / 2 {
            return Err(ConfigError::new(
                "t5_max_distance",
                dims.t5_max_distance,
                format!(
                    "must exceed the exact range t5_buckets/{} = {}",
                    if dims.causal { 2 } else { 4 },
                    per_side / 2
                ),
            ));
        }
        Ok(())
    }

    fn derived_shape(&self, dims: &FamilyDims) -> (usize, usize) {
        (dims.heads, dims.offsets())
    }

    fn grad_len(&self, dims: &FamilyDims) -> usize {
        dims.heads * dims.offsets()
    }

    #[cfg(feature = "candle")]
    fn candle(&self, dims: &FamilyDims) -> Option<Box<dyn super::candle::CandleTerms>> {
        Some(Box::new(on_candle::BucketBias(BucketBias::new(dims), dims.t5_buckets, dims.n_max)))
    }

    fn terms_f32(&self, dims: &FamilyDims) -> Box<dyn Terms<f32>> {
        Box::new(BucketBias::new(dims))
    }

    fn terms_f64(&self, dims: &FamilyDims) -> Box<dyn Terms<f64>> {
        Box::new(BucketBias::new(dims))
    }
}

/// The bucket of every offset index, and the sizes.
struct BucketBias {
    bucket_of: Vec<usize>,
    heads: usize,
}

impl BucketBias {
    fn new(dims: &FamilyDims) -> Self {
        let bucket_of = (0..dims.offsets())
            .map(|o| {
                let rel = o as i64 - (dims.n_max as i64 - 1);
                t5::bucket(rel, !dims.causal, dims.t5_buckets, dims.t5_max_distance)
            })
            .collect();
        BucketBias { bucket_of, heads: dims.heads }
    }
}

impl<F: Float> Terms<F> for BucketBias {
    fn derive(&self, p: &Params<F>, ids: &FamilyIds, mut out: ArrayViewMut2<F>) {
        for (e, b) in out.rows_mut().into_iter().zip(p.mat(ids.get(0)).rows()) {
            t5::expand_buckets(e, b, &self.bucket_of);
        }
    }

    fn scores(&self, head: &Head<F>, s: ArrayViewMut2<F>, _work: &mut Work<F>) {
        toeplitz::add_offset_rows(s, head.derived.row(head.h), head.n_max);
    }

    fn scores_backward(
        &self,
        head: &Head<F>,
        ds: ArrayView2<F>,
        _dq: ArrayViewMut2<F>,
        _dk: ArrayViewMut2<F>,
        grad: &mut [F],
        _work: &mut Work<F>,
    ) {
        let db = grad_block(grad, 0, self.heads, self.bucket_of.len()).index_axis_move(Axis(0), head.h);
        toeplitz::offset_rows_backward(db, ds, head.n_max);
    }

    fn offset_bias(&self, p: &Params<F>, ids: &FamilyIds) -> Option<ndarray::Array2<F>> {
        let mut e = ndarray::Array2::zeros((self.heads, self.bucket_of.len()));
        self.derive(p, ids, e.view_mut());
        Some(e)
    }

    fn fold_grads(&self, total: &[F], _p: &Params<F>, ids: &FamilyIds, _derived: ArrayView2<F>, grads: &mut Params<F>) {
        let g = grad_block_ref(total, 0, self.heads, self.bucket_of.len());
        for (db, de) in grads.mat_mut(ids.get(0)).rows_mut().into_iter().zip(g.rows()) {
            t5::fold_buckets(db, de, &self.bucket_of);
        }
    }
}

#[cfg(feature = "candle")]
mod on_candle {
    use crate::family::candle::{CandleCx, CandleTerms, expand, one_hot};
    use candle_core::{DType, Device, Result, Tensor};

    /// The bucket table laid out [h, n, n] through the one-hot expansion of buckets.
    pub struct BucketBias(pub(super) super::BucketBias, pub(super) usize, pub(super) usize);

    impl CandleTerms for BucketBias {
        fn constants(&self, n: usize, dtype: DType, device: &Device) -> Result<Vec<Tensor>> {
            let (bucket_of, n_max) = (&self.0.bucket_of, self.2);
            Ok(vec![one_hot(self.1, n, &|i, j| bucket_of[j + n_max - 1 - i], dtype, device)?])
        }

        fn learned_bias(&self, cx: &CandleCx) -> Result<Option<Tensor>> {
            Ok(Some(expand(cx.tensor(0), &cx.constants[0], cx.n)?))
        }
    }
}
