//! Content-addressed objects: `objects/<first two hex>/<64 hex>`, written once, read-only.
//!
//! A new object goes to a temp file in its fan-out folder and is renamed into place, so a
//! reader never sees half an object. Durability comes in batches ([`Objects::sync`]): on Linux
//! one `syncfs` for many objects instead of an fsync each (design.md, "The archive");
//! elsewhere each new object is fsynced before its rename and its folder at the next sync. A
//! batch of a few ([`Objects::sync_objects`]) fsyncs each instead, on every platform.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::packs::{PackedAt, Packs};
use crate::digest::{Digest, copy_hashing};
use crate::fsutil::sync_dir;

/// How new objects are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// One `syncfs` of the archive's file system per batch (Linux only).
    FileSystem,
    /// An fsync per new object before its rename, and one per folder that got new objects
    /// (every platform; `sync_all` is F_FULLFSYNC on macOS). `VAULTKEEP_SYNC=files` selects it
    /// on Linux too.
    EachFile,
}

impl Durability {
    /// The platform's way, unless `VAULTKEEP_SYNC=files` asks for the portable one.
    pub fn default_for_platform() -> Durability {
        let forced = std::env::var_os("VAULTKEEP_SYNC").is_some_and(|v| v == "files");
        if cfg!(target_os = "linux") && !forced {
            Durability::FileSystem
        } else {
            Durability::EachFile
        }
    }
}

/// Up to this many objects, [`Objects::sync_objects`] fsyncs each instead of syncing the
/// whole file system.
const SYNC_EACH_UP_TO: usize = 64;

/// Prefix of temp files, in the object folders and beside records.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// The object folder of an archive.
#[derive(Debug, Clone)]
pub struct Objects {
    dir: PathBuf,
    durability: Durability,
    /// Folders that got new objects since the last sync ([`Durability::EachFile`]).
    dirty: Arc<Mutex<BTreeSet<PathBuf>>>,
    /// Objects and bytes written since the totals were last updated.
    added: Arc<(AtomicU64, AtomicU64)>,
    /// The packs this process knows.
    packs: Arc<Packs>,
}

impl Objects {
    pub(crate) fn new(dir: PathBuf) -> Objects {
        Objects::with_durability(dir, Durability::default_for_platform())
    }

