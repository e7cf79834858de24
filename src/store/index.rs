//! The scan index: for every recorded, present vault file, its stat data and content address,
//! so an unchanged file costs a stat and not a read (git's index does the same).
//!
//! It is derived from the version log: it remembers how much of the log it reflects
//! (`log_end`), and loading replays whatever the log holds beyond that, so a crash between
//! appending records and saving the index loses nothing. Without an index every file is
//! re-hashed once.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Error, Event, Journal, VersionRecord};
use crate::digest::Digest;
use crate::fsutil::write_atomic;

const FORMAT: u32 = 1;

/// The recorded state of the vault and what each file looked like on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    format: u32,
    /// Bytes of `versions.jsonl` this index reflects.
    pub log_end: u64,
    /// Lines of `versions.jsonl` this index reflects.
    pub log_lines: usize,
    /// When the scan that wrote this index started (ns since the epoch). A file modified at
    /// or after this instant may have changed again within the same clock tick, so it is
    /// re-hashed next time ("racily clean" in git's words).
    pub scan_started_ns: i128,
    /// Present files, by vault-relative path.
    pub files: HashMap<String, Entry>,
}

impl Default for Index {
    fn default() -> Index {
        Index {
            format: FORMAT,
            log_end: 0,
            log_lines: 0,
            scan_started_ns: 0,
            files: HashMap::new(),
        }
    }
}

/// One file as last recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Content address of the recorded version.
    pub sha256: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch; 0 when unknown (forces a re-hash).
    pub mtime_ns: i128,
    /// Inode number; 0 when unknown.
    pub ino: u64,
}

impl Entry {
    /// An entry known only from the log: its stat data is unknown.
    pub fn from_record(r: &VersionRecord) -> Entry {
        Entry {
            sha256: r.sha256,
            size: r.size,
            mtime_ns: 0,
            ino: 0,
        }
    }
}

impl Index {
    pub(super) fn load(path: &Path, log: &Journal) -> Result<Index, Error> {
        let mut index = match fs::read(path) {
            Ok(bytes) => serde_json::from_slice::<Index>(&bytes)
                .ok()
                .filter(|i| i.format == FORMAT)
                .unwrap_or_else(|| {
                    tracing::warn!(path = %path.display(), "scan index unreadable; files will be re-hashed once");
                    Index::default()
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Index::default(),
            Err(e) => return Err(Error::io("read", path)(e)),
        };
        let log_len = fs::metadata(log.path()).map(|m| m.len()).unwrap_or(0);
        if log_len < index.log_end {
            tracing::warn!(
                "version log is shorter than the scan index says; rebuilding the index from the log"
            );
            index = Index::default();
        }
        let newer = log
            .read_from::<VersionRecord>(index.log_end, index.log_lines)
            .map_err(Error::io("read", log.path()))?;
        for (_, record) in &newer.records {
            index.apply(record);
        }
        index.log_lines += newer.records.len() + newer.bad.len();
        index.log_end = newer.end;
        Ok(index)
    }

    pub(super) fn save(&self, path: &Path) -> Result<(), Error> {
        let bytes =
            serde_json::to_vec(self).map_err(|e| Error::io("encode", path)(io::Error::other(e)))?;
        write_atomic(path, &bytes).map_err(Error::io("write", path))
    }

    /// Updates the recorded state with one record of the log.
    pub fn apply(&mut self, record: &VersionRecord) {
        match record.event {
            Event::Created | Event::Modified => {
                self.files
                    .insert(record.path.clone(), Entry::from_record(record));
            }
            Event::Renamed => {
                let moved = record
                    .from
                    .as_ref()
                    .and_then(|from| self.files.remove(from));
                let entry = match moved {
                    Some(e) if e.sha256 == record.sha256 => e,
                    _ => Entry::from_record(record),
                };
                self.files.insert(record.path.clone(), entry);
            }
            Event::Deleted => {
                self.files.remove(&record.path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn record(event: Event, path: &str, from: Option<&str>, content: &[u8]) -> VersionRecord {
        VersionRecord {
            time: Timestamp::UNIX_EPOCH,
            event,
            path: path.into(),
            from: from.map(String::from),
            sha256: Digest::of(content),
            size: content.len() as u64,
        }
    }

    #[test]
    fn the_index_catches_up_with_records_it_has_not_seen() {
        let dir = tempfile::tempdir().unwrap();
        let log = Journal::new(dir.path().join("versions.jsonl"));
        let path = dir.path().join("index.json");
        log.append(&[record(Event::Created, "a.md", None, b"a")])
            .unwrap();
        let index = Index::load(&path, &log).unwrap();
        index.save(&path).unwrap();
        // A crash after appending these, before the index was saved:
        log.append(&[
            record(Event::Renamed, "b.md", Some("a.md"), b"a"),
            record(Event::Created, "c.md", None, b"c"),
            record(Event::Deleted, "c.md", None, b"c"),
        ])
        .unwrap();
        let index = Index::load(&path, &log).unwrap();
        let mut paths: Vec<_> = index.files.keys().cloned().collect();
        paths.sort();
        assert_eq!(paths, vec!["b.md"]);
        assert_eq!(index.log_lines, 4);
    }

    #[test]
    fn a_corrupt_index_is_rebuilt_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = Journal::new(dir.path().join("versions.jsonl"));
        let path = dir.path().join("index.json");
        log.append(&[record(Event::Created, "a.md", None, b"a")])
            .unwrap();
        fs::write(&path, b"{ not json").unwrap();
        let index = Index::load(&path, &log).unwrap();
        assert_eq!(index.files["a.md"].mtime_ns, 0);
    }
}
