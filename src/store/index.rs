//! The scan index: for every recorded, present vault file, its stat data and content address,
//! so an unchanged file costs a stat and not a read (git's index does the same).
//!
//! It is derived from the version log: it remembers how much of the log it reflects
//! (`log_end`), and loading replays whatever the log holds beyond that, so a crash between
//! appending records and saving the index loses nothing. Without an index every file is
//! re-hashed once.
//!
//! The index file holds its entries sorted by path, and stays on disk: a scan reads it
//! alongside the walk, which lists the vault in the same order ([`Cursor`]), so memory does
//! not grow with the vault (issue 14). What changed since the file was written is held in
//! memory (the overlay) until the next save.
//!
//! A scan that changed a few entries appends them to `index.changes` instead of rewriting
//! the whole index (10 MB at 84,000 files, which a daemon would otherwise write at every
//! save of a note). The change log names the index it applies to, each block carries its
//! checksum, and once it would hold more than 2,048 entries or a quarter of the index's size,
//! the index is rewritten whole and the change log removed. A change log that is torn or belongs to another index is ignored
//! from the damage on: the version log still brings the index up to date.

use std::collections::{BTreeMap, btree_map};
use std::fs;
use std::io;
use std::iter::Peekable;
use std::ops::{Bound, ControlFlow};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashSet;

use super::marks::{self, Checked, Identity};
use super::{Error, Event, Journal, VersionRecord};
use crate::bytes::Reader;
use crate::digest::Digest;
use crate::fsutil::{Replace, replace_streaming};