    pub(crate) fn with_durability(dir: PathBuf, durability: Durability) -> Objects {
        Objects {
            dir,
            durability,
            dirty: Arc::default(),
            added: Arc::default(),
            packs: Arc::default(),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn durability(&self) -> Durability {
        self.durability
    }

    pub(super) fn packs(&self) -> &Packs {
        &self.packs
    }

    /// Counts an object written into a pack.
    pub(super) fn count_added(&self, size: u64) {
        self.added.0.fetch_add(1, Ordering::Relaxed);
        self.added.1.fetch_add(size, Ordering::Relaxed);
    }

    /// Whether a loose object of this size is in place.
    pub(super) fn holds_loose(&self, digest: &Digest, size: usize) -> bool {
        self.holds(&self.path(digest), size as u64)
    }

    /// Creates the 256 fan-out folders once, so a put never has to.
    pub(crate) fn create_layout(&self) -> io::Result<()> {
        for i in 0..=255u8 {
            fs::create_dir_all(self.dir.join(format!("{i:02x}")))?;
        }
        Ok(())
    }

    /// Where the object with this digest lives.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.dir.join(&hex[..2]).join(hex)
    }

    /// Stores bytes whose digest the caller computed. Returns whether they were new. An object
    /// file already in place is trusted only when its size is right: a power loss after the
    /// rename but before the data reached the disk can leave an empty or short file, which is
    /// rewritten (issue 9).
    pub fn put(&self, digest: &Digest, bytes: &[u8]) -> io::Result<bool> {
        let target = self.path(digest);
        if self.holds(&target, bytes.len() as u64) {
            return Ok(false);
        }
        let mut tmp = self.temp_in(&target)?;
        tmp.write_all(bytes)?;
        self.place(tmp, &target, bytes.len() as u64)?;
        Ok(true)
    }

    /// Renames a finished temp file into place (fsynced first when each file is synced).
    fn place(&self, tmp: tempfile::NamedTempFile, target: &Path, size: u64) -> io::Result<()> {
        if self.durability == Durability::EachFile {
            tmp.as_file().sync_all()?;
        }
        tmp.persist(target).map_err(|e| e.error)?;
        self.count_added(size);
        if self.durability == Durability::EachFile
            && let Some(dir) = target.parent()
        {
            self.dirty
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(dir.to_path_buf());
        }
        Ok(())
    }

    /// Stores everything `reader` yields, hashing it on the way: the object's name is the
    /// digest of exactly the bytes written, even if the source changes meanwhile.
    /// Returns the digest, the size and whether the object was new.
    pub fn put_reader(&self, reader: impl Read) -> io::Result<(Digest, u64, bool)> {
        let staging = self.dir.join("00");
        let mut tmp = read_only_temp(&staging)?;
        let (digest, size) = copy_hashing(reader, &mut tmp)?;
        let target = self.path(&digest);
        if self.holds(&target, size) {
            return Ok((digest, size, false));
        }
        self.place(tmp, &target, size)?;
        Ok((digest, size, true))
    }

    /// Bytes of new objects written by this process so far (a running count).
    pub(crate) fn bytes_added(&self) -> u64 {
        self.added.1.load(Ordering::Relaxed)
    }

    /// Starts writing new objects back to the disk ahead of [`Objects::sync`], which then
    /// has less to wait for. Only where one sync covers the file system.
    pub(crate) fn start_writeback(&self) -> io::Result<()> {
        match self.durability {
            Durability::FileSystem => sync_file_system(&self.dir),
            Durability::EachFile => Ok(()),
        }
    }

    /// The objects and bytes written since the last call.
    pub(crate) fn take_added(&self) -> super::Totals {
        super::Totals {
            objects: self.added.0.swap(0, Ordering::Relaxed),
            bytes: self.added.1.swap(0, Ordering::Relaxed),
        }
    }

    /// Whether an object file of the right size is in place. A wrong size is logged: the
    /// object is about to be rewritten.
    fn holds(&self, target: &Path, size: u64) -> bool {
        match fs::metadata(target) {
            Ok(m) if m.len() == size => true,
            Ok(m) => {
                tracing::warn!(
                    object = %target.display(),
                    found = m.len(),
                    expected = size,
                    "repairing an object left short by an interrupted write"
                );
                false
            }
            Err(_) => false,
        }
    }

    /// An object's bytes, checked against its name: a damaged object is an `InvalidData`
    /// error, never wrong bytes.
    pub fn read(&self, digest: &Digest) -> io::Result<Vec<u8>> {
        let bytes = match fs::read(self.path(digest)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => match self.packed(digest) {
                Some(at) => return at.read(digest),
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        if Digest::of(&bytes) != *digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("object {digest} is damaged"),
            ));
        }
        Ok(bytes)
    }

