//! Position families: the arithmetic they share ([`kernels`]).

pub mod kernels;
