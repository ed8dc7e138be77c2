//! The candle implementation of the model (cargo feature `candle`; `cuda` adds the GPU):
//! the same configuration, tensor names and layout, formulas and optimiser as the ndarray
//! engine, written with differentiable candle ops, so a checkpoint moves between the two and
//! each checks the other.

pub mod batch;
pub mod check;
pub mod device;
pub mod differential;
pub mod fused;
pub mod grads;
pub mod model;
pub mod ops;
pub mod pass;
pub mod position;

pub use device::parse_device;
pub use model::CandleModel;
