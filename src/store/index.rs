//! The scan index: for every recorded, present vault file, its stat data and content address,
//! so an unchanged file costs a stat and not a read (git's index does the same).
//!
//! It is derived from the version log: it remembers how much of the log it reflects
//! (`log_end`), and loading replays whatever the log holds beyond that, so a crash between
//! appending records and saving the index loses nothing. Without an index every file is
//! re-hashed once.
//!
//! A scan that changed a few entries appends them to `index.changes` instead of rewriting
//! the whole index (10 MB at 84,000 files, which a daemon would otherwise write at every
//! save of a note). The change log names the index it applies to, each block carries its
//! checksum, and once it grows past a quarter of the index the index is rewritten whole and
//! the change log removed. A change log that is torn or belongs to another index is ignored
//! from the damage on: the version log still brings the index up to date.

use std::fs;
use std::io;
use std::path::Path;

use rustc_hash::{FxHashMap, FxHashSet};

use super::{Error, Event, Journal, VersionRecord};
use crate::digest::Digest;
use crate::fsutil::{Replace, replace_streaming};

/// The recorded state of the vault and what each file looked like on disk.
#[derive(Debug, Clone, Default)]
pub struct Index {
    /// Paths whose entries changed since the index was read or saved; `None` when too many
    /// did for a change log to be worth it.
    touched: Option<FxHashSet<String>>,
    /// What the files on disk hold.
    disk: OnDisk,
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

/// The index files as last read or written.
#[derive(Debug, Clone, Default)]
struct OnDisk {
    /// The whole index's header (log_end, log_lines, scan_started_ns), which names it for its
    /// change log; `None` when there is none to append changes to.
    base: Option<(u64, u64, i128)>,
    /// The whole index's size in bytes.
    base_bytes: u64,
    /// Bytes of the change log that apply to it (0: none yet).
    changes_bytes: u64,
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
    /// Reads the index at `path` and its change log at `changes`, then brings it up to `log`.
    pub(super) fn load(path: &Path, changes: &Path, log: &Journal) -> Result<Index, Error> {
        let mut index = match fs::File::open(path) {
            Ok(file) => {
                let mut stream = Stream::new(file);
                match decode(&mut stream) {
                    Some(mut index) => {
                        index.disk.base = Some(index.header());
                        index.disk.base_bytes = stream.read;
                        index.read_changes(changes);
                        index
                    }
                    None => {
                        if let Some(e) = stream.failed {
                            return Err(Error::io("read", path)(e));
                        }
                        tracing::warn!(path = %path.display(), "scan index unreadable; files will be re-hashed once");
                        Index::default()
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Index::default(),
            Err(e) => return Err(Error::io("read", path)(e)),
        };
        index.touched = Some(FxHashSet::default());
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

    /// Saves the index: its changes appended to `changes` when they are few, else the whole
    /// index to `path` (atomically) and the change log removed.
    pub(super) fn save(&mut self, path: &Path, changes: &Path) -> Result<(), Error> {
        if let (Some(touched), Some(base)) = (&self.touched, self.disk.base) {
            let block = encode_changes(self, touched);
            let grown = self
                .disk
                .changes_bytes
                .saturating_add(block.len() as u64 + 128);
            if grown <= self.disk.base_bytes / 4 {
                match append_changes(changes, base, self.disk.changes_bytes, &block) {
                    Ok(written) => {
                        self.disk.changes_bytes = written;
                        self.touched = Some(FxHashSet::default());
                        return Ok(());
                    }
                    Err(e) => tracing::debug!(
                        "cannot append to the index's change log ({e}); rewriting the index"
                    ),
                }
            }
        }
        let mut written = 0;
        replace_streaming(path, &Replace::default(), |w| {
            written = encode(self, w)?;
            Ok(())
        })
        .map_err(Error::io("write", path))?;
        match fs::remove_file(changes) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", changes)(e)),
        }
        self.disk = OnDisk {
            base: Some(self.header()),
            base_bytes: written,
            changes_bytes: 0,
        };
        self.touched = Some(FxHashSet::default());
        Ok(())
    }

    /// Sets a present file's stat data and content address (what a scan saw).
    pub fn set(&mut self, path: &str, entry: Entry) {
        if let Some(slot) = self.files.get_mut(path) {
            *slot = entry;
            self.touch(path);
        }
    }

    fn header(&self) -> (u64, u64, i128) {
        (self.log_end, self.log_lines as u64, self.scan_started_ns)
    }

    /// Notes a changed entry, until so many changed that the whole index is cheaper to write.
    fn touch(&mut self, path: &str) {
        let most = self.files.len() / 8 + 64;
        if let Some(touched) = &mut self.touched {
            if touched.len() >= most {
                self.touched = None;
            } else {
                touched.insert(path.to_string());
            }
        }
    }

    /// Applies the change log, if it belongs to this index, up to its first damaged block.
    fn read_changes(&mut self, changes: &Path) {
        let Ok(bytes) = fs::read(changes) else {
            return;
        };
        let Some(rest) = bytes.strip_prefix(CHANGES_MAGIC) else {
            return;
        };
        let mut r = Reader(rest);
        if r.header() != self.disk.base {
            return;
        }
        let mut good = bytes.len() - r.0.len();
        while let Some(block) = next_block(&mut r) {
            if apply_changes(self, block).is_none() {
                break;
            }
            good = bytes.len() - r.0.len();
        }
        // The next block goes where the last whole one ended: a torn tail is overwritten.
        self.disk.changes_bytes = good as u64;
    }

    /// Updates the recorded state with one record of the log.
    pub fn apply(&mut self, record: &VersionRecord) {
        self.touch(&record.path);
        if let Some(from) = &record.from {
            self.touch(from);
        }
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
fn encode(index: &Index, out: &mut dyn io::Write) -> io::Result<u64> {
    // Through a small buffer, entry by entry: saving never holds the whole index twice.
    let mut entry = Vec::with_capacity(256);
    let mut written = 0;
    let mut put = |bytes: &[u8]| -> io::Result<()> {
        written += bytes.len() as u64;
        out.write_all(bytes)
    };
    put(MAGIC)?;
    put_header(&mut entry, index.header());
    entry.extend_from_slice(&(index.files.len() as u64).to_le_bytes());
    put(&entry)?;
    for (path, e) in &index.files {
        entry.clear();
        put_path(&mut entry, path);
        put_entry(&mut entry, e);
        put(&entry)?;
    }
    Ok(written)
}

/// Decodes what [`encode`] wrote as it is read, a buffer at a time: loading a large index
/// never holds its file's bytes and the entries they decode into at once.
fn decode(r: &mut impl Source) -> Option<Index> {
    if r.take::<{ MAGIC.len() }>()? != *MAGIC {
        return None;
    }
    let (log_end, log_lines, scan_started_ns) = r.header()?;
    let count = u64::from_le_bytes(r.take()?) as usize;
    // Room for as many entries as the bytes left can hold, whatever a damaged count says.
    let mut files =
        FxHashMap::with_capacity_and_hasher(count.min(r.left() / 64), Default::default());
    for _ in 0..count {
        let path = r.path()?;
        files.insert(path, r.entry()?);
    }
    r.at_end().then_some(Index {
        log_end,
        log_lines: log_lines as usize,
        scan_started_ns,
        files,
        ..Index::default()
    })
}

/// log_end, log_lines and scan_started_ns, as the index and its change log write them.
fn put_header(out: &mut Vec<u8>, (log_end, log_lines, started): (u64, u64, i128)) {
    out.extend_from_slice(&log_end.to_le_bytes());
    out.extend_from_slice(&log_lines.to_le_bytes());
    out.extend_from_slice(&started.to_le_bytes());
}

fn put_path(out: &mut Vec<u8>, path: &str) {
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(path.as_bytes());
}

fn put_entry(out: &mut Vec<u8>, e: &Entry) {
    out.extend_from_slice(e.sha256.as_bytes());
    out.extend_from_slice(&e.size.to_le_bytes());
    out.extend_from_slice(&i128::from(e.mtime_ns).to_le_bytes());
    out.extend_from_slice(&e.ino.to_le_bytes());
}

/// The change log starts with this line, then the header of the index it applies to
/// (log_end, log_lines as u64, scan_started_ns as i128), then blocks: the block's length (u32),
/// the block, its sha256. A block holds the index's new header, the number of changed entries
/// (u64) and per entry the path length (u32), the path, then 1 and the entry as in the index,
/// or 0 for a file no longer present.
const CHANGES_MAGIC: &[u8] = b"vaultkeep scan index changes 1\n";

fn encode_changes(index: &Index, touched: &FxHashSet<String>) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + touched.len() * 100);
    put_header(&mut out, index.header());
    out.extend_from_slice(&(touched.len() as u64).to_le_bytes());
    for path in touched {
        put_path(&mut out, path);
        match index.files.get(path) {
            Some(e) => {
                out.push(1);
                put_entry(&mut out, e);
            }
            None => out.push(0),
        }
    }
    out
}

/// Appends one block to the change log where its last whole block ended (`at`; a torn tail
/// is overwritten), starting the log, named after `base`, when `at` is 0. Returns the log's
/// new length. Not synced: the index is derived.
fn append_changes(path: &Path, base: (u64, u64, i128), at: u64, block: &[u8]) -> io::Result<u64> {
    use std::io::{Seek, Write};
    let mut out = Vec::with_capacity(block.len() + 128);
    if at == 0 {
        out.extend_from_slice(CHANGES_MAGIC);
        put_header(&mut out, base);
    }
    out.extend_from_slice(
        &u32::try_from(block.len())
            .map_err(io::Error::other)?
            .to_le_bytes(),
    );
    out.extend_from_slice(block);
    out.extend_from_slice(Digest::of(block).as_bytes());
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    file.set_len(at)?;
    file.seek(io::SeekFrom::Start(at))?;
    file.write_all(&out)?;
    Ok(at + out.len() as u64)
}

/// The next whole block whose checksum matches, if any.
fn next_block<'a>(r: &mut Reader<'a>) -> Option<&'a [u8]> {
    let len = u32::from_le_bytes(r.take()?) as usize;
    let block = r.slice(len)?;
    let sum: [u8; 32] = r.take()?;
    (Digest::of(block).as_bytes() == &sum).then_some(block)
}

/// Applies one block; `None`, with nothing applied, when it does not parse.
fn apply_changes(index: &mut Index, block: &[u8]) -> Option<()> {
    let mut r = Reader(block);
    let (log_end, log_lines, scan_started_ns) = r.header()?;
    let count = u64::from_le_bytes(r.take()?) as usize;
    let mut changes = Vec::with_capacity(count.min(block.len() / 8));
    for _ in 0..count {
        let path = r.path()?;
        let entry = match r.take::<1>()? {
            [1] => Some(r.entry()?),
            [0] => None,
            _ => return None,
        };
        changes.push((path, entry));
    }
    if !r.0.is_empty() {
        return None;
    }
    for (path, entry) in changes {
        match entry {
            Some(e) => index.files.insert(path, e),
            None => index.files.remove(&path),
        };
    }
    index.log_end = log_end;
    index.log_lines = log_lines as usize;
    index.scan_started_ns = scan_started_ns;
    Some(())
}

/// Where the index's encoding is read from: bytes in memory (a change-log block) or the
/// index file.
trait Source {
    /// The next `N` bytes.
    fn take<const N: usize>(&mut self) -> Option<[u8; N]>;

