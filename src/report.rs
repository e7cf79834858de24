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

/// Bytes for people: `512 B`, `30.0 MiB`.
pub fn human_bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}

/// An error and its causes on one line, each said once: `cannot read x: Permission denied`.
/// Library errors keep their cause in `source()`, not in their own message (style.md).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