/// The files kept beside the index file: its change log, and its marks (see [`marks`]).
#[derive(Debug, Clone)]
pub(super) struct Sidecars {
    pub changes: PathBuf,
    pub marks: PathBuf,
}

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
    /// The entries of the index file, read from disk as they are needed.
    base: Base,
    /// Entries changed since `base` was written, by path: `None` for a file no longer present.
    overlay: BTreeMap<String, Option<Entry>>,
    /// Present files.
    len: usize,
    /// Read from an index file of the first format, whose entries are in no order: the whole
    /// index is in `overlay`, and the next save writes the current format.
    legacy: bool,
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
    pub(super) fn load(path: &Path, files: &Sidecars, log: &Journal) -> Result<Index, Error> {
        let mut index = match fs::File::open(path) {
            Ok(file) => match read_file(file, &files.marks) {
                Ok(Some(mut index)) => {
                    index.read_changes(&files.changes);
                    index
                }
                Ok(None) => {
                    tracing::warn!(path = %path.display(), "scan index unreadable; files will be re-hashed once");
                    Index::default()
                }
                Err(e) => return Err(Error::io("read", path)(e)),
            },
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
    /// index to `path` (atomically) and the change log removed. Few means at most
    /// [`MOST_APPENDED`] entries changed since the index was written whole (every load reads
    /// them into memory) and a change log under a quarter of the index's size.
    pub(super) fn save(&mut self, path: &Path, files: &Sidecars) -> Result<(), Error> {
        let changes = files.changes.as_path();
        let few = self.overlay.len() <= MOST_APPENDED;
        if let (true, false, Some(touched), Some(base)) =
            (few, self.legacy, &self.touched, self.disk.base)
        {
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
        let mut written = None;
        replace_streaming(path, &Replace::default(), |w| {
            written = Some(encode(self, w)?);
            Ok(())
        })
        .map_err(Error::io("write", path))?;
        let checked =
            written.ok_or_else(|| Error::io("write", path)(io::Error::other("not written")))?;
        debug_assert_eq!(checked.count, self.len, "the index miscounted its files");
        // The file just written is the new base; the old one, which it was merged from, goes.
        let file = fs::File::open(path).map_err(Error::io("read", path))?;
        // Its marks are known: the next load need not check it.
        let head = header_bytes(self.header());
        let kept = file
            .metadata()
            .and_then(|meta| marks::write(&files.marks, Identity::of(&meta, head), &checked));
        if let Err(e) = kept {
            tracing::debug!("cannot keep the index's marks: {e}");
        }
        let Checked { marks, end, count } = checked;
        match fs::remove_file(changes) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", changes)(e)),
        }
        self.base = Base {
            file: Some(Arc::new(file)),
            marks,
            end,
            count,
        };
        self.len = count;
        self.overlay = BTreeMap::new();
        self.legacy = false;
        self.disk = OnDisk {
            base: Some(self.header()),
            base_bytes: end + END_BYTES,
            changes_bytes: 0,
        };
        self.touched = Some(FxHashSet::default());
        Ok(())
    }

    /// Whether the index must be written whole even if nothing changed (it was read from a
    /// file of the first format).
    pub fn needs_rewrite(&self) -> bool {
        self.legacy
    }

    /// How many entries changed since the index file was written (held in memory).
    pub fn held(&self) -> usize {
        self.overlay.len()
    }

    /// Present files.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry of `path`. Reads the index file near it unless `path` changed since: for
    /// many paths in order, a [`Cursor`] reads the file once.
    pub fn get(&self, path: &str) -> Option<Entry> {
        match self.overlay.get(path) {
            Some(held) => *held,
            None => self.base.get(path),
        }
    }

    /// A cursor that finds the entries of paths asked for in ascending order, starting at
    /// `from`: one pass over the index alongside them.
    pub fn cursor(&self, from: &str) -> Cursor<'_> {
        Cursor {
            overlay: self
                .overlay
                .range::<str, _>((Bound::Included(from), Bound::Unbounded))
                .peekable(),
            base: self.base.records(from, CURSOR_BUFFER),
        }
    }

    /// Entries for files as a parallel task meets them (see [`Alongside`]).
    pub fn alongside(&self) -> Alongside<'_> {
        Alongside {
            index: self,
            cursor: None,
            last: String::new(),
        }
    }

    /// Visits the present files from `from` on, in path order, until `visit` breaks. An
    /// error when the index file could not be read to the end: the visit stopped short.
    pub fn visit_from(
        &self,
        from: &str,
        mut visit: impl FnMut(&str, &Entry) -> ControlFlow<()>,
    ) -> io::Result<()> {
        self.visit_with(from, PASS_BUFFER, |path, entry| {
            visit(std::str::from_utf8(path).unwrap_or_default(), entry)
        })
    }

    /// Meets `paths` (in ascending order, each after `after`) with the index in one pass: the
    /// entry of each goes to `found`, in order, and every recorded file not among them goes to
    /// `gone`, from `after` (excluded; `None`: the first) up to the last of `paths`, or to the
    /// end with `to_end`. A walk of the vault in path order, met a part at a time, finds which
    /// recorded files vanished without holding the listing.
    pub fn meet<'p>(
        &self,
        after: Option<&str>,
        paths: impl IntoIterator<Item = &'p str>,
        to_end: bool,
        mut found: impl FnMut(Option<Entry>),
        mut gone: impl FnMut(&str, &Entry),
    ) {
        let mut paths = paths.into_iter().peekable();
        if paths.peek().is_none() && !to_end {
            return;
        }
        let mut gone = |path: &[u8], entry: &Entry| {
            gone(std::str::from_utf8(path).unwrap_or_default(), entry);
        };
        let met = self.visit_with(after.unwrap_or(""), CURSOR_BUFFER, |path, entry| {
            if after.map(str::as_bytes) == Some(path) {
                return ControlFlow::Continue(());
            }
            while paths.next_if(|p| p.as_bytes() < path).is_some() {
                found(None);
            }
            match paths.peek() {
                Some(listed) if listed.as_bytes() == path => {
                    paths.next();
                    found(Some(*entry));
                }
                Some(_) => gone(path, entry),
                None if to_end => gone(path, entry),
                None => return ControlFlow::Break(()),
            }
            ControlFlow::Continue(())
        });
        if let Err(e) = met {
            warn_unread(&e);
        }
        for _ in paths {
            found(None);
        }
    }

    /// Visits the present files from `from` on, reading `buffer` bytes at a time. Paths are
    /// given as bytes: those of the file were checked to be UTF-8 when it was opened, and
    /// bytes compare as strings do.
    fn visit_with(
        &self,
        from: &str,
        buffer: usize,
        mut visit: impl FnMut(&[u8], &Entry) -> ControlFlow<()>,
    ) -> io::Result<()> {
        let mut overlay = self
            .overlay
            .range::<str, _>((Bound::Included(from), Bound::Unbounded))
            .peekable();
        let mut base = self.base.records(from, buffer);
        base.skip_before(from);
        loop {
            // Which side comes next: the base, the overlay, or both (the overlay's wins).
            let on_disk = base.ready().then(|| base.path());
            let (flow, step_base, step_overlay) = match (on_disk, overlay.peek()) {
                (None, None) => return base.error.take().map_or(Ok(()), Err),
                (Some(path), None) => (visit(path, &base.entry()), true, false),
                (Some(path), Some((held, _))) if path < held.as_bytes() => {
                    (visit(path, &base.entry()), true, false)
                }
                (on_disk, Some((path, held))) => {
                    let flow = match held {
                        Some(entry) => visit(path.as_bytes(), entry),
                        None => ControlFlow::Continue(()),
                    };
                    (flow, on_disk == Some(path.as_bytes()), true)
                }
            };
            if flow.is_break() {
                return Ok(());
            }
            if step_base {
                base.advance();
            }
            if step_overlay {
                overlay.next();
            }
        }
    }

    /// Sets the entry of a file the index holds (what a scan saw of it).
    pub fn set(&mut self, path: &str, entry: Entry) {
        debug_assert!(self.get(path).is_some(), "{path} is not in the index");
        self.put(path.to_string(), Some(entry), true);
        self.touch(path);
    }

    /// Holds `value` for `path`, which the index held before if `was_present` (what the
    /// caller knows; checked only where that costs nothing).
    fn put(&mut self, path: String, value: Option<Entry>, was_present: bool) {
        let was = match self.overlay.get(&path) {
            Some(held) => held.is_some(),
            None if self.base.count == 0 => false,
            None => was_present,
        };
        match (was, value.is_some()) {
            (false, true) => self.len += 1,
            (true, false) => self.len -= 1,
            _ => {}
        }
        if value.is_none() && self.base.count == 0 {
            // Nothing on disk to hide.
            self.overlay.remove(&path);
        } else {
            self.overlay.insert(path, value);
        }
    }

    fn header(&self) -> (u64, u64, i128) {
        (self.log_end, self.log_lines as u64, self.scan_started_ns)
    }

    /// Notes a changed entry, until so many changed that the whole index is cheaper to write.
    fn touch(&mut self, path: &str) {
        let most = self.len / 8 + 64;
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
        let magic = if self.legacy {
            CHANGES_MAGIC_1
        } else {
            CHANGES_MAGIC
        };
        let Some(rest) = bytes.strip_prefix(magic) else {
            return;
        };
        let mut r = Reader::new(rest);
        if r.header() != self.disk.base {
            return;
        }
        let mut good = bytes.len() - r.left();
        while let Some(block) = next_block(&mut r) {
            if apply_changes(self, block).is_none() {
                break;
            }
            good = bytes.len() - r.left();
        }
        // The next block goes where the last whole one ended: a torn tail is overwritten.
        self.disk.changes_bytes = good as u64;
    }

    /// Updates the recorded state with one record of the log, made against this state: a
    /// created file was not in the index, a modified, deleted or renamed one was.
    pub fn apply(&mut self, record: &VersionRecord) {
        self.touch(&record.path);
        if let Some(from) = &record.from {
            self.touch(from);
        }
        match record.event {
            Event::Created => {
                self.put(record.path.clone(), Some(Entry::from_record(record)), false)
            }
            Event::Modified => {
                self.put(record.path.clone(), Some(Entry::from_record(record)), true)
            }
            Event::Renamed => {
                let moved = record.from.as_ref().and_then(|from| {
                    let entry = self.get(from);
                    self.put(from.clone(), None, true);
                    entry
                });
                let entry = match moved {
                    Some(e) if e.sha256 == record.sha256 => e,
                    _ => Entry::from_record(record),
                };
                self.put(record.path.clone(), Some(entry), false);
            }
            Event::Deleted => self.put(record.path.clone(), None, true),
        }
    }
}

