//! One vault file during a scan: stat it, and read, hash and store it only if it changed.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::time::UNIX_EPOCH;

use crate::digest::Digest;
use crate::note::{NoteFacts, read_note_bytes, too_large};
use crate::report::Problem;
use crate::store::{self, Entry, Objects};
use crate::vault::{FileKind, VaultFile};

/// Files up to this size are read into memory once; larger ones are streamed into the archive.
const READ_WHOLE: u64 = 16 * 1024 * 1024;

/// What a scan learned about one file.
pub(super) enum Outcome {
    /// The file was seen: its current content address and stat data.
    Seen {
        entry: Entry,
        /// Facts read now (the note changed, or the cache did not have them).
        facts: Option<NoteFacts>,
        /// Bytes of new objects written.
        new_bytes: u64,
    },
    /// The file could not be read; its previous state is kept, so it is not taken for deleted.
    Failed(Problem),
}

/// Looks at `file`, whose previous state was `previous`. Entries modified at or after
/// `racy_after_ns` are re-hashed even if their stat data match. Errors are the archive's:
/// they stop the scan; the vault's errors are per-file [`Outcome::Failed`].
pub(super) fn examine(
    file: &VaultFile,
    previous: Option<&Entry>,
    racy_after_ns: i128,
    objects: &Objects,
    known: &HashMap<Digest, NoteFacts>,
    max_note_bytes: u64,
) -> Result<Outcome, store::Error> {
    let failed = |e: io::Error| Ok(Outcome::Failed(Problem::new(&file.path, describe(&e))));
    let meta = match fs::metadata(&file.abs) {
        Ok(m) => m,
        Err(e) => return failed(e),
    };
    let stat = stat_of(&meta);
    let is_note = file.kind == FileKind::Note;
    if let Some(prev) = previous
        && prev.size == stat.size
        && prev.mtime_ns == stat.mtime_ns
        && prev.ino == stat.ino
        && prev.mtime_ns != 0
        && prev.mtime_ns < racy_after_ns
        && (!is_note || known.contains_key(&prev.sha256))
    {
        return Ok(Outcome::Seen {
            entry: *prev,
            facts: None,
            new_bytes: 0,
        });
    }

    let whole = stat.size <= READ_WHOLE && (!is_note || stat.size <= max_note_bytes);
    let (digest, size, new, facts) = if whole {
        let bytes = match fs::read(&file.abs) {
            Ok(b) => b,
            Err(e) => return failed(e),
        };
        let digest = Digest::of(&bytes);
        let new = objects
            .put(&digest, &bytes)
            .map_err(store::Error::io("write an object for", &file.abs))?;
        let facts = (is_note && !known.contains_key(&digest))
            .then(|| read_note_bytes(&bytes, max_note_bytes));
        (digest, bytes.len() as u64, new, facts)
    } else {
        let source = match File::open(&file.abs) {
            Ok(f) => f,
            Err(e) => return failed(e),
        };
        let mut tracked = Tracked {
            inner: source,
            error: false,
        };
        match objects.put_reader(&mut tracked) {
            Ok((digest, size, new)) => (
                digest,
                size,
                new,
                is_note.then(|| too_large(size, max_note_bytes)),
            ),
            Err(e) if tracked.error => return failed(e),
            Err(e) => return Err(store::Error::io("write an object for", &file.abs)(e)),
        }
    };

    // If the file changed while we read it, what we stored is one of its states; forget the
    // stat data so the next scan looks again.
    let after = fs::metadata(&file.abs).map(|m| stat_of(&m)).ok();
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

struct Stat {
    size: u64,
    mtime_ns: i128,
    ino: u64,
}

fn stat_of(meta: &Metadata) -> Stat {
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let ino = 0;
    Stat {
        size: meta.len(),
        mtime_ns,
        ino,
    }
}

/// A vault read error, for a person.
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => {
            "vanished during the scan; it will be recorded as deleted next time if it stays gone"
                .into()
        }
        io::ErrorKind::PermissionDenied => {
            format!("cannot read ({e}); its last recorded version is kept")
        }
        _ => format!("cannot read: {e}"),
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
