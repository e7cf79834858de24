//! Append-only JSON Lines files: the archive's records (versions, captures, link checks).
//!
//! A record is one line, written with one `write` and made durable with one fsync per batch.
//! A crash can leave at most a torn last line: readers ignore it, and the next writer cuts it
//! off before appending, so the file is again a sequence of whole records.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// One JSON Lines file of records.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

/// What reading a journal found.
#[derive(Debug)]
pub struct Records<T> {
    /// Whole, valid records in file order, each with its 1-based line number.
    pub records: Vec<(usize, T)>,
    /// Byte offset just after the last whole line.
    pub end: u64,
    /// Bytes after the last newline: a write cut short by a crash.
    pub torn_tail: u64,
    /// Lines that are not valid records: `(line, message)`.
    pub bad: Vec<(usize, String)>,
}

impl Journal {
    /// A journal at `path` (created on first append).
    pub fn new(path: PathBuf) -> Journal {
        Journal { path }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends records as whole lines and makes them durable. Returns the new length.
    pub fn append<T: Serialize>(&self, records: &[T]) -> io::Result<u64> {
        let mut buf = Vec::with_capacity(records.len() * 160);
        for r in records {
            serde_json::to_writer(&mut buf, r).map_err(io::Error::other)?;
            buf.push(b'\n');
        }
        self.append_raw(&buf)
    }

    /// The bytes of the whole lines after byte `offset` (a line start), and where they end:
    /// what a remote gets of this log, exactly as written.
    pub fn read_lines_raw(&self, offset: u64) -> io::Result<(Vec<u8>, u64)> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len <= offset {
            return Ok((Vec::new(), offset));
        }
        file.seek(SeekFrom::Start(offset))?;
        let mut bytes = Vec::with_capacity((len - offset) as usize);
        file.take(len - offset).read_to_end(&mut bytes)?;
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        bytes.truncate(whole);
        Ok((bytes, offset + whole as u64))
    }

    /// Appends whole lines as they are (another device's records) and makes them durable.
    /// Returns the new length.
    pub fn append_raw(&self, lines: &[u8]) -> io::Result<u64> {
        if !lines.is_empty() && lines.last() != Some(&b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "records must end with a newline",
            ));
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)?;
        cut_torn_tail(&mut file, &self.path)?;
        if !lines.is_empty() {
            file.write_all(lines)?;
            file.sync_data()?;
        }
        file.metadata().map(|m| m.len())
    }

    /// The file's length (0 when it does not exist).
    pub fn len(&self) -> io::Result<u64> {
        match std::fs::metadata(&self.path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Reads every record; a missing file has none.
    pub fn read<T: DeserializeOwned>(&self) -> io::Result<Records<T>> {
        self.read_from(0, 0)
    }

    /// Reads the records after byte `offset`, which must be a line start; `first_line` is the
    /// number of lines before it.
    pub fn read_from<T: DeserializeOwned>(
        &self,
        offset: u64,
        first_line: usize,
    ) -> io::Result<Records<T>> {
        self.read_where(offset, first_line, |_| true)
    }

    /// [`Journal::read_from`], parsing only the lines `wanted` accepts as they are (a search
    /// of the bytes costs far less than parsing every record of a long log).
    pub fn read_where<T: DeserializeOwned>(
        &self,
        offset: u64,
        first_line: usize,
        wanted: impl FnMut(&[u8]) -> bool,
    ) -> io::Result<Records<T>> {
        let mut records = Vec::new();
        let read = self.visit(offset, first_line, wanted, |line, r| {
            records.push((line, r))
        })?;
        Ok(Records { records, ..read })
    }

    /// Hands each record after byte `offset` whose line `wanted` accepts to `each`, with its
    /// line number, holding none of them: for folding a long log into what its reader keeps.
    /// The returned [`Records`] holds no records, only where the whole lines end and what
    /// could not be read.
    pub fn visit<T: DeserializeOwned>(
        &self,
        offset: u64,
        first_line: usize,
        mut wanted: impl FnMut(&[u8]) -> bool,
        mut each: impl FnMut(usize, T),
    ) -> io::Result<Records<T>> {
        let mut out = Records {
            records: Vec::new(),
            end: offset,
            torn_tail: 0,
            bad: Vec::new(),
        };
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(offset))?;
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        let mut line = Vec::new();
        let mut number = first_line;
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            if line.last() != Some(&b'\n') {
                out.torn_tail = n as u64;
                break;
            }
            number += 1;
            out.end += n as u64;
            if !wanted(&line) {
                continue;
            }
            match serde_json::from_slice::<T>(&line) {
                Ok(r) => each(number, r),
                Err(e) => out.bad.push((number, e.to_string())),
            }
        }
        Ok(out)
    }
}