#[cfg(test)]
impl Index {
    /// An index holding `files` (in memory), as tests set one up.
    pub(crate) fn holding<'a>(files: impl IntoIterator<Item = (&'a str, Entry)>) -> Index {
        let mut index = Index::default();
        for (path, entry) in files {
            index.put(path.to_string(), Some(entry), false);
        }
        index
    }

    /// Every present file, in path order (checking the count against them).
    pub(crate) fn entries(&self) -> Vec<(String, Entry)> {
        let mut out = Vec::new();
        self.visit_from("", |p, e| {
            out.push((p.to_string(), *e));
            ControlFlow::Continue(())
        })
        .expect("the index file reads");
        assert_eq!(out.len(), self.len(), "the count matches the entries");
        out
    }
}

/// Most entries changed since the index was written whole that its change log holds: a
/// daemon's edits append a few at a time, while a scan that changed thousands (the end of a
/// first scan) writes the index whole, so the next load reads no long change log.
const MOST_APPENDED: usize = 2048;

/// Most bytes a cursor reads from the index file at a time: a few hundred entries.
const CURSOR_BUFFER: usize = 32 * 1024;

/// Bytes read to find one path (the entries between two marks), and the first read of any
/// reader: each read after it doubles, up to the reader's most, so a short look reads little
/// and a long pass makes few calls.
const LOOKUP_BUFFER: usize = 4 * 1024;

/// Most bytes read at a time by a pass that may cover the whole index (checking it, finding
/// what vanished, writing it whole).
const PASS_BUFFER: usize = 256 * 1024;

/// Every how many entries the index remembers where one starts in the file.
const MARK_EVERY: usize = 32;

/// The longest path an index file may hold (Linux allows 4096 bytes).
const MAX_PATH: usize = 16 * 1024;

/// Bytes of an entry after its path: sha256, size, mtime_ns (i128) and inode.
const ENTRY_BYTES: usize = 32 + 8 + 16 + 8;

/// The index file as last read or written: its entries, sorted by path, stay on disk.
#[derive(Debug, Clone, Default)]
struct Base {
    /// The file, open; `None` when there is none.
    file: Option<Arc<fs::File>>,
    /// Every [`MARK_EVERY`]th entry's path and where it starts, to begin reading near a path.
    marks: Vec<(String, u64)>,
    /// Where the last entry ends.
    end: u64,
    /// Entries in the file.
    count: usize,
}

impl Base {
    /// The entries from the last mark at or before `from` on.
    fn records(&self, from: &str, buffer: usize) -> Records<'_> {
        let at = match self.marks.partition_point(|(p, _)| p.as_str() <= from) {
            0 => HEADER_BYTES,
            i => self.marks[i - 1].1,
        };
        Records::new(self.file.as_deref(), at, self.end, buffer)
    }

    fn get(&self, path: &str) -> Option<Entry> {
        if self.count == 0 {
            return None;
        }
        self.records(path, LOOKUP_BUFFER).find(path)
    }
}

/// The index file's entries read forward through a buffer of their own.
struct Records<'a> {
    file: Option<&'a fs::File>,
    /// Where in the file the next bytes to read are.
    at: u64,
    end: u64,
    /// Most bytes to read at a time, and how many the next read asks for.
    buffer: usize,
    next: usize,
    buf: Vec<u8>,
    /// Where the next entry starts in `buf`, and where the bytes read end.
    pos: usize,
    filled: usize,
    /// The length of the entry at `pos`, once peeked.
    len: usize,
    /// Why the file could not be read, if it could not.
    error: Option<io::Error>,
}

thread_local! {
    /// The buffer of the last reader this thread dropped, for its next: a scan makes a reader
    /// per 256 files, and a new buffer each time cost its page faults and zeroing again.
    static SPARE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Drop for Records<'_> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let _ = SPARE.try_with(|spare| {
            let kept = spare.take();
            spare.set(if buf.len() > kept.len() { buf } else { kept });
        });
    }
}

impl<'a> Records<'a> {
    /// Entries of `file` from `at`, which ends at `end`, read up to `buffer` bytes at a time.
    fn new(file: Option<&'a fs::File>, at: u64, end: u64, buffer: usize) -> Self {
        Records {
            file,
            at,
            end,
            buffer,
            next: LOOKUP_BUFFER.min(buffer),
            buf: SPARE.take(),
            pos: 0,
            filled: 0,
            len: 0,
            error: None,
        }
    }

    /// Where in the file the next entry starts.
    fn offset(&self) -> u64 {
        self.at - (self.filled - self.pos) as u64
    }

    /// The path length at `pos` (4 bytes buffered).
    fn next_len(&self) -> u32 {
        let mut len = [0; 4];
        len.copy_from_slice(&self.buf[self.pos..self.pos + 4]);
        u32::from_le_bytes(len)
    }

    /// The next entry's path, not passed; `None` at the end, or where the file cannot be
    /// read (the scan then reads the files it cannot find: slower, and nothing is lost).
    /// Paths stay bytes here: they were checked when the file was opened, and compare as
    /// strings do.
    fn peek(&mut self) -> Option<&[u8]> {
        self.ready().then(|| self.path())
    }

    /// Whether the next entry is buffered (see [`Records::peek`]).
    fn ready(&mut self) -> bool {
        if self.len == 0 {
            if !self.fill(4) {
                return false;
            }
            let len = self.next_len() as usize;
            if len > MAX_PATH || !self.fill(4 + len + ENTRY_BYTES) {
                return false;
            }
            self.len = 4 + len + ENTRY_BYTES;
        }
        true
    }

    /// The path of the entry last peeked.
    fn path(&self) -> &[u8] {
        &self.buf[self.pos + 4..self.pos + self.len - ENTRY_BYTES]
    }

    /// The entry last peeked.
    fn entry(&self) -> Entry {
        let bytes = &self.buf[self.pos + self.len - ENTRY_BYTES..self.pos + self.len];
        Reader::new(bytes)
            .entry()
            .expect("an entry's bytes are buffered whole")
    }

