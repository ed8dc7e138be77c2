//! Choosing a candle device from `--device cpu|cuda:N`.

use crate::error::{Error, Result};
use candle_core::Device;

/// The device `text` names: `cpu`, or `cuda:N` (N from 0; `cuda` means `cuda:0`). Asking
/// for CUDA in a build without the `cuda` feature, or on a machine without a GPU, is an
/// error that says so.
pub fn parse_device(text: &str) -> Result<Device> {
    if text == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = match text.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| Error::Input(format!("--device {text}: expected cpu or cuda:N, e.g. cuda:0")))?,
        None => return Err(Error::Input(format!("--device {text}: expected cpu or cuda:N, e.g. cuda:0"))),
    };
    if !cfg!(feature = "cuda") {
        return Err(Error::Input(format!(
            "--device {text}: this build has no CUDA support; rebuild with `cargo build --release --features cuda` (see README, \"GPU\")"
        )));
    }
    let device = Device::new_cuda(ordinal)
        .map_err(|e| Error::Input(format!("--device {text}: no usable CUDA device here ({e})")))?;
    #[cfg(feature = "cuda")]
    if let Device::Cuda(cuda) = &device {
        // SAFETY: candle runs every kernel and copy of a device on its one stream, so the
        // per-buffer events that order work across streams are never needed.
        unsafe { cuda.disable_event_tracking() };
    }
    Ok(device)
}
