//! The recorded versions of one vault file, following renames, and bringing one back.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use jiff::Timestamp;
use serde::Serialize;

use crate::digest::Digest;
use crate::fsutil::write_atomic;
use crate::store::{self, Event, Store, VersionRecord};

/// One entry of a file's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    /// 1 for the oldest.
    pub version: usize,
    /// When it was recorded.
    pub time: Timestamp,
    /// `created`, `modified`, `renamed` or `deleted`.
    pub event: Event,
    /// The content (for a deletion, the last content).
    pub sha256: Digest,
    /// Its size.
    pub size: u64,
    /// The path it had then.
    pub path: String,
    /// For a rename, the path before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// The versions of `path`, oldest first. A file that was renamed to `path` brings its earlier
/// history along; a file renamed away from `path` shows the rename as its last version.
pub fn history(records: &[VersionRecord], path: &str) -> Vec<Version> {
    let mut name = path.to_string();
    let mut picked: Vec<&VersionRecord> = Vec::new();
    for r in records.iter().rev() {
        if r.path == name {
            picked.push(r);
            if let (Event::Renamed, Some(from)) = (r.event, &r.from) {
                name = from.clone();
            }
        } else if r.event == Event::Renamed && r.from.as_deref() == Some(name.as_str()) {
            picked.push(r);
        }
    }
    picked
        .into_iter()
        .rev()
        .enumerate()
        .map(|(i, r)| Version {
            version: i + 1,
            time: r.time,
            event: r.event,
            sha256: r.sha256,
            size: r.size,
            path: r.path.clone(),
            from: r.from.clone(),
        })
        .collect()
}

/// Why a version could not be brought back.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// Nothing recorded under that path.
    #[error("no recorded versions of {0}")]
    NoHistory(String),
    /// The asked-for version does not exist.
    #[error("{path} has versions 1 to {count}; there is no version {asked}")]
    NoSuchVersion {
        /// The path.
        path: String,
        /// How many versions it has.
        count: usize,
        /// What was asked.
        asked: usize,
    },
    /// The destination exists and differs.
    #[error(
        "{0} exists and differs from the version asked for; use --force to overwrite it, or --output to write elsewhere"
    )]
    Exists(String),
    /// The archive's copy does not hash to its name.
    #[error(
        "object {0} is damaged (its bytes do not match its sha256); run `vaultkeep archive verify`"
    )]
    Damaged(Digest),
    /// Reading the archive failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Writing the destination failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The destination.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Where a recovered version goes.
pub enum Output<'a> {
    /// A file (the vault path by default).
    File { path: &'a Path, force: bool },
    /// Standard output.
    Stdout,
}

/// Writes version `version` (default: the newest) of `path` to `to`. Returns the version.
pub fn recover(
    store: &Store,
    path: &str,
    version: Option<usize>,
    to: Output<'_>,
) -> Result<Version, RecoverError> {
    let records = store.read_versions()?;
    let versions = history(&records, path);
    if versions.is_empty() {
        return Err(RecoverError::NoHistory(path.to_string()));
    }
    let chosen = match version {
        None => versions.last(),
        Some(v) => versions.get(v.wrapping_sub(1)),
    }
    .cloned()
    .ok_or(RecoverError::NoSuchVersion {
        path: path.to_string(),
        count: versions.len(),
        asked: version.unwrap_or(0),
    })?;
    let bytes = read_object(store, &chosen.sha256)?;
    match to {
        Output::Stdout => io::stdout()
            .write_all(&bytes)
            .map_err(|source| RecoverError::Write {
                path: "standard output".into(),
                source,
            })?,
        Output::File { path: out, force } => {
            let shown = out.display().to_string();
            match fs::read(out) {
                Ok(existing) if existing == bytes => return Ok(chosen),
                Ok(_) if !force => return Err(RecoverError::Exists(shown)),
                _ => {}
            }
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir).map_err(|source| RecoverError::Write {
                    path: shown.clone(),
                    source,
                })?;
            }
            write_atomic(out, &bytes).map_err(|source| RecoverError::Write {
                path: shown,
                source,
            })?;
        }
    }
    Ok(chosen)
}

/// An object's bytes, checked against its name.
pub fn read_object(store: &Store, digest: &Digest) -> Result<Vec<u8>, RecoverError> {
    store.objects().read(digest).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData => RecoverError::Damaged(*digest),
        _ => store::Error::io("read", &store.objects().path(digest))(e).into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(event: Event, path: &str, from: Option<&str>, content: &[u8]) -> VersionRecord {
        VersionRecord {
            time: Timestamp::UNIX_EPOCH,
            event,
            path: path.into(),
            from: from.map(String::from),
            sha256: Digest::of(content),
            size: content.len() as u64,
        }
    }

    fn events(records: &[VersionRecord], path: &str) -> Vec<(usize, Event, String)> {
        history(records, path)
            .into_iter()
            .map(|v| (v.version, v.event, v.path))
            .collect()
    }

    #[test]
    fn history_follows_a_rename_back_to_the_old_path() {
        let log = vec![
            rec(Event::Created, "a.md", None, b"1"),
            rec(Event::Created, "other.md", None, b"x"),
            rec(Event::Modified, "a.md", None, b"2"),
            rec(Event::Renamed, "b.md", Some("a.md"), b"2"),
            rec(Event::Modified, "b.md", None, b"3"),
        ];
        assert_eq!(
            events(&log, "b.md"),
            vec![
                (1, Event::Created, "a.md".into()),
                (2, Event::Modified, "a.md".into()),
                (3, Event::Renamed, "b.md".into()),
                (4, Event::Modified, "b.md".into()),
            ]
        );
        // The old path's history ends with the move.
        assert_eq!(events(&log, "a.md").last().unwrap().1, Event::Renamed);
    }

    #[test]
    fn deleted_files_keep_their_history() {
        let log = vec![
            rec(Event::Created, "a.md", None, b"1"),
            rec(Event::Deleted, "a.md", None, b"1"),
        ];
        let h = history(&log, "a.md");
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].sha256, Digest::of(b"1"));
    }
}
