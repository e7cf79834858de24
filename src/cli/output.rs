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
    println!("{text}");
    Ok(())
}

/// Prints a heading and up to `limit` items, then how many were left out.
pub(crate) fn list<I, T>(heading: &str, items: I, limit: usize)
where
    I: ExactSizeIterator<Item = T>,
    T: Display,
{
    let total = items.len();
    if total == 0 {
        return;
    }
    println!("{heading} ({total}):");
    for item in items.take(limit) {
        println!("  {item}");
    }
    if total > limit {
        println!("  … and {} more (--json lists them all)", total - limit);
    }
}