/// Truncates bytes after the last newline (left by a crash mid-write).
fn cut_torn_tail(file: &mut File, path: &Path) -> io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    // Walk back to the last newline, a block at a time.
    let mut end = len;
    let mut keep = 0;
    while end > 0 {
        let start = end.saturating_sub(64 * 1024);
        let mut block = vec![0u8; (end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        if let Some(i) = block.iter().rposition(|b| *b == b'\n') {
            keep = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    tracing::warn!(path = %path.display(), cut = len - keep, "cutting a torn record left by an interrupted write");
    file.set_len(keep)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct R {
        n: u32,
    }

    #[test]
    fn records_round_trip_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path().join("r.jsonl"));
        j.append(&[R { n: 1 }, R { n: 2 }]).unwrap();
        j.append(&[R { n: 3 }]).unwrap();
        let read = j.read::<R>().unwrap();
        let ns: Vec<_> = read.records.iter().map(|(line, r)| (*line, r.n)).collect();
        assert_eq!(ns, vec![(1, 1), (2, 2), (3, 3)]);
        let later = j.read_from::<R>(read.end - 8, 2).unwrap();
        assert_eq!(later.records.len(), 1);
    }

    #[test]
    fn a_torn_tail_is_ignored_by_readers_and_cut_by_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, "{\"n\":1}\n{\"n\":").unwrap();
        let j = Journal::new(path.clone());
        let read = j.read::<R>().unwrap();
        assert_eq!((read.records.len(), read.torn_tail), (1, 5));
        j.append(&[R { n: 2 }]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"n\":1}\n{\"n\":2}\n"
        );
    }

    #[test]
    fn a_bad_line_is_reported_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, "{\"n\":1}\nnot json\n{\"n\":3}\n").unwrap();
        let read = Journal::new(path).read::<R>().unwrap();
        assert_eq!(read.records.len(), 2);
        assert_eq!(read.bad[0].0, 2);
    }

    #[test]
    fn raw_lines_are_read_whole_and_appended_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, "{\"n\":1}\n{\"n\":2}\n{\"n\":").unwrap();
        let j = Journal::new(path);
        let (bytes, end) = j.read_lines_raw(0).unwrap();
        assert_eq!(
            (bytes.as_slice(), end),
            (&b"{\"n\":1}\n{\"n\":2}\n"[..], 16)
        );
        let (rest, end2) = j.read_lines_raw(8).unwrap();
        assert_eq!((rest.as_slice(), end2), (&b"{\"n\":2}\n"[..], 16));
        let other = Journal::new(dir.path().join("peers/b.jsonl"));
        other.append_raw(&bytes).unwrap();
        assert_eq!(other.read::<R>().unwrap().records.len(), 2);
        assert!(
            other.append_raw(b"{\"n\":3}").is_err(),
            "a torn line is refused"
        );
        assert_eq!(other.len().unwrap(), 16);
    }

    #[test]
    fn a_missing_journal_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            Journal::new(dir.path().join("none"))
                .read::<R>()
                .unwrap()
                .records
                .is_empty()
        );
    }
}