    /// The next `len` bytes, as UTF-8.
    fn string(&mut self, len: usize) -> Option<String>;

    /// How many bytes are left to read.
    fn left(&self) -> usize;

    /// Whether every byte was read.
    fn at_end(&mut self) -> bool;

    /// What [`put_header`] wrote.
    fn header(&mut self) -> Option<(u64, u64, i128)> {
        Some((
            u64::from_le_bytes(self.take()?),
            u64::from_le_bytes(self.take()?),
            i128::from_le_bytes(self.take()?),
        ))
    }

    /// What [`put_path`] wrote.
    fn path(&mut self) -> Option<String> {
        let len = u32::from_le_bytes(self.take()?) as usize;
        // No more than is left, whatever a damaged length says.
        (len <= self.left()).then(|| self.string(len))?
    }

    /// What [`put_entry`] wrote.
    fn entry(&mut self) -> Option<Entry> {
        Some(Entry {
            sha256: Digest::from_bytes(self.take()?),
            size: u64::from_le_bytes(self.take()?),
            mtime_ns: i64::try_from(i128::from_le_bytes(self.take()?)).unwrap_or(0),
            ino: u64::from_le_bytes(self.take()?),
        })
    }
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
}

impl Source for Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.slice(N)?.try_into().ok()
    }

