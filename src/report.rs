//! Pieces shared by every command's report.

use serde::{Deserialize, Serialize};

/// One thing that went wrong with one item; the run went on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The file (vault-relative), URL or archive path concerned.
    pub path: String,
    /// What went wrong, for a person.
    pub message: String,
}

impl Problem {
    /// A problem with `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}
