//! One vault file during a scan: read, hash and store it only if its stat data changed.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use crate::digest::Digest;
use crate::note::{NoteFacts, read_note_bytes, too_large};
use crate::report::Problem;
use crate::store::{self, Entry, Sink};
use crate::vault::{FileKind, Stat, VaultFile};

/// Files up to this size are read into memory once; larger ones are streamed into the archive.
const READ_WHOLE: u64 = 16 * 1024 * 1024;

/// Whether a file's stat data say it has not changed since `prev` was recorded (and was not
/// recorded in the clock tick it was modified in).
pub(super) fn unchanged(prev: &Entry, stat: &Stat, racy_after_ns: i128) -> bool {
    prev.size == stat.size
        && prev.mtime_ns == stat.mtime_ns
        && prev.ino == stat.ino
        && prev.mtime_ns != 0
        && i128::from(prev.mtime_ns) < racy_after_ns
}

/// What a scan learned about one file.
pub(super) enum Outcome {
    /// The file was seen: its current content address and stat data.
    Seen {
        entry: Entry,
        /// Facts of a note read now (boxed: most outcomes have none, and stay small).
        facts: Option<Box<NoteFacts>>,
        /// Bytes of new objects written.
        new_bytes: u64,
    },
    /// The file could not be read; its previous state is kept, so it is not taken for deleted.
    Failed(Problem),
}

/// Looks at `file`, whose previous state was `previous`. An entry modified at or after
/// `racy_after_ns` is read again even if its stat data match (it may have changed again in
/// the same clock tick). Errors are the archive's and stop the scan; the vault's errors are
/// per-file [`Outcome::Failed`]. Without `objects` (a preview), the file is hashed and read
/// but nothing is stored.
pub(super) fn examine(
    vault: &Path,
    file: &VaultFile,
    previous: Option<&Entry>,
    racy_after_ns: i128,
    objects: Option<&Sink<'_>>,
    max_note_bytes: u64,
) -> Result<Outcome, store::Error> {
    let stat = file.stat;
    if let Some(prev) = previous
        && unchanged(prev, &stat, racy_after_ns)
    {
        return Ok(Outcome::Seen {
            entry: *prev,
            facts: None,
            new_bytes: 0,
        });
    }
    let failed = |e: io::Error| Ok(Outcome::Failed(Problem::new(&file.path, describe(&e))));
    let abs = vault.join(&file.path);
    let is_note = file.kind == FileKind::Note;
    // The file's stat once read (from its descriptor when it was read whole).
    let mut after = None;
    let whole = stat.size <= READ_WHOLE && (!is_note || stat.size <= max_note_bytes);
    let (digest, size, new, facts) = if whole {
        let (bytes, now) = match read_whole(&abs, stat.size) {
            Ok(b) => b,
            Err(e) => return failed(e),
        };
        after = now;
        let digest = Digest::of(&bytes);
        let new = match objects {
            Some(o) => o
                .put(&digest, &bytes)
                .map_err(store::Error::io("write an object for", &abs))?,
            None => false,
        };
        let facts = is_note.then(|| Box::new(read_note_bytes(&bytes, max_note_bytes)));
        (digest, bytes.len() as u64, new, facts)
    } else {
        let source = match File::open(&abs) {
            Ok(f) => f,
            Err(e) => return failed(e),
        };
        let mut tracked = Tracked {
            inner: source,
            error: false,
        };
        let stored = match objects {
            Some(o) => o.put_reader(&mut tracked),
            None => Digest::of_reader(&mut tracked).map(|d| (d, stat.size, false)),
        };
        match stored {
            Ok((digest, size, new)) => (
                digest,
                size,
                new,
                is_note.then(|| Box::new(too_large(size, max_note_bytes))),
            ),
            Err(e) if tracked.error => return failed(e),
            Err(e) => return Err(store::Error::io("write an object for", &abs)(e)),
        }
    };

    // If the file changed while we read it, what we stored is one of its states; forget the
    // stat data so the next scan reads it again.
    let after = after.or_else(|| fs::metadata(&abs).map(|m| Stat::of(&m)).ok());
    let settled = after.is_some_and(|a| a.size == size && a.mtime_ns == stat.mtime_ns);
    Ok(Outcome::Seen {
        entry: Entry {
            sha256: digest,
            size,
            mtime_ns: if settled { stat.mtime_ns } else { 0 },
            ino: stat.ino,
        },
        facts,
        new_bytes: if new { size } else { 0 },
    })
}

/// Reads a whole file, sized by the walk's stat (one read call for most files), and its stat
/// once read (from the descriptor: no second path lookup).
fn read_whole(path: &Path, size: u64) -> io::Result<(Vec<u8>, Option<Stat>)> {
    let mut file = File::open(path)?;
    let mut bytes = Vec::with_capacity(size as usize + 1);
    file.read_to_end(&mut bytes)?;
    let after = file.metadata().map(|m| Stat::of(&m)).ok();
    Ok((bytes, after))
}

/// A vault read error, for a person.
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => {
            "vanished during the scan; it will be recorded as deleted next time if it stays gone"
                .into()
        }
        _ => format!("cannot read ({e}); its last recorded version is kept"),
    }
}

/// Remembers whether a read error came from the vault file (not from the archive).
struct Tracked<R> {
    inner: R,
    error: bool,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.error = true)
    }
}