    /// Makes every object written so far durable: one `syncfs` of the archive's file system,
    /// or an fsync of each folder that got new objects (their files were synced as written).
    pub fn sync(&self) -> io::Result<()> {
        match self.durability {
            Durability::FileSystem => sync_file_system(&self.dir),
            Durability::EachFile => {
                let dirs =
                    std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner()));
                for dir in &dirs {
                    sync_dir(dir)?;
                }
                Ok(())
            }
        }
    }

    /// Makes the objects that records are about to name durable, whoever wrote them: for a
    /// few, an fsync of each (its file, or its pack) and of each folder holding them; for
    /// many, [`Objects::sync`]. A daemon recording one saved note then waits for that note's
    /// object only, not for every write pending on the file system, which `syncfs` flushes
    /// (a large copy elsewhere on the disk would hold the note's version back for seconds).
    /// An object found in place was maybe left unsynced by an interrupted run: it is synced
    /// all the same.
    pub fn sync_objects<'a>(
        &self,
        digests: impl IntoIterator<Item = &'a Digest>,
    ) -> io::Result<()> {
        let digests: BTreeSet<&Digest> = digests.into_iter().collect();
        if digests.len() > SYNC_EACH_UP_TO {
            return self.sync();
        }
        // Each loose object is synced as it is opened; a pack once for all it holds.
        let (mut packs, mut folders) = (BTreeSet::new(), BTreeSet::new());
        for digest in digests {
            let loose = self.path(digest);
            match File::open(&loose) {
                Ok(file) => file.sync_all()?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => match self.packed(digest) {
                    Some(at) => {
                        packs.insert(at.pack.to_path_buf());
                        continue;
                    }
                    // Not found where it should be: let the whole sync (and the next verify) see.
                    None => return self.sync(),
                },
                Err(e) => return Err(e),
            }
            folders.extend(loose.parent().map(Path::to_path_buf));
        }
        for pack in &packs {
            File::open(pack)?.sync_all()?;
            folders.extend(pack.parent().map(Path::to_path_buf));
        }
        for folder in &folders {
            sync_dir(folder)?;
        }
        if self.durability == Durability::EachFile {
            // What this process wrote is covered; the folders it wrote to are not pending.
            self.dirty
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|d| !folders.contains(d));
        }
        Ok(())
    }

    /// Every file under the object folders: objects (loose and packed), temp files, packs
    /// left unfinished and strays, for verify, gc and push.
    pub fn entries(&self) -> io::Result<Vec<ObjectEntry>> {
        let mut out = Vec::new();
        for fan in fs::read_dir(&self.dir)? {
            let fan = fan?;
            if fan.file_name() == super::packs::PACKS && fan.file_type()?.is_dir() {
                continue;
            }
            if !fan.file_type()?.is_dir() {
                out.push(ObjectEntry::Stray(fan.path()));
                continue;
            }
            for entry in fs::read_dir(fan.path())? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                out.push(if name.starts_with(TEMP_PREFIX) {
                    ObjectEntry::Temp(path)
                } else {
                    match name.parse::<Digest>() {
                        Ok(d) if d.to_hex()[..2] == *fan.file_name().to_string_lossy() => {
                            ObjectEntry::Object(d, path)
                        }
                        _ => ObjectEntry::Stray(path),
                    }
                });
            }
        }
        self.pack_entries(&mut out)?;
        Ok(out)
    }

    /// The packs' objects, and what else lies in their folder.
    fn pack_entries(&self, out: &mut Vec<ObjectEntry>) -> io::Result<()> {
        let dir = self.packs_dir();
        let listing = match fs::read_dir(&dir) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in listing {
            let path = entry?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let ext = path.extension().unwrap_or_default();
            if name.starts_with('.') && name.ends_with(".tmp") {
                out.push(ObjectEntry::Temp(path));
            } else if ext == "idx" && path.with_extension("pack").is_file() {
                // Part of its pack.
            } else if ext == "pack" {
                let contents = super::packs::PackContents::read(&path)?;
                if !contents.indexed {
                    out.push(ObjectEntry::Unfinished(path.clone()));
                }
                for (d, offset, len) in contents.objects {
                    out.push(ObjectEntry::Packed(
                        d,
                        PackedAt {
                            pack: contents.pack.clone(),
                            offset,
                            len,
                        },
                    ));
                }
            } else {
                out.push(ObjectEntry::Stray(path));
            }
        }
        Ok(())
    }

    fn temp_in(&self, target: &Path) -> io::Result<tempfile::NamedTempFile> {
        read_only_temp(target.parent().unwrap_or(&self.dir))
    }
}

#[cfg(target_os = "linux")]
fn sync_file_system(dir: &Path) -> io::Result<()> {
    let dir = File::open(dir)?;
    rustix::fs::syncfs(&dir).map_err(io::Error::from)
}

