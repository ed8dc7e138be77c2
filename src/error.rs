//! Errors and their exit codes (one table, [`EXIT_CODES`], shown by `urpe --help` and the
//! README): bad input from the user exits 2 with one clear message, an internal failure 1,
//! a training run that finished diverged 3, an interrupted command 130.

use std::path::{Path, PathBuf};

/// Anything that can go wrong in the toolkit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value or combination is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file the user gave is unreadable, malformed or does not fit the model.
    #[error("{}: {message}", path.display())]
    File {
        /// The offending file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Any other invalid input (command-line values, array shapes).
    #[error("{0}")]
    Input(String),
    /// A failure that is not the user's fault.
    #[error("internal error: {0}")]
    Internal(String),
    /// Stopped on request (Ctrl-C) before the work was done; what was saved is kept.
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// A training run ended on a non-finite loss or gradient; its record is saved.
    #[error("diverged: {0}")]
    Diverged(String),
    /// Standard output was closed by its reader (`urpe … | head -1`): stop quietly.
    #[error("standard output closed")]
    OutputClosed,
}

/// The exit codes of every command, as `urpe --help` and the README print them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0    success (also when the reader of standard output closes it early, e.g. `| head -1`)
  1    internal failure (a bug: please report it)
  2    bad input: one line names the flag, field or file and what is allowed; nothing written
  3    `urpe train`: the run diverged (non-finite loss); its record and last model are saved
  130  interrupted (Ctrl-C or SIGTERM): finished runs and stopped runs' states are saved";

impl Error {
    /// Builds a [`Error::File`] naming `path`.
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        Error::File { path: path.to_path_buf(), message: message.into() }
    }

    /// Process exit code (see [`EXIT_CODES`]): 2 for the user's input, 1 for internal
    /// failures, 3 for a diverged run, 130 when interrupted (the shell's code for Ctrl-C),
    /// 0 when standard output was closed by its reader.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Internal(_) => 1,
            Error::Diverged(_) => 3,
            Error::Interrupted(_) => 130,
            Error::OutputClosed => 0,
            _ => 2,
        }
    }
}

/// Result with the toolkit's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

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
    pub fn new(field: &str, value: impl std::fmt::Display, allowed: impl Into<String>) -> Self {
        ConfigError { field: field.to_string(), value: value.to_string(), allowed: allowed.into() }
    }
}
