//! The archive on disk: objects, records, documents, the scan index and the writer's lock,
//! behind one API. Every file's name is in [`layout`]; the rest of vaultkeep reaches the
//! archive only through [`Store`]'s accessors (the seam where another backend plugs in).
//!
//! Order makes it crash-safe: objects first, made durable, then the records that point at them,
//! then the derived files.

mod index;
mod journal;
pub mod layout;
mod lock;
mod marks;
mod objects;
mod packs;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::fsutil::{write_atomic, write_derived};

pub(crate) use index::warn_unread;
pub use index::{Alongside, Entry, Index};
pub use journal::Journal;
pub use layout::{Doc, Log};
pub use lock::{Lock, LockHolder};
pub use objects::{ObjectEntry, Objects};
pub use packs::{PackWriter, PackedAt, Sink};

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
    /// A record could not be encoded (a bug, or data JSON cannot hold).
    #[error("cannot encode {path}")]
    Encode {
        /// The file it was for.
        path: PathBuf,
        /// What serde said.
        #[source]
        source: serde_json::Error,
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
    /// The device that recorded it, for another device's record (pulled from the remote);
    /// absent for this archive's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// An archive folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    objects: Objects,
}

impl Store {
    /// Opens the archive at `root` for reading; it must exist.
    pub fn open(root: &Path) -> Result<Store, Error> {
        if root.is_file() {
            return Err(Error::NotAFolder(root.to_path_buf()));
        }
        if !root.join(layout::OBJECTS).is_dir() {
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
        if !root.join(layout::OBJECTS).join("ff").is_dir() {
            store
                .objects
                .create_layout()
                .map_err(Error::io("create the object folders in", root))?;
        }
        let readme = root.join(layout::README);
        let text = layout::readme();
        if fs::read_to_string(&readme).ok().as_deref() != Some(text.as_str()) {
            write_derived(&readme, text.as_bytes()).map_err(Error::io("write", &readme))?;
        }
        Ok((store, lock))
    }

    /// Takes the writer's lock of an open archive, for `command`.
    pub fn lock(&self, command: &str) -> Result<Lock, Error> {
        let path = self.root.join(layout::LOCK);
        Lock::acquire(&path, command).map_err(|e| match e {
            lock::Failure::Held(holder) => Error::Locked {
                path: self.root.clone(),
                holder,
            },
            lock::Failure::Io(source) => Error::io("lock", &path)(source),
        })
    }

    /// Who holds the writer's lock now, if anyone.
    pub fn lock_holder(&self) -> Option<LockHolder> {
        Lock::holder(&self.root.join(layout::LOCK))
    }

    fn at(root: &Path) -> Store {
        Store {
            root: root.to_path_buf(),
            objects: Objects::new(root.join(layout::OBJECTS)),
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

    /// An append-only log.
    pub fn log(&self, log: Log) -> Journal {
        Journal::new(self.root.join(log.file()))
    }

    /// The log of vault file versions.
    pub fn versions(&self) -> Journal {
        self.log(Log::Versions)
    }

    /// The records pulled from another device.
    pub fn peer_log(&self, device: &str) -> Journal {
        Journal::new(
            self.root
                .join(layout::PEERS)
                .join(format!("{device}.jsonl")),
        )
    }

    /// The devices whose records were pulled.
    pub fn peers(&self) -> Vec<String> {
        let mut out: Vec<String> = fs::read_dir(self.root.join(layout::PEERS))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".jsonl"))
                    .map(str::to_string)
            })
            .collect();
        out.sort();
        out
    }

    /// The version records whose lines `wanted` accepts as they are: this archive's, in the
    /// order they were recorded, and with `peers` the other devices' too (each marked with its
    /// device), all in time order (this archive's first among equal times).
    pub fn read_versions_where(
        &self,
        peers: bool,
        mut wanted: impl FnMut(&[u8]) -> bool,
    ) -> Result<Vec<VersionRecord>, Error> {
        let read = |journal: &Journal, wanted: &mut dyn FnMut(&[u8]) -> bool| {
            journal
                .read_where::<VersionRecord>(0, 0, wanted)
                .map_err(Error::io("read", journal.path()))
        };
        let mut all: Vec<VersionRecord> = read(&self.versions(), &mut wanted)?
            .records
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        if !peers {
            return Ok(all);
        }
        for device in self.peers() {
            let read = read(&self.peer_log(&device), &mut wanted)?;
            all.extend(read.records.into_iter().map(|(_, mut r)| {
                r.device = Some(device.clone());
                r
            }));
        }
        // Stable: this device's records keep their order among equal times.
        all.sort_by_key(|r| r.time);
        Ok(all)
    }

    /// Reads a whole document; `None` when it is missing or unreadable (an unreadable one is
    /// logged: documents are either derived or have a safe default).
    pub fn read_doc<T: DeserializeOwned>(&self, doc: Doc) -> Option<T> {
        let path = self.root.join(doc.file());
        let file = fs::File::open(&path).ok()?;
        // Streamed from the file, not read whole first.
        match serde_json::from_reader(std::io::BufReader::with_capacity(256 * 1024, file)) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(path = %path.display(), "unreadable, ignored: {e}");
                None
            }
        }
    }

    /// Replaces a whole document atomically (durably when the document is a record).
    pub fn write_doc<T: Serialize>(&self, doc: Doc, value: &T) -> Result<(), Error> {
        let path = self.root.join(doc.file());
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        }
        let how = crate::fsutil::Replace {
            durable: doc.durable(),
            ..crate::fsutil::Replace::default()
        };
        // Streamed into the temp file: the note cache of a large vault is a hundred megabytes
        // of JSON, which is never held whole in memory.
        let mut encode_error = None;
        let written = crate::fsutil::replace_streaming(&path, &how, |w| {
            serde_json::to_writer(w, value).map_err(|e| {
                let io = std::io::Error::other(e.to_string());
                encode_error = Some(e);
                io
            })
        });
        match (written, encode_error) {
            (_, Some(source)) => Err(Error::Encode { path, source }),
            (Err(e), None) => Err(Error::io("write", &path)(e)),
            (Ok(_), None) => Ok(()),
        }
    }

    /// The scan index, brought up to date with the version log (which is the truth: the index
    /// only saves re-hashing).
    pub fn load_index(&self) -> Result<Index, Error> {
        Index::load(
            &self.root.join(layout::INDEX),
            &self.index_sidecars(),
            &self.versions(),
        )
    }

    /// Saves the scan index: its changes appended to its change log, or the whole index
    /// atomically.
    pub fn save_index(&self, index: &mut Index) -> Result<(), Error> {
        index.save(&self.root.join(layout::INDEX), &self.index_sidecars())
    }

    fn index_sidecars(&self) -> index::Sidecars {
        index::Sidecars {
            changes: self.root.join(layout::INDEX_CHANGES),
            marks: self.root.join(layout::INDEX_MARKS),
        }
    }

    /// Where a scan keeps the vault's folder listings for the next (see `vault::Walker`).
    pub fn folder_listings(&self) -> PathBuf {
        self.root.join(layout::FOLDERS)
    }

    /// What `archive verify` and `gc` go through: every file under the object folders (see
    /// [`Objects::entries`]), and the temp files of derived files (the index, caches, the
    /// daemon's state) that a writer stopped before renaming into place left in the archive's
    /// folder or its cache.
    pub fn entries(&self) -> io::Result<Vec<ObjectEntry>> {
        let mut entries = self.objects.entries()?;
        let derived_temps = [self.root.clone(), self.root.join(layout::CACHE)]
            .into_iter()
            .filter_map(|dir| fs::read_dir(dir).ok())
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| crate::fsutil::is_temp_name(&e.file_name().to_string_lossy()))
            .map(|e| ObjectEntry::Temp(e.path()));
        entries.extend(derived_temps);
        Ok(entries)
    }

    /// The running daemon's folder: its socket and cookies (see `watch::vouch`).
    pub fn watch_dir(&self) -> PathBuf {
        self.root.join(layout::WATCH)
    }

    /// The folder of snapshot `id` (which may not exist yet).
    pub fn snapshot_dir(&self, id: &str) -> PathBuf {
        self.root.join(layout::SNAPSHOTS).join(id)
    }

    /// The ids of every snapshot folder, recorded or not, unsorted.
    pub fn snapshot_ids(&self) -> Vec<String> {
        fs::read_dir(self.root.join(layout::SNAPSHOTS))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether snapshot `id` has its record.
    pub fn has_snapshot_record(&self, id: &str) -> bool {
        self.snapshot_dir(id)
            .join(layout::SNAPSHOT_RECORD)
            .is_file()
    }

    /// Reads snapshot `id`'s record; an error names the file.
    pub fn read_snapshot<T: DeserializeOwned>(&self, id: &str) -> Result<T, (PathBuf, String)> {
        let path = self.snapshot_dir(id).join(layout::SNAPSHOT_RECORD);
        let bytes = fs::read(&path).map_err(|e| (path.clone(), e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| (path, e.to_string()))
    }

    /// Writes snapshot `id`'s record, durably (compact JSON when `compact`).
    pub fn write_snapshot<T: Serialize>(
        &self,
        id: &str,
        record: &T,
        compact: bool,
    ) -> Result<(), Error> {
        let dir = self.snapshot_dir(id);
        fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        let path = dir.join(layout::SNAPSHOT_RECORD);
        let encoded = if compact {
            serde_json::to_vec(record)
        } else {
            serde_json::to_vec_pretty(record)
        };
        let bytes = encoded.map_err(|source| Error::Encode {
            path: path.clone(),
            source,
        })?;
        write_atomic(&path, &bytes).map_err(Error::io("write", &path))
    }

    /// Snapshot `id`'s journal (used while it runs).
    pub fn snapshot_journal(&self, id: &str) -> Journal {
        Journal::new(self.snapshot_dir(id).join(layout::SNAPSHOT_JOURNAL))
    }

    /// Adds the objects written since the last call to the running totals (the caller holds
    /// the lock). The first time, the objects are counted.
    pub fn update_totals(&self) -> Result<Totals, Error> {
        let added = self.objects.take_added();
        let totals = match self.read_doc::<Totals>(Doc::Totals) {
            Some(t) => Totals {
                objects: t.objects + added.objects,
                bytes: t.bytes + added.bytes,
            },
            None => self.count_objects()?,
        };
        self.write_doc(Doc::Totals, &totals)?;
        Ok(totals)
    }

    /// Counts every object (a walk: `archive verify` and the first writer do it).
    pub fn count_objects(&self) -> Result<Totals, Error> {
        let mut totals = Totals::default();
        let entries = self
            .objects
            .entries()
            .map_err(Error::io("list the objects of", &self.root))?;
        // An object both loose and packed (or in two packs) counts once.
        let mut seen = std::collections::HashSet::new();
        for entry in entries {
            let (digest, size) = match entry {
                ObjectEntry::Object(d, path) => {
                    (d, fs::metadata(&path).map(|m| m.len()).unwrap_or(0))
                }
                ObjectEntry::Packed(d, at) => (d, at.len),
                _ => continue,
            };
            if seen.insert(digest) {
                totals.objects += 1;
                totals.bytes += size;
            }
        }
        Ok(totals)
    }
}

/// How many objects the archive holds, and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Objects.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}
