//! The scan index: for every recorded, present vault file, its stat data and content address,
//! so an unchanged file costs a stat and not a read (git's index does the same).
//!
//! It is derived from the version log: it remembers how much of the log it reflects
//! (`log_end`), and loading replays whatever the log holds beyond that, so a crash between
//! appending records and saving the index loses nothing. Without an index every file is
//! re-hashed once.

use std::fs;
use std::io;
use std::path::Path;

use rustc_hash::FxHashMap;

use super::{Error, Event, Journal, VersionRecord};
use crate::digest::Digest;
use crate::fsutil::write_derived;

/// The recorded state of the vault and what each file looked like on disk.
#[derive(Debug, Clone, Default)]
pub struct Index {
    /// Bytes of `versions.jsonl` this index reflects.
    pub log_end: u64,
    /// Lines of `versions.jsonl` this index reflects.
    pub log_lines: usize,
    /// When the scan that wrote this index started (ns since the epoch). A file modified at
    /// or after this instant may have changed again within the same clock tick, so it is
    /// re-hashed next time ("racily clean" in git's words).
    pub scan_started_ns: i128,
    /// Present files, by vault-relative path.
    pub files: FxHashMap<String, Entry>,
}

/// One file as last recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Content address of the recorded version.
    pub sha256: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch; 0 when unknown (forces a re-hash).
    pub mtime_ns: i64,
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
            Ok(bytes) => decode(&bytes).unwrap_or_else(|| {
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
        write_derived(path, &encode(self)).map_err(Error::io("write", path))
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

/// The file starts with this line, so `head -1` tells what it is.
const MAGIC: &[u8] = b"vaultkeep scan index 1\n";

/// The index on disk: compact and quick to read, since every scan reads it whole. After the
/// magic line: log_end, log_lines (u64), scan_started_ns (i128), the entry count (u64), then
/// per entry the path length (u32), the path, sha256 (32 bytes), size (u64), mtime_ns (i128)
/// and inode (u64); all little-endian.
fn encode(index: &Index) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 40 + index.files.len() * 120);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&index.log_end.to_le_bytes());
    out.extend_from_slice(&(index.log_lines as u64).to_le_bytes());
    out.extend_from_slice(&index.scan_started_ns.to_le_bytes());
    out.extend_from_slice(&(index.files.len() as u64).to_le_bytes());
    for (path, e) in &index.files {
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(e.sha256.as_bytes());
        out.extend_from_slice(&e.size.to_le_bytes());
        out.extend_from_slice(&i128::from(e.mtime_ns).to_le_bytes());
        out.extend_from_slice(&e.ino.to_le_bytes());
    }
    out
}

fn decode(bytes: &[u8]) -> Option<Index> {
    let mut r = Reader(bytes.strip_prefix(MAGIC)?);
    let log_end = u64::from_le_bytes(r.take()?);
    let log_lines = u64::from_le_bytes(r.take()?) as usize;
    let scan_started_ns = i128::from_le_bytes(r.take()?);
    let count = u64::from_le_bytes(r.take()?) as usize;
    let mut files =
        FxHashMap::with_capacity_and_hasher(count.min(bytes.len() / 64), Default::default());
    for _ in 0..count {
        let len = u32::from_le_bytes(r.take()?) as usize;
        let path = std::str::from_utf8(r.slice(len)?).ok()?.to_string();
        let entry = Entry {
            sha256: Digest::from_bytes(r.take()?),
            size: u64::from_le_bytes(r.take()?),
            mtime_ns: i64::try_from(i128::from_le_bytes(r.take()?)).unwrap_or(0),
            ino: u64::from_le_bytes(r.take()?),
        };
        files.insert(path, entry);
    }
    r.0.is_empty().then_some(Index {
        log_end,
        log_lines,
        scan_started_ns,
        files,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn slice(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.slice(N)?.try_into().ok()
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
            device: None,
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
    fn the_index_round_trips_and_a_truncated_one_is_refused() {
        let mut index = Index {
            log_end: 7,
            scan_started_ns: -3,
            ..Index::default()
        };
        index.files.insert(
            "a/b é.md".into(),
            Entry {
                sha256: Digest::of(b"x"),
                size: 1,
                mtime_ns: 123,
                ino: 9,
            },
        );
        let bytes = encode(&index);
        let back = decode(&bytes).unwrap();
        assert_eq!((back.log_end, back.scan_started_ns), (7, -3));
        assert_eq!(back.files, index.files);
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
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