    /// Passes the entry last peeked.
    fn advance(&mut self) {
        self.pos += std::mem::take(&mut self.len);
    }

    /// Passes the entries before `path`.
    fn skip_before(&mut self, path: &str) {
        while self.peek().is_some_and(|p| p < path.as_bytes()) {
            self.advance();
        }
    }

    /// The entry of `path`, passing those before it (which must not include one asked for
    /// next).
    fn find(&mut self, path: &str) -> Option<Entry> {
        self.skip_before(path);
        if !self.ready() {
            self.warn_if_failed();
            return None;
        }
        (self.path() == path.as_bytes()).then(|| self.entry())
    }

    /// Says why reading stopped short (see [`warn_unread`]).
    fn warn_if_failed(&mut self) {
        if let Some(e) = self.error.take() {
            warn_unread(&e);
        }
    }

    /// Whether `n` bytes are buffered from `pos` on, reading more as needed.
    fn fill(&mut self, n: usize) -> bool {
        if self.filled - self.pos >= n {
            return true;
        }
        let Some(file) = self.file else {
            return false;
        };
        self.buf.copy_within(self.pos..self.filled, 0);
        self.filled -= self.pos;
        self.pos = 0;
        let size = self.next.max(n);
        self.next = (self.next * 2).min(self.buffer);
        if self.buf.len() < size {
            self.buf.resize(size, 0);
        }
        while self.filled < n {
            let left = usize::try_from(self.end.saturating_sub(self.at)).unwrap_or(usize::MAX);
            // Up to `size`, whatever a buffer taken over from another reader holds.
            let room = (size - self.filled).min(left);
            if room == 0 {
                return false;
            }
            match file.read_at(&mut self.buf[self.filled..self.filled + room], self.at) {
                Ok(0) => return false,
                Ok(read) => {
                    self.filled += read;
                    self.at += read as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.error = Some(e);
                    return false;
                }
            }
        }
        true
    }
}

/// Says why reading the index stopped short, where its reader goes on without the entries
/// (the scan then reads the files it cannot find: slower, and nothing is lost).
pub(crate) fn warn_unread(e: &io::Error) {
    tracing::warn!(
        "cannot read the scan index ({e}); the files it would have vouched for are read again"
    );
}

/// Finds entries for paths asked for in ascending order (as a walk lists them), reading the
/// index file once alongside them.
pub struct Cursor<'a> {
    overlay: Peekable<btree_map::Range<'a, String, Option<Entry>>>,
    base: Records<'a>,
}

impl Cursor<'_> {
    /// The entry of `path`, which sorts after every path asked for before.
    pub fn get(&mut self, path: &str) -> Option<Entry> {
        while self.overlay.next_if(|(p, _)| p.as_str() < path).is_some() {}
        match self.overlay.peek() {
            Some((p, held)) if p.as_str() == path => **held,
            _ => self.base.find(path),
        }
    }
}

/// Finds entries for files as a parallel task over a few listed files meets them (a daemon's
/// look at the paths its watcher reported; a whole walk meets the index with [`Index::meet`]):
/// a task's files come in order, so one cursor per task reads the index once. A path that
/// sorts before the last one asked for starts a new cursor.
pub struct Alongside<'a> {
    index: &'a Index,
    cursor: Option<Cursor<'a>>,
    last: String,
}

impl Alongside<'_> {
    pub fn get(&mut self, path: &str) -> Option<Entry> {
        if path < self.last.as_str() {
            self.cursor = None;
        }
        self.last.clear();
        self.last.push_str(path);
        self.cursor
            .get_or_insert_with(|| self.index.cursor(path))
            .get(path)
    }
}

/// The file starts with this line, so `head -1` tells what it is.
const MAGIC: &[u8] = b"vaultkeep scan index 2\n";

/// The first format's line: entries in no order, their count before them.
const MAGIC_1: &[u8] = b"vaultkeep scan index 1\n";

/// Bytes before the first entry: the magic line and the header.
const HEADER_BYTES: u64 = (MAGIC.len() + 8 + 8 + 16) as u64;

/// Where a path length would be, this marks the end of the entries.
const END: u32 = u32::MAX;

/// Bytes after the entries: [`END`] and their count.
const END_BYTES: u64 = 4 + 8;

