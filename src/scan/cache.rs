//! What each note says, cached by content address (the archive's note cache), so an unchanged
//! note is not parsed again. Derived data: a missing, torn or unreadable cache only costs time.
//!
//! One line per note content, `<sha256> <facts as JSON>`, after a header line naming the
//! program version and the reading options that made it (another version, or another
//! `max_note_bytes`, reads the notes afresh). A scan appends the notes it reads instead of
//! holding them; readers find a line by its offset and check that it starts with the digest
//! they looked for, so a torn or overwritten line is a miss, never wrong facts. Once most
//! lines are stale, the cache is rewritten with the live ones.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::digest::Digest;
use crate::note::NoteFacts;
use crate::store::{Doc, Store};

/// Appended lines are written in blocks of about this size.
const FLUSH_AT: usize = 1024 * 1024;

/// The first line: what the cached facts depend on besides the notes' bytes.
fn header(max_note_bytes: u64) -> String {
    format!(
        "{{\"note_cache\":2,\"version\":\"{}\",\"max_note_bytes\":{max_note_bytes}}}\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Where the cache lives in an archive.
pub(super) fn path(store: &Store) -> PathBuf {
    store.root().join(Doc::NoteCache.file())
}

/// Where one line lies in its file (the newline excluded).
#[derive(Debug, Clone, Copy)]
struct Loc {
    offset: u64,
    len: u32,
}

/// Lines are found by the first 8 bytes of their digest: a quarter of the memory of whole
/// digests, and a rare collision is only a miss (every line is checked against the full
/// digest it is read for).
fn key(digest: &Digest) -> u64 {
    let b = digest.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Cached lines, by digest, in one file.
pub(super) struct Lines {
    file: File,
    locs: rustc_hash::FxHashMap<u64, Loc>,
    /// Lines in the file, stale ones included.
    lines: usize,
}

impl Lines {
    /// The cache as it is, if it was made by this version with these options.
    pub(super) fn open(path: &Path, max_note_bytes: u64) -> Option<Lines> {
        let file = File::open(path).ok()?;
        let mut reader = BufReader::with_capacity(1024 * 1024, file.try_clone().ok()?);
        let mut line = Vec::new();
        reader.read_until(b'\n', &mut line).ok()?;
        if line != header(max_note_bytes).as_bytes() {
            return None;
        }
        let mut offset = line.len() as u64;
        let (mut locs, mut lines) = (rustc_hash::FxHashMap::default(), 0);
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(n) => {
                    // A last line without its newline was torn by a killed run: skipped.
                    if line.ends_with(b"\n")
                        && let Some(digest) = digest_of(&line)
                    {
                        let len = (n - 1) as u32;
                        locs.insert(key(&digest), Loc { offset, len });
                        lines += 1;
                    }
                    offset += n as u64;
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "note cache unreadable, ignored: {e}");
                    return None;
                }
            }
        }
        Some(Lines { file, locs, lines })
    }

    /// The facts cached for this content, if a sound line holds them.
    pub(super) fn get(&self, digest: &Digest) -> Option<NoteFacts> {
        let line = self.raw(digest)?;
        match serde_json::from_slice(&line[65..]) {
            Ok(facts) => Some(facts),
            Err(e) => {
                tracing::debug!(%digest, "note cache line unreadable, the note is read again: {e}");
                None
            }
        }
    }

    /// A line's bytes, checked to be the line of `digest`.
    fn raw(&self, digest: &Digest) -> Option<Vec<u8>> {
        let line = self.line_at(self.locs.get(&key(digest))?)?;
        (digest_of(&line) == Some(*digest)).then_some(line)
    }

    fn line_at(&self, loc: &Loc) -> Option<Vec<u8>> {
        let mut line = vec![0; loc.len as usize];
        self.file.read_exact_at(&mut line, loc.offset).ok()?;
        Some(line)
    }

    /// Every sound line's content address and facts.
    pub(super) fn entries(&self) -> impl Iterator<Item = (Digest, NoteFacts)> + '_ {
        self.locs.values().filter_map(|loc| {
            let line = self.line_at(loc)?;
            let digest = digest_of(&line)?;
            Some((digest, serde_json::from_slice(&line[65..]).ok()?))
        })
    }

    /// Lines found.
    pub(super) fn len(&self) -> usize {
        self.locs.len()
    }

    /// Lines in the file, stale ones included.
    pub(super) fn line_count(&self) -> usize {
        self.lines
    }

    /// How many lines a cache for `live` note contents may hold before it is rewritten.
    pub(super) fn keep_up_to(live: usize) -> usize {
        2 * live + 1024
    }

    /// Rewrites the cache with only the lines of `live` contents.
    pub(super) fn compact(
        &self,
        path: &Path,
        max_note_bytes: u64,
        live: &HashSet<Digest>,
    ) -> io::Result<()> {
        let how = crate::fsutil::Replace::default();
        crate::fsutil::replace_streaming(path, &how, |w| {
            w.write_all(header(max_note_bytes).as_bytes())?;
            for digest in live {
                if let Some(line) = self.raw(digest) {
                    w.write_all(&line)?;
                    w.write_all(b"\n")?;
                }
            }
            Ok(())
        })
        .map(|_| ())
    }
}

