//! A run saved between two steps, to be continued later ([`crate::train::Trainer::resume`]):
//! the run's configuration, the step, the data stream's position, Adam's moments, the
//! parameters and the curve so far, in one safetensors file (tensors `params`, `adam.m`,
//! `adam.v`, flat in the parameter layout's order; metadata `format` =
//! `urpe-train-state-v1` and `state` = the rest as JSON), written atomically.

use crate::error::{Error, Result};
use crate::optim::AdamMoments;
use crate::run::{CurvePoint, TrainConfig};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Value of the `format` metadata key.
pub const FORMAT: &str = "urpe-train-state-v1";

/// Everything a run needs to continue.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    /// The run's configuration.
    pub config: TrainConfig,
    /// Steps done.
    pub step: usize,
    /// Position of the data stream (ChaCha8 word position from the data seed).
    pub data_word_pos: u128,
    /// Seconds trained so far.
    pub seconds: f64,
    /// The curve so far.
    pub curve: Vec<CurvePoint>,
    /// Parameters, flat in the layout's order.
    pub params: Vec<f32>,
    /// Adam's moments and update count.
    pub moments: AdamMoments,
}

/// The JSON part of the file.
#[derive(Serialize, Deserialize)]
struct Meta {
    config: TrainConfig,
    step: usize,
    /// u128 as text (JSON numbers stop at 2⁵³).
    data_word_pos: String,
    seconds: f64,
    adam_t: i32,
    curve: Vec<CurvePoint>,
}

fn bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Writes `state` to `path` atomically (a crash leaves the previous file or the new one).
pub fn save(state: &TrainState, path: &Path) -> Result<()> {
    let meta = Meta {
        config: state.config.clone(),
        step: state.step,
        data_word_pos: state.data_word_pos.to_string(),
        seconds: state.seconds,
        adam_t: state.moments.t,
        curve: state.curve.clone(),
    };
    let json = serde_json::to_string(&meta).map_err(|e| Error::Internal(e.to_string()))?;
    let data = [bytes(&state.params), bytes(&state.moments.m), bytes(&state.moments.v)];
    let views = ["params", "adam.m", "adam.v"]
        .into_iter()
        .zip(&data)
        .map(|(name, b)| {
            TensorView::new(Dtype::F32, vec![b.len() / 4], b)
                .map(|v| (name.to_string(), v))
                .map_err(|e| Error::Internal(format!("safetensors: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let file = crate::checkpoint::safetensors_bytes(views, [("format", FORMAT.to_string()), ("state", json)])?;
    crate::io::write_atomic(path, &file)
}

/// Reads a state written by [`save`]; a file that is not one is an error naming it.
pub fn load(path: &Path) -> Result<TrainState> {
    let file = crate::io::read(path)?;
    let bad = |what: String| Error::file(path, format!("not a saved training state ({FORMAT}): {what}"));
    let (_, header) = SafeTensors::read_metadata(&file).map_err(|e| bad(e.to_string()))?;
    let info = header.metadata().clone().unwrap_or_default();
    if info.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(bad(match info.get("format") {
            Some(format) => format!("its `format` metadata is `{format}`"),
            None => "it has no `format` metadata".into(),
        }));
    }
    let meta: Meta = serde_json::from_str(info.get("state").ok_or_else(|| bad("no `state` metadata".into()))?)
        .map_err(|e| bad(format!("the `state` metadata does not parse ({e})")))?;
    let st = SafeTensors::deserialize(&file).map_err(|e| bad(e.to_string()))?;
    let tensor = |name: &str| -> Result<Vec<f32>> {
        let view = st.tensor(name).map_err(|_| bad(format!("tensor `{name}` is missing")))?;
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!("tensor `{name}` is {:?}, not F32", view.dtype())));
        }
        Ok(view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
    };
    let data_word_pos = meta
        .data_word_pos
        .parse()
        .map_err(|_| bad(format!("`data_word_pos` = `{}` is not a number", meta.data_word_pos)))?;
    Ok(TrainState {
        config: meta.config,
        step: meta.step,
        data_word_pos,
        seconds: meta.seconds,
        curve: meta.curve,
        params: tensor("params")?,
        moments: AdamMoments { m: tensor("adam.m")?, v: tensor("adam.v")?, t: meta.adam_t },
    })
}