    fn string(&mut self, len: usize) -> Option<String> {
        Some(std::str::from_utf8(self.slice(len)?).ok()?.to_string())
    }

    fn left(&self) -> usize {
        self.0.len()
    }

    fn at_end(&mut self) -> bool {
        self.0.is_empty()
    }
}

/// The index file read through a small buffer, counting the bytes read and keeping the
/// first error other than a short file (which only means the index is damaged).
struct Stream {
    inner: io::BufReader<fs::File>,
    size: u64,
    read: u64,
    failed: Option<io::Error>,
}

impl Stream {
    fn new(file: fs::File) -> Self {
        Stream {
            size: file.metadata().map_or(0, |m| m.len()),
            inner: io::BufReader::with_capacity(256 * 1024, file),
            read: 0,
            failed: None,
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> Option<()> {
        match io::Read::read_exact(&mut self.inner, buf) {
            Ok(()) => {
                self.read += buf.len() as u64;
                Some(())
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::UnexpectedEof {
                    self.failed.get_or_insert(e);
                }
                None
            }
        }
    }
}

impl Source for Stream {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut out = [0; N];
        self.fill(&mut out)?;
        Some(out)
    }

    fn string(&mut self, len: usize) -> Option<String> {
        let mut out = vec![0; len];
        self.fill(&mut out)?;
        String::from_utf8(out).ok()
    }

    fn left(&self) -> usize {
        usize::try_from(self.size.saturating_sub(self.read)).unwrap_or(usize::MAX)
    }

    fn at_end(&mut self) -> bool {
        matches!(io::BufRead::fill_buf(&mut self.inner), Ok([]))
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
        let changes = dir.path().join("index.changes");
        log.append(&[record(Event::Created, "a.md", None, b"a")])
            .unwrap();
        let mut index = Index::load(&path, &changes, &log).unwrap();
        index.save(&path, &changes).unwrap();
        // A crash after appending these, before the index was saved:
        log.append(&[
            record(Event::Renamed, "b.md", Some("a.md"), b"a"),
            record(Event::Created, "c.md", None, b"c"),
            record(Event::Deleted, "c.md", None, b"c"),
        ])
        .unwrap();
        let index = Index::load(&path, &changes, &log).unwrap();
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
        let mut bytes = Vec::new();
        encode(&index, &mut bytes).unwrap();
        let back = decode(&mut Reader(&bytes)).unwrap();
        assert_eq!((back.log_end, back.scan_started_ns), (7, -3));
        assert_eq!(back.files, index.files);
        assert!(decode(&mut Reader(&bytes[..bytes.len() - 1])).is_none());
        // The same bytes read from a file, a buffer at a time: whole, short, or too long.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let stream = |bytes: &[u8]| {
            fs::write(&path, bytes).unwrap();
            Stream::new(fs::File::open(&path).unwrap())
        };
        let mut whole = stream(&bytes);
        assert_eq!(decode(&mut whole).unwrap().files, index.files);
        assert_eq!(whole.read, bytes.len() as u64);
        let mut short = stream(&bytes[..bytes.len() - 1]);
        assert!(decode(&mut short).is_none() && short.failed.is_none());
        let longer = [&bytes[..], b"x"].concat();
        assert!(decode(&mut stream(&longer)).is_none());
    }