/// The digest a line starts with.
fn digest_of(line: &[u8]) -> Option<Digest> {
    if line.len() < 66 || line[64] != b' ' {
        return None;
    }
    std::str::from_utf8(&line[..64]).ok()?.parse().ok()
}

/// Adds lines for notes read now, from many threads; writes them in blocks.
pub(super) struct Appender {
    file: File,
    /// The archive's cache (shared with other runs: appends are locked), or a temp file.
    shared: bool,
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Lines in `bytes`: digest, start, length.
    lines: Vec<(Digest, usize, u32)>,
    written: rustc_hash::FxHashMap<u64, Loc>,
    error: Option<io::Error>,
}

impl Appender {
    /// Appends to the archive's note cache, started afresh when it was made by another
    /// version or with other options.
    pub(super) fn archive(path: &Path, max_note_bytes: u64) -> io::Result<Appender> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let expected = header(max_note_bytes);
        let mut first = vec![0; expected.len()];
        let sound = file.read_exact_at(&mut first, 0).is_ok() && first == expected.as_bytes();
        if !sound {
            let _lock = Flock::exclusive(&file)?;
            file.set_len(0)?;
            file.write_all_at(expected.as_bytes(), 0)?;
            // The cache of earlier versions (one JSON document beside it) is replaced.
            let _ = fs::remove_file(path.with_file_name("notes.json"));
        }
        Ok(Appender {
            file,
            shared: true,
            pending: Mutex::default(),
        })
    }

    /// Holds the lines in a temp file: a preview writes nothing to the archive.
    pub(super) fn temporary() -> io::Result<Appender> {
        Ok(Appender {
            file: tempfile::tempfile()?,
            shared: false,
            pending: Mutex::default(),
        })
    }

    /// Adds the facts of one note's content. A write failure is kept for [`Appender::finish`].
    pub(super) fn add(&self, digest: &Digest, facts: &NoteFacts) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.error.is_some() {
            return;
        }
        let start = p.bytes.len();
        p.bytes.extend_from_slice(digest.to_hex().as_bytes());
        p.bytes.push(b' ');
        if let Err(e) = serde_json::to_writer(&mut p.bytes, facts) {
            p.bytes.truncate(start);
            tracing::warn!(%digest, "cannot cache a note's facts: {e}");
            return;
        }
        let len = (p.bytes.len() - start) as u32;
        p.bytes.push(b'\n');
        p.lines.push((*digest, start, len));
        if p.bytes.len() >= FLUSH_AT {
            self.flush(&mut p);
        }
    }

    fn flush(&self, p: &mut Pending) {
        if p.bytes.is_empty() {
            return;
        }
        match self.write_block(&p.bytes) {
            Ok(at) => {
                let lines = std::mem::take(&mut p.lines);
                for (digest, start, len) in lines {
                    let offset = at + start as u64;
                    p.written.insert(key(&digest), Loc { offset, len });
                }
            }
            Err(e) => p.error = Some(e),
        }
        p.bytes.clear();
        p.lines.clear();
    }

    /// Writes a block at the file's end (under a lock when other runs may append too); where
    /// it starts.
    fn write_block(&self, bytes: &[u8]) -> io::Result<u64> {
        let _lock = if self.shared {
            Some(Flock::exclusive(&self.file)?)
        } else {
            None
        };
        let mut at = self.file.metadata()?.len();
        // A line torn by a killed run is ended first, so it cannot run into ours.
        let mut last = [0u8];
        if at > 0 && self.file.read_exact_at(&mut last, at - 1).is_ok() && last[0] != b'\n' {
            self.file.write_all_at(b"\n", at)?;
            at += 1;
        }
        self.file.write_all_at(bytes, at)?;
        Ok(at)
    }

    /// Writes what is pending: the lines added, to read back, and the first write error.
    pub(super) fn finish(self) -> (Lines, Option<io::Error>) {
        let mut p = self.pending.into_inner().unwrap_or_else(|e| e.into_inner());
        let appender = Appender {
            file: self.file,
            shared: self.shared,
            pending: Mutex::default(),
        };
        appender.flush(&mut p);
        let lines = Lines {
            file: appender.file,
            lines: p.written.len(),
            locs: p.written,
        };
        (lines, p.error)
    }
}

