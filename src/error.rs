//! Errors and their exit codes: bad input from the user exits 2 with one clear message,
//! an internal failure exits 1.

use std::path::{Path, PathBuf};

/// Anything that can go wrong in the toolkit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value or combination is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
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
}

impl Error {
    /// Builds a [`Error::File`] naming `path`.
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        Error::File { path: path.to_path_buf(), message: message.into() }
    }

    /// Process exit code: 2 for the user's input, 1 for internal failures, 130 when
    /// interrupted (the shell's code for Ctrl-C).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Internal(_) => 1,
            Error::Interrupted(_) => 130,
            _ => 2,
        }
    }
}

/// Result with the toolkit's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