    #[test]
    fn a_corrupt_index_is_rebuilt_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = Journal::new(dir.path().join("versions.jsonl"));
        let path = dir.path().join("index.json");
        log.append(&[record(Event::Created, "a.md", None, b"a")])
            .unwrap();
        fs::write(&path, b"{ not json").unwrap();
        let index = Index::load(&path, &dir.path().join("index.changes"), &log).unwrap();
        assert_eq!(index.files["a.md"].mtime_ns, 0);
    }

    fn entry(n: u8) -> Entry {
        Entry {
            sha256: Digest::of(&[n]),
            size: u64::from(n),
            mtime_ns: 1_000 + i64::from(n),
            ino: u64::from(n),
        }
    }

    #[test]
    fn few_changes_are_appended_and_read_back_and_many_rewrite_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let log = Journal::new(dir.path().join("versions.jsonl"));
        let (path, changes) = (dir.path().join("index"), dir.path().join("index.changes"));
        let mut index = Index::load(&path, &changes, &log).unwrap();
        for n in 0..200u8 {
            index.files.insert(format!("n{n}.md"), entry(n));
        }
        index.save(&path, &changes).unwrap();
        let whole = fs::read(&path).unwrap();
        assert!(!changes.exists());

        // A few changes: the index file stays as it was, the changes are appended.
        let mut index = Index::load(&path, &changes, &log).unwrap();
        index.set("n1.md", entry(201));
        index.apply(&record(Event::Deleted, "n2.md", None, b"x"));
        index.apply(&record(Event::Renamed, "moved.md", Some("n3.md"), &[3]));
        index.scan_started_ns = 77;
        index.save(&path, &changes).unwrap();
        index.set("n4.md", entry(204));
        index.save(&path, &changes).unwrap();
        assert_eq!(fs::read(&path).unwrap(), whole);
        assert!(changes.exists());
        let back = Index::load(&path, &changes, &log).unwrap();
        assert_eq!(back.files, index.files);
        assert_eq!(back.scan_started_ns, 77);
        assert!(!back.files.contains_key("n2.md") && back.files.contains_key("moved.md"));

        // A torn last block is ignored, and the next block overwrites it.
        let len = fs::metadata(&changes).unwrap().len();
        let file = fs::OpenOptions::new().write(true).open(&changes).unwrap();
        file.set_len(len - 5).unwrap();
        drop(file);
        let mut torn = Index::load(&path, &changes, &log).unwrap();
        assert_eq!(
            torn.files["n4.md"],
            entry(4),
            "the torn block is not applied"
        );
        assert_eq!(
            torn.files["n1.md"],
            entry(201),
            "the whole one before it is"
        );
        torn.set("n5.md", entry(205));
        torn.save(&path, &changes).unwrap();
        let again = Index::load(&path, &changes, &log).unwrap();
        assert_eq!(again.files, torn.files);

        // Many changes: the index is written whole and the change log removed; a change log
        // left over from another index is never applied to this one.
        let stale = fs::read(&changes).unwrap();
        let mut many = Index::load(&path, &changes, &log).unwrap();
        for n in 0..100u8 {
            many.set(&format!("n{n}.md"), entry(n.wrapping_add(100)));
        }
        many.scan_started_ns = 99;
        many.save(&path, &changes).unwrap();
        assert!(!changes.exists());
        assert_ne!(fs::read(&path).unwrap(), whole);
        fs::write(&changes, stale).unwrap();
        let fresh = Index::load(&path, &changes, &log).unwrap();
        assert_eq!(fresh.files, many.files);
    }
}
