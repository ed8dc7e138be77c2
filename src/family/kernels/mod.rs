//! The arithmetic that position families share: Toeplitz rows and the skewed layout
//! (offset j − i at index (j − i) + n_max − 1, see [`toeplitz`]), terms against a relative
//! table, sinusoids, rotary tables, ALiBi slopes and T5's buckets.

pub mod alibi;
pub mod relative;
pub mod rope;
pub mod sinusoid;
pub mod t5;
pub mod toeplitz;