/// What [`encode`] wrote.
/// The index on disk. After the magic line: log_end, log_lines (u64) and scan_started_ns
/// (i128); then per entry, in path order (by byte), the path length (u32), the path, sha256
/// (32 bytes), size (u64), mtime_ns (i128) and inode (u64); then [`END`] and the number of
/// entries (u64). All little-endian.
fn encode(index: &Index, out: &mut dyn io::Write) -> io::Result<Checked> {
    // Entry by entry through a small buffer: saving never holds the whole index.
    let mut bytes = 0;
    let mut put = |data: &[u8]| -> io::Result<u64> {
        out.write_all(data)?;
        bytes += data.len() as u64;
        Ok(bytes)
    };
    put(MAGIC)?;
    let mut buf = Vec::with_capacity(256);
    put_header(&mut buf, index.header());
    let mut at = put(&buf)?;
    let (mut marks, mut count, mut failed) = (Vec::new(), 0, None);
    // A short read of the file being rewritten fails the save: the file written whole stays.
    let read = index.visit_from("", |path, e| {
        if count % MARK_EVERY == 0 {
            marks.push((path.to_string(), at));
        }
        count += 1;
        buf.clear();
        put_path(&mut buf, path);
        put_entry(&mut buf, e);
        match put(&buf) {
            Ok(now) => {
                at = now;
                ControlFlow::Continue(())
            }
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    read?;
    buf.clear();
    buf.extend_from_slice(&END.to_le_bytes());
    buf.extend_from_slice(&(count as u64).to_le_bytes());
    put(&buf)?;
    Ok(Checked {
        marks,
        count,
        end: at,
    })
}

/// Reads an index file: checks every entry of the current format (whole, in order, UTF-8)
/// and notes where some start, leaving them on disk, unless the marks kept at `marks` were
/// found in this very file; a file of the first format is read whole. `None` when it is
/// damaged or not an index.
fn read_file(file: fs::File, marks: &Path) -> io::Result<Option<Index>> {
    let mut magic = [0; MAGIC.len()];
    match file.read_exact_at(&mut magic, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    if magic == *MAGIC {
        return open(file, marks);
    }
    if magic != *MAGIC_1 {
        return Ok(None);
    }
    let mut stream = Stream::new(file);
    let read = stream
        .take::<{ MAGIC_1.len() }>()
        .and_then(|_| decode_1(&mut stream));
    match (read, stream.failed.take()) {
        (Some(index), _) => Ok(Some(index)),
        (None, Some(e)) => Err(e),
        (None, None) => Ok(None),
    }
}

/// The current format: its header, and its marks as kept or found by [`check`] (then kept).
fn open(file: fs::File, marks: &Path) -> io::Result<Option<Index>> {
    let meta = file.metadata()?;
    let size = meta.len();
    let mut head = [0; marks::HEADER];
    match file.read_exact_at(&mut head, MAGIC.len() as u64) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let Some(header) = Reader::new(&head).header() else {
        return Ok(None);
    };
    let identity = Identity::of(&meta, head);
    // The entries end where the file's last bytes (the end marker and the count) begin.
    let end = size.saturating_sub(END_BYTES);
    let checked = match marks::read(marks, identity, MARK_EVERY, (HEADER_BYTES, end)) {
        Some(kept) => kept,
        None => {
            let Some(found) = check(&file, size)? else {
                return Ok(None);
            };
            if let Err(e) = marks::write(marks, identity, &found) {
                tracing::debug!("cannot keep the index's marks: {e}");
            }
            found
        }
    };
    let Checked { marks, end, count } = checked;
    Ok(Some(Index {
        log_end: header.0,
        log_lines: header.1 as usize,
        scan_started_ns: header.2,
        base: Base {
            file: Some(Arc::new(file)),
            marks,
            end,
            count,
        },
        len: count,
        disk: OnDisk {
            base: Some(header),
            base_bytes: size,
            changes_bytes: 0,
        },
        ..Index::default()
    }))
}

/// Checks every entry of an index file of `size` bytes (whole, in order, UTF-8, as many as
/// its end says) and notes every [`MARK_EVERY`]th; `None` when it is damaged.
fn check(file: &fs::File, size: u64) -> io::Result<Option<Checked>> {
    let mut r = Records::new(Some(file), HEADER_BYTES, size, PASS_BUFFER);
    let damaged = |r: &mut Records| r.error.take().map_or(Ok(None), Err);
    let (mut marks, mut count, mut last) = (Vec::new(), 0, Vec::new());
    let end = loop {
        let at = r.offset();
        if !r.fill(4) {
            return damaged(&mut r);
        }
        if r.next_len() == END {
            break at;
        }
        if !r.ready() {
            return damaged(&mut r);
        }
        let path = r.path();
        let Ok(text) = std::str::from_utf8(path) else {
            return Ok(None);
        };
        if count > 0 && path <= last.as_slice() {
            return Ok(None);
        }
        if count % MARK_EVERY == 0 {
            marks.push((text.to_string(), at));
        }
        last.clear();
        last.extend_from_slice(path);
        count += 1;
        r.advance();
    };
    // The end marker, the count, and nothing after them.
    if !r.fill(END_BYTES as usize) {
        return damaged(&mut r);
    }
    let mut stated = [0; 8];
    stated.copy_from_slice(&r.buf[r.pos + 4..r.pos + END_BYTES as usize]);
    if u64::from_le_bytes(stated) != count as u64 || end + END_BYTES != size {
        return Ok(None);
    }
    Ok(Some(Checked { marks, end, count }))
}

/// The first format, after its magic line: the entry count, then the entries in any order.
fn decode_1(r: &mut Stream) -> Option<Index> {
    let header = r.header()?;
    let count = u64::from_le_bytes(r.take()?) as usize;
    let mut overlay = BTreeMap::new();
    for _ in 0..count {
        let path = r.path()?;
        overlay.insert(path, Some(r.entry()?));
    }
    if !r.at_end() {
        return None;
    }
    Some(Index {
        log_end: header.0,
        log_lines: header.1 as usize,
        scan_started_ns: header.2,
        len: overlay.len(),
        overlay,
        legacy: true,
        disk: OnDisk {
            base: Some(header),
            base_bytes: r.read,
            changes_bytes: 0,
        },
        ..Index::default()
    })
}

/// log_end, log_lines and scan_started_ns, as the index and its change log write them.
fn put_header(out: &mut Vec<u8>, header: (u64, u64, i128)) {
    out.extend_from_slice(&header_bytes(header));
}

fn header_bytes((log_end, log_lines, started): (u64, u64, i128)) -> [u8; marks::HEADER] {
    let mut bytes = [0; marks::HEADER];
    bytes[..8].copy_from_slice(&log_end.to_le_bytes());
    bytes[8..16].copy_from_slice(&log_lines.to_le_bytes());
    bytes[16..].copy_from_slice(&started.to_le_bytes());
    bytes
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
/// the block, its sha256. A block holds the index's new header, how many files the index then
/// holds (u64), the number of changed entries (u64) and per entry the path length (u32), the
/// path, then 1 and the entry as in the index, or 0 for a file no longer present.
const CHANGES_MAGIC: &[u8] = b"vaultkeep scan index changes 2\n";

/// The first format's change log, whose blocks do not say how many files the index holds.
const CHANGES_MAGIC_1: &[u8] = b"vaultkeep scan index changes 1\n";

fn encode_changes(index: &Index, touched: &FxHashSet<String>) -> Vec<u8> {
    let mut out = Vec::with_capacity(56 + touched.len() * 100);
    put_header(&mut out, index.header());
    out.extend_from_slice(&(index.len as u64).to_le_bytes());
    out.extend_from_slice(&(touched.len() as u64).to_le_bytes());
    for path in touched {
        put_path(&mut out, path);
        match index.get(path) {
            Some(e) => {
                out.push(1);
                put_entry(&mut out, &e);
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
    let block = r.bytes(len)?;
    let sum: [u8; 32] = r.take()?;
    (Digest::of(block).as_bytes() == &sum).then_some(block)
}

/// Applies one block; `None`, with nothing applied, when it does not parse.
fn apply_changes(index: &mut Index, block: &[u8]) -> Option<()> {
    let mut r = Reader::new(block);
    let (log_end, log_lines, scan_started_ns) = r.header()?;
    // A first-format block does not say how many files the index holds: its index is all in
    // memory, which counts them.
    let present = if index.legacy {
        None
    } else {
        Some(u64::from_le_bytes(r.take()?) as usize)
    };
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
    if r.left() != 0 {
        return None;
    }
    for (path, entry) in changes {
        index.put(path, entry, entry.is_none());
    }
    if let Some(present) = present {
        index.len = present;
    }
    index.log_end = log_end;
    index.log_lines = log_lines as usize;
    index.scan_started_ns = scan_started_ns;
    Some(())
}

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

impl Source for Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.array()
    }

    fn string(&mut self, len: usize) -> Option<String> {
        Some(std::str::from_utf8(self.bytes(len)?).ok()?.to_string())
    }

    fn left(&self) -> usize {
        Reader::left(self)
    }

    fn at_end(&mut self) -> bool {
        Reader::left(self) == 0
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

    fn entry(n: u8) -> Entry {
        Entry {
            sha256: Digest::of(&[n]),
            size: u64::from(n),
            mtime_ns: 1_000 + i64::from(n),
            ino: u64::from(n),
        }
    }

    fn entries(index: &Index) -> Vec<(String, Entry)> {
        index.entries()
    }

    impl Index {
        /// Adds a file as a scan's record would.
        fn create(&mut self, path: &str, e: Entry) {
            self.put(path.to_string(), Some(e), false);
            self.touch(path);
        }
    }

    fn files(dir: &Path) -> (PathBuf, Sidecars, Journal) {
        (
            dir.join("index"),
            Sidecars {
                changes: dir.join("index.changes"),
                marks: dir.join("cache/index-marks"),
            },
            Journal::new(dir.join("versions.jsonl")),
        )
    }

    #[test]
    fn the_index_catches_up_with_records_it_has_not_seen() {
        let dir = tempfile::tempdir().unwrap();
        let (path, side, log) = files(dir.path());
        log.append(&[record(Event::Created, "a.md", None, b"a")])
            .unwrap();
        let mut index = Index::load(&path, &side, &log).unwrap();
        index.save(&path, &side).unwrap();
        // A crash after appending these, before the index was saved:
        log.append(&[
            record(Event::Renamed, "b.md", Some("a.md"), b"a"),
            record(Event::Created, "c.md", None, b"c"),
            record(Event::Deleted, "c.md", None, b"c"),
        ])
        .unwrap();
        let index = Index::load(&path, &side, &log).unwrap();
        let paths: Vec<_> = entries(&index).into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, vec!["b.md"]);
        assert_eq!(index.log_lines, 4);
    }

    #[test]
    fn the_index_round_trips_sorted_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, side, log) = files(dir.path());
        let mut index = Index {
            log_end: 0,
            scan_started_ns: -3,
            ..Index::default()
        };
        // More entries than a mark covers, added out of order.
        for n in (0..=255u8).rev() {
            index.create(&format!("d{}/n{n} é.md", n % 7), entry(n));
        }
        index.save(&path, &side).unwrap();
        let bytes = fs::read(&path).unwrap();
        assert!(bytes.starts_with(MAGIC));
        let back = Index::load(&path, &side, &log).unwrap();
        assert_eq!(back.scan_started_ns, -3);
        assert_eq!(back.base.count, 256, "the entries stay on disk");
        assert!(back.overlay.is_empty());
        let mut expected = entries(&index);
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(entries(&back), expected);
        for (p, e) in &expected {
            assert_eq!(back.get(p), Some(*e), "{p}");
        }
        assert_eq!(back.get("d0/missing.md"), None);

        // Short, longer, or out of order: unreadable, and the index is rebuilt from the log.
        // (Written in place, as vaultkeep never writes it: its marks are dropped each time, so
        // that a file of the same size written within the same clock tick is checked.)
        let read = |bytes: &[u8]| {
            fs::write(&path, bytes).unwrap();
            let _ = fs::remove_file(&side.marks);
            read_file(fs::File::open(&path).unwrap(), &side.marks).unwrap()
        };
        assert!(read(&bytes).is_some());
        assert!(read(&bytes[..bytes.len() - 1]).is_none());
        assert!(read(&[&bytes[..], b"x"].concat()).is_none());
        let first = HEADER_BYTES as usize;
        let one = 4
            + u32::from_le_bytes(bytes[first..first + 4].try_into().unwrap()) as usize
            + ENTRY_BYTES;
        let two = one
            + 4
            + u32::from_le_bytes(bytes[first + one..first + one + 4].try_into().unwrap()) as usize
            + ENTRY_BYTES;
        let swapped = [
            &bytes[..first],
            &bytes[first + one..first + two],
            &bytes[first..first + one],
            &bytes[first + two..],
        ]
        .concat();
        assert_eq!(swapped.len(), bytes.len());
        assert!(read(&swapped).is_none(), "entries out of order are refused");
    }

    #[test]
    fn a_load_trusts_the_marks_kept_for_the_same_file_and_checks_another() {
        let dir = tempfile::tempdir().unwrap();
        let (path, files, log) = files(dir.path());
        let mut index = Index::default();
        for n in 0..=255u8 {
            index.create(&format!("n{n:03}.md"), entry(n));
        }
        index.save(&path, &files).unwrap();
        let identity = || {
            let mut head = [0; marks::HEADER];
            fs::File::open(&path)
                .unwrap()
                .read_exact_at(&mut head, MAGIC.len() as u64)
                .unwrap();
            Identity::of(&fs::metadata(&path).unwrap(), head)
        };
        // The save kept the marks of the file it wrote.
        let kept_end = fs::metadata(&path).unwrap().len() - END_BYTES;
        let kept = marks::read(
            &files.marks,
            identity(),
            MARK_EVERY,
            (HEADER_BYTES, kept_end),
        )
        .unwrap();
        assert_eq!(kept.count, 256);
        assert_eq!(kept.marks.len(), 8);
        assert_eq!(kept.marks[1], ("n032.md".to_string(), kept.marks[1].1));

        // Marks kept for this very file are trusted as they are (here, one entry fewer than
        // the file holds, which only a load that did not check it again would believe).
        let fewer = Checked {
            count: 255,
            ..kept.clone()
        };
        marks::write(&files.marks, identity(), &fewer).unwrap();
        assert_eq!(Index::load(&path, &files, &log).unwrap().len(), 255);

        // The same bytes in another file (a copy renamed into place): checked again, and its
        // own marks kept.
        let copy = dir.path().join("index.copy");
        fs::copy(&path, &copy).unwrap();
        fs::rename(&copy, &path).unwrap();
        let back = Index::load(&path, &files, &log).unwrap();
        assert_eq!(back.len(), 256);
        assert_eq!(entries(&back), entries(&index));
        let again = marks::read(
            &files.marks,
            identity(),
            MARK_EVERY,
            (HEADER_BYTES, kept_end),
        );
        assert_eq!(again, Some(kept));

        // Without its marks (lost, or damaged), the index is checked and read as before.
        fs::write(&files.marks, b"not marks").unwrap();
        assert_eq!(
            entries(&Index::load(&path, &files, &log).unwrap()),
            entries(&index)
        );
        fs::remove_file(&files.marks).unwrap();
        assert_eq!(
            entries(&Index::load(&path, &files, &log).unwrap()),
            entries(&index)
        );
        assert!(files.marks.exists(), "kept again");
    }

    /// An index of 200 files, `n000.md` to `n199.md`, written whole and read back from `dir`.
    fn two_hundred_on_disk(dir: &Path) -> Index {
        let (path, side, log) = files(dir);
        let mut index = Index::default();
        for n in 0..200u8 {
            index.create(&format!("n{n:03}.md"), entry(n));
        }
        index.save(&path, &side).unwrap();
        Index::load(&path, &side, &log).unwrap()
    }

    #[test]
    fn a_cursor_finds_what_lookups_find_with_changes_held_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = two_hundred_on_disk(dir.path());
        index.set("n010.md", entry(210));
        index.apply(&record(Event::Deleted, "n020.md", None, b"x"));
        index.apply(&record(Event::Created, "n020a.md", None, b"new"));
        index.apply(&record(Event::Renamed, "zz.md", Some("n030.md"), &[30]));
        assert_eq!(index.len(), 200);
        let mut asked: Vec<String> = (0..200).map(|n| format!("n{n:03}.md")).collect();
        asked.extend(["n020a.md".into(), "zz.md".into(), "a.md".into()]);
        asked.sort();
        for from in [0, 5, 150] {
            let mut cursor = index.cursor(&asked[from]);
            for p in &asked[from..] {
                assert_eq!(cursor.get(p), index.get(p), "{p}");
            }
        }
        assert_eq!(index.get("n100.md"), Some(entry(100)), "read from the file");
        assert_eq!(index.get("n010.md"), Some(entry(210)));
        assert_eq!(index.get("n020.md"), None);
        assert_eq!(
            index.get("zz.md"),
            Some(entry(30)),
            "a rename keeps the stat data"
        );
        let walked = entries(&index);
        assert!(walked.is_sorted_by(|a, b| a.0 < b.0));
        let mut from_n150 = Vec::new();
        index
            .visit_from("n150.md", |p, _| {
                from_n150.push(p.to_string());
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(from_n150.len(), 50 + 1, "n150..n199 and zz.md");
    }

    #[test]
    fn meeting_a_listing_in_parts_finds_each_entry_and_every_file_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = two_hundred_on_disk(dir.path());
        // Changes held in memory count as the file does.
        index.apply(&record(Event::Deleted, "n020.md", None, b"x"));
        index.apply(&record(Event::Created, "n020a.md", None, b"new"));
        // Listed: every third file, one the index lacks, one past its end.
        let mut listed: Vec<String> = (0..200).step_by(3).map(|n| format!("n{n:03}.md")).collect();
        listed.extend(["n020a.md".into(), "n050x.md".into(), "zz.md".into()]);
        listed.sort();
        let mut expected_gone: Vec<String> = entries(&index)
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| !listed.contains(p))
            .collect();
        expected_gone.sort();
        for parts in [1, 2, 7, listed.len()] {
            let (mut found, mut gone) = (Vec::new(), Vec::new());
            let mut after: Option<&str> = None;
            let chunks: Vec<&[String]> = listed.chunks(listed.len().div_ceil(parts)).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                index.meet(
                    after,
                    chunk.iter().map(String::as_str),
                    i + 1 == chunks.len(),
                    |e| found.push(e),
                    |p, _| gone.push(p.to_string()),
                );
                after = chunk.last().map(String::as_str);
            }
            let looked_up: Vec<Option<Entry>> = listed.iter().map(|p| index.get(p)).collect();
            assert_eq!(found, looked_up, "{parts} parts");
            assert_eq!(gone, expected_gone, "{parts} parts");
        }
        // Nothing listed past a point: the rest is gone.
        let mut gone = Vec::new();
        index.meet(
            Some("n198.md"),
            [],
            true,
            |_| {},
            |p, _| gone.push(p.to_string()),
        );
        assert_eq!(gone, vec!["n199.md"]);
    }

    #[test]
    fn an_index_of_the_first_format_is_read_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let (path, side, log) = files(dir.path());
        let mut old = MAGIC_1.to_vec();
        put_header(&mut old, (0, 0, 5));
        old.extend_from_slice(&2u64.to_le_bytes());
        for (p, n) in [("b.md", 2), ("a.md", 1)] {
            put_path(&mut old, p);
            put_entry(&mut old, &entry(n));
        }
        fs::write(&path, &old).unwrap();
        let mut index = Index::load(&path, &side, &log).unwrap();
        assert!(index.needs_rewrite());
        assert_eq!(
            entries(&index),
            vec![("a.md".into(), entry(1)), ("b.md".into(), entry(2))]
        );
        index.save(&path, &side).unwrap();
        assert!(fs::read(&path).unwrap().starts_with(MAGIC));
        let back = Index::load(&path, &side, &log).unwrap();
        assert!(!back.needs_rewrite());
        assert_eq!(entries(&back), entries(&index));
    }

    #[test]
    fn a_corrupt_index_is_rebuilt_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (path, side, log) = files(dir.path());
        log.append(&[record(Event::Created, "a.md", None, b"a")])
            .unwrap();
        fs::write(&path, b"{ not json").unwrap();
        let index = Index::load(&path, &side, &log).unwrap();
        assert_eq!(index.get("a.md").unwrap().mtime_ns, 0);
    }

    #[test]
    fn few_changes_are_appended_and_read_back_and_many_rewrite_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let (path, side, log) = files(dir.path());
        let mut index = Index::load(&path, &side, &log).unwrap();
        for n in 0..200u8 {
            index.create(&format!("n{n}.md"), entry(n));
        }
        index.save(&path, &side).unwrap();
        let whole = fs::read(&path).unwrap();
        assert!(!side.changes.exists());

        // A few changes: the index file stays as it was, the changes are appended.
        let mut index = Index::load(&path, &side, &log).unwrap();
        index.set("n1.md", entry(201));
        index.apply(&record(Event::Deleted, "n2.md", None, b"x"));
        index.apply(&record(Event::Renamed, "moved.md", Some("n3.md"), &[3]));
        index.scan_started_ns = 77;
        index.save(&path, &side).unwrap();
        index.set("n4.md", entry(204));
        index.save(&path, &side).unwrap();
        assert_eq!(fs::read(&path).unwrap(), whole);
        assert!(side.changes.exists());
        let back = Index::load(&path, &side, &log).unwrap();
        assert_eq!(entries(&back), entries(&index));
        assert_eq!(back.len(), 199);
        assert_eq!(back.scan_started_ns, 77);
        assert!(back.get("n2.md").is_none() && back.get("moved.md").is_some());

        // A torn last block is ignored, and the next block overwrites it.
        let len = fs::metadata(&side.changes).unwrap().len();
        let file = fs::OpenOptions::new()
            .write(true)
            .open(&side.changes)
            .unwrap();
        file.set_len(len - 5).unwrap();
        drop(file);
        let mut torn = Index::load(&path, &side, &log).unwrap();
        assert_eq!(
            torn.get("n4.md"),
            Some(entry(4)),
            "the torn block is not applied"
        );
        assert_eq!(
            torn.get("n1.md"),
            Some(entry(201)),
            "the whole one before it is"
        );
        torn.set("n5.md", entry(205));
        torn.save(&path, &side).unwrap();
        let again = Index::load(&path, &side, &log).unwrap();
        assert_eq!(entries(&again), entries(&torn));

        // Many changes: the index is written whole and the change log removed; a change log
        // left over from another index is never applied to this one.
        let stale = fs::read(&side.changes).unwrap();
        let mut many = Index::load(&path, &side, &log).unwrap();
        for n in 0..100u8 {
            if many.get(&format!("n{n}.md")).is_some() {
                many.set(&format!("n{n}.md"), entry(n.wrapping_add(100)));
            }
        }
        many.scan_started_ns = 99;
        many.save(&path, &side).unwrap();
        assert!(!side.changes.exists());
        assert_ne!(fs::read(&path).unwrap(), whole);
        fs::write(&side.changes, stale).unwrap();
        let fresh = Index::load(&path, &side, &log).unwrap();
        assert_eq!(entries(&fresh), entries(&many));
    }

    /// A long run of records, sets, saves and loads keeps the index equal to a plain map of
    /// what it should hold, its count included.
    #[test]
    fn the_index_agrees_with_a_model_through_changes_saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (path, side, log) = files(dir.path());
        let mut model: BTreeMap<String, Entry> = BTreeMap::new();
        let mut index = Index::load(&path, &side, &log).unwrap();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for step in 0..3000u32 {
            let name = format!("f/{:03}.md", next(400));
            let n = (step % 250) as u8;
            let present = model.contains_key(&name);
            let mut records = Vec::new();
            match (next(5), present) {
                (0 | 1, false) => records.push(record(Event::Created, &name, None, &[n])),
                (0, true) => records.push(record(Event::Modified, &name, None, &[n])),
                (1, true) => records.push(record(Event::Deleted, &name, None, &[n])),
                (2, true) => {
                    let to = format!("g/{:03}.md", next(400));
                    if !model.contains_key(&to) {
                        let sha = model[&name].sha256;
                        let mut r = record(Event::Renamed, &to, Some(&name), &[]);
                        r.sha256 = sha;
                        records.push(r);
                    }
                }
                (3, true) => {
                    index.set(&name, entry(n));
                    model.insert(name.clone(), entry(n));
                }
                (4, _) => {
                    index.save(&path, &side).unwrap();
                    if next(3) == 0 {
                        index = Index::load(&path, &side, &log).unwrap();
                    }
                }
                _ => {}
            }
            if !records.is_empty() {
                index.log_end = log.append(&records).unwrap();
                index.log_lines += records.len();
            }
            for r in &records {
                index.apply(r);
                match r.event {
                    Event::Created | Event::Modified => {
                        model.insert(r.path.clone(), Entry::from_record(r));
                    }
                    Event::Deleted => {
                        model.remove(&r.path);
                    }
                    Event::Renamed => {
                        let old = model.remove(r.from.as_deref().unwrap()).unwrap();
                        model.insert(r.path.clone(), old);
                    }
                }
            }
            if step % 97 == 0 {
                let walked = entries(&index);
                assert_eq!(
                    walked,
                    model.clone().into_iter().collect::<Vec<_>>(),
                    "step {step}"
                );
                let mut cursor = index.cursor("");
                for (p, e) in &model {
                    assert_eq!(cursor.get(p), Some(*e), "step {step}: {p}");
                }
            }
        }
        index.save(&path, &side).unwrap();
        let back = Index::load(&path, &side, &log).unwrap();
        assert_eq!(entries(&back), model.into_iter().collect::<Vec<_>>());
    }
}
