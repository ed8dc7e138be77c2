//! `urpe predict`: run a saved model on the user's own sequences.

use super::outln;
use crate::config::InputKind;
use crate::error::{Error, Result};
use crate::nn::{Model, ModelInput};
use crate::npy::{NpyArray, npy_f32_bytes, read_npy};
use ndarray::{Array2, Ix2, Ix3};
use std::path::PathBuf;

/// Run a checkpoint on sequences from a .npy file and write its outputs to a .npy file.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Input: float32 [batch, n, d_in] for real-input models, integer token ids [batch, n]
for token models; n ≤ the model's n_max. Output: float32 [batch, n, out] (logits for
class models).

Example:
  python -c \"import numpy as np; np.save('X.npy', np.ones((4, 16, 8), np.float32))\"
  urpe witness --n 16 --d 8 --save w.safetensors
  urpe predict --checkpoint w.safetensors --input X.npy --output Y.npy")]
pub struct Args {
    /// Checkpoint written by urpe (safetensors).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Input sequences (.npy).
    #[arg(long)]
    input: PathBuf,
    /// Where to write the outputs (.npy, written atomically).
    #[arg(long)]
    output: PathBuf,
}

fn token_ids(a: ndarray::ArrayD<i64>, path: &std::path::Path) -> Result<Array2<usize>> {
    let a = a.into_dimensionality::<Ix2>().map_err(|_| unreachable_shape(path))?;
    if let Some(&bad) = a.iter().find(|&&t| t < 0) {
        return Err(Error::file(path, format!("token id {bad} is negative")));
    }
    Ok(a.mapv(|t| t as usize))
}

fn unreachable_shape(path: &std::path::Path) -> Error {
    Error::Internal(format!("{}: rank was checked", path.display()))
}

pub fn run(a: Args) -> Result<()> {
    let model: Model<f32> = crate::checkpoint::load(&a.checkpoint)?;
    let array = read_npy(&a.input)?;
    let shape = array.shape().to_vec();
    let expected = match model.config.input {
        InputKind::Real { d_in } => format!("float32 [batch, n, {d_in}]"),
        InputKind::Tokens { vocab } => format!("integer token ids [batch, n] in 0..{vocab}"),
    };
    let mismatch = |what: &str| {
        Error::file(
            &a.input,
            format!("{what} {:?}, but the model ({}) reads {expected}", shape, a.checkpoint.display()),
        )
    };
    let owned_tokens;
    let owned_real;
    let input = match (array, model.config.input) {
        (NpyArray::Float32(x), InputKind::Real { .. }) if shape.len() == 3 => {
            owned_real = x.into_dimensionality::<Ix3>().map_err(|_| unreachable_shape(&a.input))?;
            ModelInput::Real(owned_real.view())
        }
        (NpyArray::Int(t), InputKind::Tokens { .. }) if shape.len() == 2 => {
            owned_tokens = token_ids(t, &a.input)?;
            ModelInput::Tokens(owned_tokens.view())
        }
        (arr, _) => return Err(mismatch(&format!("the input is {} of shape", arr.dtype_name()))),
    };
    model.check_input(&input).map_err(|e| Error::file(&a.input, e.to_string()))?;
    let out = model.predict(&input)?;
    let bytes = npy_f32_bytes(out.shape(), out.iter().copied());
    crate::io::write_atomic(&a.output, &bytes)?;
    outln!(
        "wrote {} float32 {:?} ({} model on {} sequences of length {})",
        a.output.display(),
        out.shape(),
        model.config.label(),
        out.dim().0,
        out.dim().1
    )?;
    Ok(())
}
