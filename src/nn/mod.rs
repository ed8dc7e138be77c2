//! The CPU engine on ndarray: one file per layer kind, position families, the model.

pub mod activation;
pub mod attention;
pub mod block;
pub mod bos;
pub mod ffn;
pub mod layernorm;
pub mod layout;
pub mod linear;
pub mod loss;
pub mod model;

pub use crate::params::{ParamLayout, Params, TensorId, TensorSpec};
pub use layout::ModelLayout;
pub use model::{BackwardWorkspace, ForwardCache, Model, ModelInput};
