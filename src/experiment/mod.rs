//! Experiments: grid expansion and sharding, the results store, sweeps, statistics.

pub mod builtin;
pub mod settings;
pub mod spec;
pub mod stats;
pub mod store;
pub mod sweep;

pub use spec::{Experiment, Job};
pub use store::{Store, StoredRun};