/// An exclusive `flock` on a file, released when dropped.
struct Flock<'a>(&'a File);

impl<'a> Flock<'a> {
    fn exclusive(file: &'a File) -> io::Result<Flock<'a>> {
        rustix::fs::flock(file, rustix::fs::FlockOperation::LockExclusive)?;
        Ok(Flock(file))
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(self.0, rustix::fs::FlockOperation::Unlock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::read_note;
    use std::io::Write;

    fn facts(text: &str) -> NoteFacts {
        read_note(text)
    }

    #[test]
    fn appended_lines_read_back_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache/notes.jsonl");
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let appender = Appender::archive(&path, 100).unwrap();
        appender.add(&a, &facts("[[x]] https://a.example/"));
        appender.add(&b, &facts("[[y]]"));
        let (fresh, error) = appender.finish();
        assert!(error.is_none());
        assert_eq!(fresh.get(&a).unwrap().links.len(), 2);
        let cache = Lines::open(&path, 100).unwrap();
        assert_eq!(cache.get(&b).unwrap().links[0].target, "y");
        // Other reading options: the cache is not used, and is started afresh.
        assert!(Lines::open(&path, 200).is_none());
        Appender::archive(&path, 200).unwrap().finish();
        assert!(Lines::open(&path, 200).unwrap().get(&a).is_none());
    }

    #[test]
    fn a_torn_or_overwritten_line_is_a_miss_not_wrong_facts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.jsonl");
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let appender = Appender::archive(&path, 100).unwrap();
        appender.add(&a, &facts("[[x]]"));
        let (fresh, _) = appender.finish();
        // A killed run left half a line; the next run ends it before appending its own.
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(format!("{} {{\"links\":[", b.to_hex()).as_bytes())
            .unwrap();
        let appender = Appender::archive(&path, 100).unwrap();
        appender.add(&b, &facts("[[z]]"));
        appender.finish();
        let cache = Lines::open(&path, 100).unwrap();
        assert_eq!(cache.get(&b).unwrap().links[0].target, "z");
        // Someone rewrote the file under a reader: the old offsets now miss.
        fs::write(&path, header(100) + &format!("{} {{}}\n", b.to_hex())).unwrap();
        assert!(fresh.get(&a).is_none());
        let reread = Lines::open(&path, 100).unwrap();
        assert!(reread.get(&a).is_none());
    }

    #[test]
    fn compacting_keeps_only_live_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.jsonl");
        let appender = Appender::archive(&path, 100).unwrap();
        let digests: Vec<Digest> = (0..50).map(|i| Digest::of(&[i])).collect();
        for d in &digests {
            appender.add(d, &facts("[[n]]"));
        }
        appender.finish();
        let cache = Lines::open(&path, 100).unwrap();
        let live: HashSet<Digest> = digests[..3].iter().copied().collect();
        cache.compact(&path, 100, &live).unwrap();
        let after = Lines::open(&path, 100).unwrap();
        assert_eq!(after.len(), 3);
        assert!(after.get(&digests[0]).is_some() && after.get(&digests[9]).is_none());
    }
}