/// Only Linux has `syncfs`; elsewhere [`Durability::default_for_platform`] never picks it.
#[cfg(not(target_os = "linux"))]
fn sync_file_system(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// One file found under `objects/`.
#[derive(Debug, Clone)]
pub enum ObjectEntry {
    /// A properly named object.
    Object(Digest, PathBuf),
    /// A temp file left by an interrupted write.
    Temp(PathBuf),
    /// An object inside a pack.
    Packed(Digest, PackedAt),
    /// A pack whose writer was interrupted (no valid index): its complete objects are listed
    /// as [`ObjectEntry::Packed`]; `archive gc` rewrites it.
    Unfinished(PathBuf),
    /// Anything else.
    Stray(PathBuf),
}

/// A temp file created read-only (0444): its open handle still writes, and once renamed into
/// place the object cannot be changed by accident. (Objects have their own writer rather than
/// `fsutil::replace_with`: they are never replaced, are streamed while hashed, and are synced
/// in batches.)
fn read_only_temp(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o444));
    builder.tempfile_in(dir)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An object folder with its layout, in a temp folder.
    pub(in crate::store) fn objects() -> (tempfile::TempDir, Objects) {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::new(dir.path().join("objects"));
        objects.create_layout().unwrap();
        (dir, objects)
    }

    #[test]
    fn an_object_is_named_by_its_digest_and_stored_once() {
        let (_dir, o) = objects();
        let d = Digest::of(b"hello");
        assert!(o.put(&d, b"hello").unwrap());
        assert!(!o.put(&d, b"hello").unwrap());
        assert_eq!(fs::read(o.path(&d)).unwrap(), b"hello");
        assert!(
            o.path(&d)
                .ends_with(format!("{}/{}", &d.to_hex()[..2], d.to_hex()))
        );
    }

    #[test]
    fn the_portable_path_syncs_each_object_and_the_folders_that_got_one() {
        let dir = tempfile::tempdir().unwrap();
        let o = Objects::with_durability(dir.path().join("objects"), Durability::EachFile);
        o.create_layout().unwrap();
        let a = Digest::of(b"a");
        o.put(&a, b"a").unwrap();
        o.put_reader(&b"bb"[..]).unwrap();
        let dirty = o.dirty.lock().unwrap().clone();
        assert_eq!(dirty.len(), 2, "{dirty:?}");
        assert!(dirty.contains(o.path(&a).parent().unwrap()));
        o.sync().unwrap();
        assert!(o.dirty.lock().unwrap().is_empty());
        assert_eq!(fs::read(o.path(&a)).unwrap(), b"a");
    }

    #[test]
    fn syncing_named_objects_covers_their_folders_and_leaves_other_pending_ones() {
        let dir = tempfile::tempdir().unwrap();
        let o = Objects::with_durability(dir.path().join("objects"), Durability::EachFile);
        o.create_layout().unwrap();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        o.put(&a, b"a").unwrap();
        o.put(&b, b"b").unwrap();
        o.sync_objects([&a]).unwrap();
        let pending = o.dirty.lock().unwrap().clone();
        let folder = |d: &Digest| o.path(d).parent().unwrap().to_path_buf();
        assert!(!pending.contains(&folder(&a)), "{pending:?}");
        assert!(pending.contains(&folder(&b)), "{pending:?}");
        // An object that is nowhere: the whole sync runs, nothing fails here (verify will say).
        o.sync_objects([&Digest::of(b"missing")]).unwrap();
        assert!(o.dirty.lock().unwrap().is_empty());
    }

    #[test]
    fn an_object_left_empty_or_short_is_written_again() {
        let (_dir, o) = objects();
        let d = Digest::of(b"hello world");
        fs::write(o.path(&d), b"").unwrap();
        assert!(o.put(&d, b"hello world").unwrap(), "rewritten");
        assert_eq!(fs::read(o.path(&d)).unwrap(), b"hello world");
        let data = vec![5u8; 100_000];
        let d = Digest::of(&data);
        fs::write(o.path(&d), &data[..10]).unwrap();
        assert!(o.put_reader(&data[..]).unwrap().2, "rewritten");
        assert_eq!(fs::read(o.path(&d)).unwrap(), data);
    }

    #[test]
    fn a_damaged_object_is_an_error_not_wrong_bytes() {
        let (_dir, o) = objects();
        let d = Digest::of(b"good");
        o.put(&d, b"good").unwrap();
        assert_eq!(o.read(&d).unwrap(), b"good");
        let path = o.path(&d);
        let mut perms = fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        fs::set_permissions(&path, perms).unwrap();
        fs::write(&path, b"rot!").unwrap();
        assert_eq!(o.read(&d).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn streamed_objects_hash_what_they_write() {
        let (_dir, o) = objects();
        let data = vec![42u8; 300_000];
        let (d, size, new) = o.put_reader(&data[..]).unwrap();
        assert_eq!((d, size, new), (Digest::of(&data), 300_000, true));
        assert!(!o.put_reader(&data[..]).unwrap().2);
        let temps = o
            .entries()
            .unwrap()
            .into_iter()
            .filter(|e| matches!(e, ObjectEntry::Temp(_)))
            .count();
        assert_eq!(temps, 0);
    }

    #[test]
    fn entries_tell_objects_from_temp_files() {
        let (dir, o) = objects();
        let d = Digest::of(b"x");
        o.put(&d, b"x").unwrap();
        fs::write(dir.path().join("objects/ab/.tmp-123"), b"partial").unwrap();
        fs::write(dir.path().join("objects/ab/junk"), b"?").unwrap();
        let mut kinds: Vec<&str> = o
            .entries()
            .unwrap()
            .iter()
            .map(|e| match e {
                ObjectEntry::Object(..) => "object",
                ObjectEntry::Temp(_) => "temp",
                ObjectEntry::Stray(_) => "stray",
                ObjectEntry::Packed(..) | ObjectEntry::Unfinished(_) => "pack",
            })
            .collect();
        kinds.sort();
        assert_eq!(kinds, vec!["object", "stray", "temp"]);
    }
}
