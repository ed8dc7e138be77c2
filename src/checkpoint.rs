//! Checkpoints in safetensors (the format of README, "Checkpoint format"): float32 tensors under the names of
//! [`crate::nn::ModelLayout`], row-vector convention, metadata `format` =
//! `urpe-checkpoint-v1` and `config` = the model configuration as JSON.
//!
//! Saving an f32 model and loading it back is bit-exact; an f64 model is rounded to f32.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::nn::Model;
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// Value of the `format` metadata key.
pub const FORMAT: &str = "urpe-checkpoint-v1";

/// The checkpoint bytes of `model`: the same model gives the same bytes (the header's JSON
/// is written with its keys sorted, see [`canonical_header`]).
pub fn to_bytes<F: Float>(model: &Model<F>) -> Result<Vec<u8>> {
    let layout = &model.layout.tensors;
    let bytes: Vec<Vec<u8>> = layout
        .specs()
        .iter()
        .map(|s| model.params.data[s.range()].iter().flat_map(|v| v.f32().to_le_bytes()).collect())
        .collect();
    let views = layout
        .specs()
        .iter()
        .zip(&bytes)
        .map(|(s, b)| Ok((s.name.clone(), TensorView::new(Dtype::F32, s.shape.clone(), b).map_err(internal)?)))
        .collect::<Result<Vec<_>>>()?;
    safetensors_bytes(views, [("format", FORMAT.to_string()), ("config", model.config.to_json())])
}

/// A safetensors file of `tensors` and `metadata` whose bytes depend on nothing else: the
/// header's JSON objects in key order (see [`canonical_header`]).
pub(crate) fn safetensors_bytes<'a, const N: usize>(
    tensors: Vec<(String, TensorView<'a>)>,
    metadata: [(&str, String); N],
) -> Result<Vec<u8>> {
    let metadata = metadata.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<HashMap<_, _>>();
    canonical_header(safetensors::serialize(tensors, Some(metadata)).map_err(internal)?)
}

/// The same safetensors file with its header's JSON objects in key order. `safetensors`
/// writes the metadata from a `HashMap`, whose order changes from one map to the next, so
/// two saves of one model could differ in their first bytes (readers look keys up by name,
/// so nothing else changes). The header stays padded with spaces to a multiple of eight
/// bytes, as `safetensors` writes it, and the tensor data is copied unchanged.
fn canonical_header(file: Vec<u8>) -> Result<Vec<u8>> {
    let bad = |what: &str| Error::Internal(format!("safetensors wrote {what}"));
    let len = u64::from_le_bytes(file.get(..8).ok_or_else(|| bad("no header"))?.try_into().expect("eight bytes"));
    let end = usize::try_from(len).ok().and_then(|l| l.checked_add(8)).filter(|&e| e <= file.len());
    let end = end.ok_or_else(|| bad("a header longer than the file"))?;
    // serde_json's objects are ordered maps (no `preserve_order` feature), so re-encoding sorts
    let header: serde_json::Value = serde_json::from_slice(file[8..end].trim_ascii_end())
        .map_err(|e| bad(&format!("a header that is not JSON: {e}")))?;
    let mut text = serde_json::to_vec(&header).map_err(|e| bad(&format!("an unencodable header: {e}")))?;
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + file.len() - end);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&file[end..]);
    Ok(out)
}

fn internal(e: SafeTensorError) -> Error {
    Error::Internal(format!("safetensors: {e}"))
}

/// Saves `model` to `path` atomically (a crash leaves the old file or the new one).
pub fn save<F: Float>(model: &Model<F>, path: &Path) -> Result<()> {
    crate::io::write_atomic(path, &to_bytes(model)?)
}

/// Loads the model a checkpoint describes; the configuration comes from its metadata.
pub fn load<F: Float>(path: &Path) -> Result<Model<F>> {
    from_bytes(&crate::io::read(path)?, path)
}

/// Loads a checkpoint that must hold a model of configuration `expected`; a different
/// configuration is an error that lists the differing fields.
pub fn load_expecting<F: Float>(path: &Path, expected: &ModelConfig) -> Result<Model<F>> {
    let model = load(path)?;
    let diff = expected.differences(&model.config);
    if !diff.is_empty() {
        return Err(Error::file(
            path,
            format!("the checkpoint's configuration does not match (expected vs checkpoint): {}", diff.join("; ")),
        ));
    }
    Ok(model)
}

fn describe(e: &SafeTensorError) -> String {
    match e {
        SafeTensorError::MetadataIncompleteBuffer | SafeTensorError::InvalidOffset(_) => {
            format!("truncated or corrupt: the header's tensor offsets do not match the file's size ({e})")
        }
        _ => format!("not a safetensors file ({e})"),
    }
}

/// Parses checkpoint bytes; `path` names the source in errors.
pub fn from_bytes<F: Float>(bytes: &[u8], path: &Path) -> Result<Model<F>> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| Error::file(path, describe(&e)))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| Error::file(path, describe(&e)))?;
    let info = meta.metadata().clone().unwrap_or_default();
    match info.get("format").map(String::as_str) {
        Some(FORMAT) => {}
        Some(other) => {
            return Err(Error::file(path, format!("format `{other}` is not supported; this version reads `{FORMAT}`")));
        }
        None => {
            return Err(Error::file(
                path,
                format!("no `format` metadata: a safetensors file, but not a urpe checkpoint (`{FORMAT}`)"),
            ));
        }
    }
    let config_text = info
        .get("config")
        .ok_or_else(|| Error::file(path, "no `config` metadata: the checkpoint does not say which model it holds"))?;
    let config = ModelConfig::from_json(config_text)
        .map_err(|e| Error::file(path, format!("the `config` metadata is not a valid model configuration: {e}")))?;
    let mut model = Model::<F>::zeros(config)?;
    let layout = model.layout.tensors.clone();
    for spec in layout.specs() {
        let view = st.tensor(&spec.name).map_err(|_| {
            Error::file(
                path,
                format!(
                    "tensor `{}` is missing: a {} model needs it (shape {:?})",
                    spec.name,
                    model.config.label(),
                    spec.shape
                ),
            )
        })?;
        if view.dtype() != Dtype::F32 {
            return Err(Error::file(
                path,
                format!("tensor `{}` is {:?}; checkpoints store F32", spec.name, view.dtype()),
            ));
        }
        if view.shape() != spec.shape.as_slice() {
            return Err(Error::file(
                path,
                format!(
                    "tensor `{}` has shape {:?}, but the configuration needs {:?}",
                    spec.name,
                    view.shape(),
                    spec.shape
                ),
            ));
        }
        let values = &mut model.params.data[spec.range()];
        for (v, chunk) in values.iter_mut().zip(view.data().chunks_exact(4)) {
            *v = F::c(f32::from_le_bytes(chunk.try_into().expect("4 bytes")) as f64);
        }
    }
    if let Some(extra) = st.names().into_iter().find(|name| layout.find(name).is_none()) {
        return Err(Error::file(
            path,
            format!(
                "tensor `{extra}` does not belong to a {} model: the tensors and the `config` metadata disagree",
                model.config.label()
            ),
        ));
    }
    Ok(model)
}
