//! The exact theory: target functions with their floors, and the URPE witness.

pub mod targets;
pub mod witness;

pub use targets::{Floor, FloorEstimate, Inputs, Outputs, Sample, Target, TargetKind};
