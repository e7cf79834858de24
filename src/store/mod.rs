//! The archive on disk: objects, records, the scan index and the writer's lock.
//!
//! Layout (documented for people in the README and in `archive/README.md`):
//! ```text
//! archive/
//!   objects/ab/ab12…        content-addressed blobs (sha256), read-only
//!   versions.jsonl          one line per recorded version of a vault file (append-only)
//!   index                   scan index: path → size, mtime, inode, sha256 (derived, rebuildable)
//!   cache/notes.json        links read from each note, by content (derived, rebuildable)
//!   lock                    held by the one writer; says who
//! ```
//! Order makes it crash-safe: objects first, made durable, then the records that point at them,
//! then the derived files.

mod index;
mod journal;
mod lock;
mod objects;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;

pub use index::{Entry, Index};
pub use journal::{Journal, Records};
pub use lock::{Lock, LockHolder};
pub use objects::{ObjectEntry, Objects};

/// Why the archive could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No archive where one was expected.
    #[error("no archive at {0} (run `vaultkeep scan` to create one)")]
    Missing(PathBuf),
    /// The archive path is a file.
    #[error("the archive {0} is a file, not a folder (give the archive's folder with --archive)")]
    NotAFolder(PathBuf),
    /// The archive folder cannot be written by this user.
    #[error(
        "cannot write to the archive {path}: {detail}; give this user write permission on it (e.g. `chmod u+w`), or choose another folder with --archive"
    )]
    NotWritable {
        /// The folder or file that refused.
        path: PathBuf,
        /// Its owner and mode, and who we are.
        detail: String,
    },
    /// Another vaultkeep process is writing to the archive.
    #[error("the archive {path} is in use by {holder}")]
    Locked {
        /// The archive.
        path: PathBuf,
        /// Who holds it.
        holder: LockHolder,
    },
    /// The archive's disk is full. Objects are written before the records that point at
    /// them, so nothing of the interrupted work is recorded and the archive stays consistent.
    #[error(
        "the archive's disk is full (while trying to {action} {path}); nothing from this run was recorded and the archive is consistent: free some space and run again"
    )]
    Full {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A file of the archive could not be read or written.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error + use<> {
        let path = path.to_path_buf();
        move |source| match source.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                Error::Full { action, path }
            }
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                Error::NotWritable {
                    detail: permissions(&path, &source),
                    path,
                }
            }
            _ => Error::Io {
                action,
                path,
                source,
            },
        }
    }
}

/// Why a path refused a write, for a person: read-only file system, or its owner and mode.
fn permissions(path: &Path, cause: &io::Error) -> String {
    if cause.kind() == io::ErrorKind::ReadOnlyFilesystem {
        return "it is on a read-only file system".into();
    }
    // The nearest existing folder is the one whose permission matters.
    let mut at = path;
    let meta = loop {
        match fs::metadata(at) {
            Ok(m) => break Some(m),
            Err(_) => match at.parent() {
                Some(p) if !p.as_os_str().is_empty() => at = p,
                _ => break None,
            },
        }
    };
    #[cfg(unix)]
    if let Some(m) = meta {
        use std::os::unix::fs::MetadataExt;
        return format!(
            "{} is owned by uid {} with mode {:o}, and this process runs as uid {}",
            at.display(),
            m.uid(),
            m.mode() & 0o7777,
            rustix::process::geteuid().as_raw()
        );
    }
    let _ = meta;
    format!("permission denied on {}", at.display())
}

/// What happened to a vault file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A path seen for the first time.
    Created,
    /// New content at a known path.
    Modified,
    /// The same content moved from `from` to `path`.
    Renamed,
    /// The path is gone; `sha256` is its last content, still in the archive.
    Deleted,
}

impl Event {
    /// The word used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Event::Created => "created",
            Event::Modified => "modified",
            Event::Renamed => "renamed",
            Event::Deleted => "deleted",
        }
    }
}

/// One recorded version of one vault file: a line of `versions.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// When it was recorded.
    pub time: Timestamp,
    /// What happened.
    pub event: Event,
    /// The vault-relative path (after a rename, the new path).
    pub path: String,
    /// For a rename, the old path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The content (for a deletion, the last content).
    pub sha256: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// An archive folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    objects: Objects,
}

const LAYOUT_README: &str = include_str!("../../archive/README.md");

impl Store {
    /// Opens the archive at `root` for reading; it must exist.
    pub fn open(root: &Path) -> Result<Store, Error> {
        if root.is_file() {
            return Err(Error::NotAFolder(root.to_path_buf()));
        }
        if !root.join("objects").is_dir() {
            return Err(Error::Missing(root.to_path_buf()));
        }
        Ok(Store::at(root))
    }

    /// Opens the archive at `root` for a preview (a dry run): like [`Store::open`], but a
    /// missing archive reads as an empty one and nothing is created.
    pub fn open_for_preview(root: &Path) -> Result<Store, Error> {
        match Store::open(root) {
            Err(Error::Missing(_)) => Ok(Store::at(root)),
            other => other,
        }
    }

    /// Opens the archive at `root`, creating its layout if needed, and takes the writer's lock.
    pub fn open_for_writing(root: &Path, command: &str) -> Result<(Store, Lock), Error> {
        if root.is_file() {
            return Err(Error::NotAFolder(root.to_path_buf()));
        }
        fs::create_dir_all(root).map_err(Error::io("create the archive folder", root))?;
        let store = Store::at(root);
        let lock = store.lock(command)?;
        if !root.join("objects").join("ff").is_dir() {
            store
                .objects
                .create_layout()
                .map_err(Error::io("create the object folders in", root))?;
        }
        let readme = root.join("README.md");
        if !readme.exists() {
            fs::write(&readme, LAYOUT_README).map_err(Error::io("write", &readme))?;
        }
        Ok((store, lock))
    }

    /// Takes the writer's lock of an open archive, for `command`.
    pub fn lock(&self, command: &str) -> Result<Lock, Error> {
        let root = &self.root;
        Lock::acquire(&root.join("lock"), command).map_err(|e| match e {
            lock::Failure::Held(holder) => Error::Locked {
                path: root.to_path_buf(),
                holder,
            },
            lock::Failure::Io(source) => Error::io("lock", &root.join("lock"))(source),
        })
    }

    fn at(root: &Path) -> Store {
        Store {
            root: root.to_path_buf(),
            objects: Objects::new(root.join("objects")),
        }
    }

    /// The archive folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The object store.
    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    /// The log of vault file versions.
    pub fn versions(&self) -> Journal {
        Journal::new(self.root.join("versions.jsonl"))
    }

    /// Reads every version record, in the order they were recorded.
    pub fn read_versions(&self) -> Result<Vec<VersionRecord>, Error> {
        let journal = self.versions();
        let read = journal
            .read::<VersionRecord>()
            .map_err(Error::io("read", journal.path()))?;
        Ok(read.records.into_iter().map(|(_, r)| r).collect())
    }

    /// The scan index, brought up to date with the version log (which is the truth: the index
    /// only saves re-hashing).
    pub fn load_index(&self) -> Result<Index, Error> {
        Index::load(&self.index_path(), &self.versions())
    }

    /// Saves the scan index atomically.
    pub fn save_index(&self, index: &Index) -> Result<(), Error> {
        index.save(&self.index_path())
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index")
    }

    /// Folder for derived, rebuildable data.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }
}
