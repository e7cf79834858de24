//! How commands speak: exit codes, JSON on stdout, short lists for people.

use std::fmt::Display;
use std::process::ExitCode;

use serde::Serialize;

/// The meaning of a run's end (design.md, "Command line").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything done.
    Success,
    /// Finished, but some items failed; they were listed.
    Partial,
    /// Could not run: bad arguments, missing vault, archive locked or unreadable.
    CannotRun,
}

impl Exit {
    /// `Partial` when any item failed.
    pub fn failed_if(failed: bool) -> Exit {
        if failed { Exit::Partial } else { Exit::Success }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(match e {
            Exit::Success => 0,
            Exit::Partial => 1,
            Exit::CannotRun => 2,
        })
    }
}

/// Prints one JSON document on stdout.
pub(crate) fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    write_line(format_args!("{text}"));
    Ok(())
}

/// Prints a line on stdout. A closed pipe (`vaultkeep scan | head`) ends the program quietly,
/// as it would for any Unix filter.
pub(crate) fn write_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("vaultkeep: cannot write to standard output: {e}");
        std::process::exit(2);
    }
}

/// `println!` through [`write_line`].
macro_rules! say {
    ($($arg:tt)*) => { $crate::cli::output::write_line(format_args!($($arg)*)) };
}
pub(crate) use say;

/// Prints a heading with the list's full length and the items given (the first few).
pub(crate) fn list<I, T>(heading: &str, total: usize, items: I)
where
    I: Iterator<Item = T>,
    T: Display,
{
    if total == 0 {
        return;
    }
    say!("{heading} ({total}):");
    let mut shown = 0;
    for item in items {
        say!("  {item}");
        shown += 1;
    }
    if total > shown {
        say!("  … and {} more (--json lists them all)", total - shown);
    }
}

/// `word` as one shell word: plain when it is safe, else in single quotes.
pub(crate) fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_alphanumeric() || "_-./+,:@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("profiles/Org.md"), "profiles/Org.md");
        assert_eq!(shell_word("My Org.md"), "'My Org.md'");
        assert_eq!(shell_word("it's.md"), r"'it'\''s.md'");
        assert_eq!(shell_word("$(rm -rf ~)"), "'$(rm -rf ~)'");
        assert_eq!(shell_word(""), "''");
    }
}
