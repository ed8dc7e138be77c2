//! The error of a rejected configuration value.

use std::fmt;

/// A rejected configuration value: names the field, the value and what is allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid configuration: `{field}` = {value}: {allowed}")]
pub struct ConfigError {
    /// The field, as spelled in the configuration file.
    pub field: String,
    /// The rejected value, as written.
    pub value: String,
    /// What is allowed instead.
    pub allowed: String,
}

impl ConfigError {
    /// Builds an error for `field` holding `value`.
    pub fn new(field: &str, value: impl fmt::Display, allowed: impl Into<String>) -> Self {
        ConfigError { field: field.to_string(), value: value.to_string(), allowed: allowed.into() }
    }
}
