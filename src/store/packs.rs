//! Packs: many small objects in one file, `objects/packs/<name>.pack`.
//!
//! A scan that stores thousands of new files at once would otherwise create one file per
//! object, and creating a file (an inode and a directory entry) costs more than hashing and
//! writing its bytes (issue 14). Such a batch appends its objects to one new pack instead,
//! as git and restic do. Everything else (single changes, snapshots, large files) stays loose.
//!
//! A pack is `VKPACK\0\x01`, then per object its 32-byte sha256, its length (u64, little
//! endian) and its bytes, uncompressed. Once the pack is complete and synced, its index
//! `<name>.idx` lists (sha256, offset, length) per object and ends with the sha256 of what
//! precedes it. A pack without a valid index (its writer was interrupted) is read by walking
//! its headers up to the first incomplete one; its objects are readable (every read checks the
//! digest) but are not trusted to skip writing an object again, since a power loss may have
//! kept its length and not its bytes. `vaultkeep archive cat <sha256>` prints any object,
//! packed or loose; `vaultkeep archive objects` lists them.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::digest::Digest;

use super::objects::{Durability, Objects};

pub(crate) use super::layout::PACKS;
const PACK_MAGIC: &[u8; 8] = b"VKPACK\0\x01";
const INDEX_MAGIC: &[u8; 8] = b"VKIDX\0\0\x01";
/// Digest and length before each object's bytes.
const HEADER: u64 = 40;
/// One object in the index: digest, offset of its bytes, length.
const INDEX_ENTRY: usize = 48;

/// Where a packed object's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedAt {
    /// The pack file.
    pub pack: Arc<Path>,
    /// Offset of the object's bytes (after its header).
    pub offset: u64,
    /// Their length.
    pub len: u64,
}

impl PackedAt {
    /// The bytes as they are, unchecked (see [`PackedAt::read`]).
    pub fn bytes(&self) -> io::Result<Vec<u8>> {
        let file = File::open(&self.pack)?;
        let mut bytes = vec![0u8; usize::try_from(self.len).map_err(io::Error::other)?];
        read_exact_at(&file, &mut bytes, self.offset)?;
        Ok(bytes)
    }

    /// The object's bytes, checked against its digest: damage is `InvalidData`.
    pub fn read(&self, digest: &Digest) -> io::Result<Vec<u8>> {
        let bytes = self.bytes()?;
        if Digest::of(&bytes) != *digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("object {digest} in {} is damaged", self.pack.display()),
            ));
        }
        Ok(bytes)
    }
}

/// What one pack holds, from its index or, without one, from its headers.
#[derive(Debug, Clone)]
pub struct PackContents {
    /// The pack file.
    pub pack: Arc<Path>,
    /// Its objects: digest, offset, length.
    pub objects: Vec<(Digest, u64, u64)>,
    /// Whether a valid index vouches for it (its writer finished and synced it).
    pub indexed: bool,
}

impl PackContents {
    /// Reads a pack's index, or walks its headers when the index is missing or invalid.
    pub fn read(pack: &Path) -> io::Result<PackContents> {
        let pack: Arc<Path> = Arc::from(pack);
        if let Some(objects) = read_index(&index_path(&pack)) {
            return Ok(PackContents {
                pack,
                objects,
                indexed: true,
            });
        }
        let file = File::open(&pack)?;
        let end = file.metadata()?.len();
        let mut magic = [0u8; 8];
        if end < 8 || {
            read_exact_at(&file, &mut magic, 0)?;
            &magic != PACK_MAGIC
        } {
            return Ok(PackContents {
                pack,
                objects: Vec::new(),
                indexed: false,
            });
        }
        let mut objects = Vec::new();
        let mut at = 8u64;
        let mut header = [0u8; HEADER as usize];
        while at + HEADER <= end {
            read_exact_at(&file, &mut header, at)?;
            let len = u64::from_le_bytes(header[32..].try_into().expect("8 bytes"));
            let Some(next) = (at + HEADER).checked_add(len).filter(|n| *n <= end) else {
                break;
            };
            let digest = Digest::from_bytes(header[..32].try_into().expect("32 bytes"));
            objects.push((digest, at + HEADER, len));
            at = next;
        }
        Ok(PackContents {
            pack,
            objects,
            indexed: false,
        })
    }
}

/// The index file beside a pack.
pub(crate) fn index_path(pack: &Path) -> PathBuf {
    pack.with_extension("idx")
}

/// The index's objects, or `None` when it is missing, short or does not match its checksum.
fn read_index(path: &Path) -> Option<Vec<(Digest, u64, u64)>> {
    let bytes = fs::read(path).ok()?;
    let body_len = bytes.len().checked_sub(32)?;
    let (body, sum) = bytes.split_at(body_len);
    if body.len() < 8 || &body[..8] != INDEX_MAGIC || Digest::of(body).as_bytes() != sum {
        return None;
    }
    let entries = &body[8..];
    if !entries.len().is_multiple_of(INDEX_ENTRY) {
        return None;
    }
    Some(
        entries
            .chunks_exact(INDEX_ENTRY)
            .map(|e| {
                (
                    Digest::from_bytes(e[..32].try_into().expect("32 bytes")),
                    u64::from_le_bytes(e[32..40].try_into().expect("8 bytes")),
                    u64::from_le_bytes(e[40..].try_into().expect("8 bytes")),
                )
            })
            .collect(),
    )
}

/// The packs of an archive, known to this process: loaded on first use, then kept up to date
/// by this process's own writers and, on a miss, by looking again at the folder.
#[derive(Debug, Default)]
pub(crate) struct Packs {
    known: RwLock<Option<Known>>,
}

#[derive(Debug, Default)]
struct Known {
    /// Each loaded pack's objects, in the order the packs were loaded.
    tables: Vec<Table>,
}

/// One pack's objects, sorted by digest: 48 bytes an object (a map of every packed object
/// took about 100, 9 MB of a first scan's peak at 89,000 files).
#[derive(Debug)]
struct Table {
    pack: Arc<Path>,
    /// The pack's size when loaded (a pack still being written grows).
    size: u64,
    /// Whether a valid index vouches for the pack.
    trusted: bool,
    /// Digest, offset and length.
    objects: Vec<(Digest, u64, u64)>,
}

impl Known {
    fn add(&mut self, contents: PackContents, size: u64) {
        let mut objects = contents.objects;
        objects.sort_unstable_by_key(|o| o.0);
        objects.shrink_to_fit();
        let table = Table {
            pack: contents.pack,
            size,
            trusted: contents.indexed,
            objects,
        };
        match self.tables.iter_mut().find(|t| t.pack == table.pack) {
            Some(loaded) => *loaded = table,
            None => self.tables.push(table),
        }
    }

    /// Where a packed object is: in the first trusted pack that holds it, else in the last
    /// pack loaded that holds it; `trusted_only` skips packs without a valid index.
    fn get(&self, digest: &Digest, trusted_only: bool) -> Option<PackedAt> {
        let mut found = None;
        for table in &self.tables {
            if trusted_only && !table.trusted {
                continue;
            }
            if let Ok(i) = table.objects.binary_search_by(|o| o.0.cmp(digest)) {
                let (_, offset, len) = table.objects[i];
                let at = PackedAt {
                    pack: table.pack.clone(),
                    offset,
                    len,
                };
                if table.trusted {
                    return Some(at);
                }
                found = Some(at);
            }
        }
        found
    }

    /// Loads packs that are new or changed since they were loaded.
    fn refresh(&mut self, dir: &Path) {
        for path in pack_files(dir) {
            let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let indexed = index_path(&path).is_file();
            let loaded = self.tables.iter().find(|t| *t.pack == *path);
            if loaded.is_some_and(|t| (t.size, t.trusted) == (size, indexed)) {
                continue;
            }
            match PackContents::read(&path) {
                Ok(contents) => self.add(contents, size),
                Err(e) => tracing::warn!(pack = %path.display(), "cannot read a pack: {e}"),
            }
        }
    }
}

/// The pack files in `dir`, sorted (none when it does not exist).
pub(crate) fn pack_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .collect();
    out.sort();
    out
}

impl Packs {
    /// Where a packed object is; `trusted_only` skips packs without a valid index. Looks at
    /// the folder again on a miss only when `fresh` (readers); writers hold the archive's lock,
    /// so the packs they have not written themselves are those loaded first.
    fn find(
        &self,
        dir: &Path,
        digest: &Digest,
        trusted_only: bool,
        fresh: bool,
    ) -> Option<PackedAt> {
        let hit = |known: &Known| known.get(digest, trusted_only);
        if let Some(known) = &*self.known.read().unwrap_or_else(|e| e.into_inner()) {
            if let Some(at) = hit(known) {
                return Some(at);
            }
            if !fresh {
                return None;
            }
        }
        let mut guard = self.known.write().unwrap_or_else(|e| e.into_inner());
        let first = guard.is_none();
        let known = guard.get_or_insert_with(Known::default);
        if first || fresh {
            known.refresh(dir);
        }
        hit(known)
    }

    fn add(&self, contents: PackContents, size: u64) {
        let mut guard = self.known.write().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = guard.as_mut() {
            known.add(contents, size);
        }
    }
}

impl Objects {
    /// The folder of packs.
    pub(crate) fn packs_dir(&self) -> PathBuf {
        self.dir().join(PACKS)
    }

    /// Where an object is packed, looking again at the packs on a miss.
    pub fn packed(&self, digest: &Digest) -> Option<PackedAt> {
        self.packs().find(&self.packs_dir(), digest, false, true)
    }

    /// Whether the archive holds an object, loose or packed. For a writer (pull, under the
    /// archive's lock): the packs are read once, not again at each miss.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
            || self
                .packs()
                .find(&self.packs_dir(), digest, false, false)
                .is_some()
    }

    /// Whether a trusted pack holds the object (for writers: no second look at the folder).
    fn packed_for_writer(&self, digest: &Digest) -> bool {
        self.packs()
            .find(&self.packs_dir(), digest, true, false)
            .is_some()
    }

    /// Removes a pack and its index (gc and unpack, once its objects are safe elsewhere).
    pub fn remove_pack(&self, pack: &Path) -> io::Result<()> {
        {
            let mut guard = self
                .packs()
                .known
                .write()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(known) = guard.as_mut() {
                known.tables.retain(|t| &*t.pack != pack);
            }
        }
        match fs::remove_file(index_path(pack)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs::remove_file(pack)
    }
}

/// Where a batch of a scan puts its new objects: loose files, or one new pack.
pub enum Sink<'a> {
    /// One file per object.
    Loose(&'a Objects),
    /// One new pack for the small ones; large ones stay loose.
    Pack(Box<PackWriter>),
}

impl Sink<'_> {
    /// Stores bytes whose digest the caller computed; whether they were new.
    pub fn put(&self, digest: &Digest, bytes: &[u8]) -> io::Result<bool> {
        match self {
            Sink::Loose(o) => o.put(digest, bytes),
            Sink::Pack(p) => p.put(digest, bytes),
        }
    }

    /// Stores a large object, streamed and hashed (always loose).
    pub fn put_reader(&self, reader: impl Read) -> io::Result<(Digest, u64, bool)> {
        match self {
            Sink::Loose(o) => o.put_reader(reader),
            Sink::Pack(p) => p.objects.put_reader(reader),
        }
    }

    /// Completes the pack, if any: synced and indexed. Before the batch's objects are synced.
    pub fn finish(self) -> io::Result<()> {
        match self {
            Sink::Loose(_) => Ok(()),
            Sink::Pack(p) => p.finish(),
        }
    }
}

/// Appends new objects to one new pack. Shared by the threads of a scan.
pub struct PackWriter {
    objects: Objects,
    /// Fan-out folders that held no loose object when the pack was started: no need to look
    /// for one there (a first scan's case). One written meanwhile by a snapshot would only be
    /// stored twice.
    no_loose: [bool; 256],
    path: PathBuf,
    state: Mutex<Writing>,
}

struct Writing {
    out: BufWriter<File>,
    offset: u64,
    objects: Vec<(Digest, u64, u64)>,
    here: HashSet<Digest>,
}

impl PackWriter {
    /// Starts a new pack, named by the time and this process.
    pub fn create(objects: &Objects) -> io::Result<PackWriter> {
        let dir = objects.packs_dir();
        fs::create_dir_all(&dir)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let path = dir.join(format!("{now:024}-{}.pack", std::process::id()));
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o444);
        let mut out = BufWriter::with_capacity(1 << 20, options.open(&path)?);
        out.write_all(PACK_MAGIC)?;
        let mut no_loose = [false; 256];
        for (i, empty) in no_loose.iter_mut().enumerate() {
            let fan = objects.dir().join(format!("{i:02x}"));
            *empty = fs::read_dir(fan).is_ok_and(|mut entries| entries.next().is_none());
        }
        Ok(PackWriter {
            objects: objects.clone(),
            no_loose,
            path,
            state: Mutex::new(Writing {
                out,
                offset: PACK_MAGIC.len() as u64,
                objects: Vec::new(),
                here: HashSet::new(),
            }),
        })
    }

    /// Appends an object unless the archive holds it already; whether it was new.
    pub fn put(&self, digest: &Digest, bytes: &[u8]) -> io::Result<bool> {
        if self.objects.packed_for_writer(digest)
            || (!self.no_loose[usize::from(digest.as_bytes()[0])]
                && self.objects.holds_loose(digest, bytes.len()))
        {
            return Ok(false);
        }
        self.copy(digest, bytes)
    }

    /// Appends an object unless this pack has it, wherever else it is (gc moving objects out
    /// of a pack it is about to remove).
    pub fn copy(&self, digest: &Digest, bytes: &[u8]) -> io::Result<bool> {
        let mut w = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !w.here.insert(*digest) {
            return Ok(false);
        }
        let len = bytes.len() as u64;
        let written = w
            .out
            .write_all(digest.as_bytes())
            .and_then(|()| w.out.write_all(&len.to_le_bytes()))
            .and_then(|()| w.out.write_all(bytes));
        if let Err(e) = written {
            w.here.remove(digest);
            return Err(e);
        }
        let at = w.offset + HEADER;
        w.objects.push((*digest, at, len));
        w.offset = at + len;
        drop(w);
        self.objects.count_added(len);
        Ok(true)
    }

    /// Flushes and syncs the pack, then writes its index: an index vouches for a complete,
    /// durable pack. An empty pack is removed.
    pub fn finish(self) -> io::Result<()> {
        let w = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        let file = w.out.into_inner().map_err(|e| e.into_error())?;
        if w.objects.is_empty() {
            drop(file);
            return fs::remove_file(&self.path);
        }
        file.sync_data()?;
        let size = w.offset;
        let mut index = Vec::with_capacity(8 + w.objects.len() * INDEX_ENTRY + 32);
        index.extend_from_slice(INDEX_MAGIC);
        for (d, offset, len) in &w.objects {
            index.extend_from_slice(d.as_bytes());
            index.extend_from_slice(&offset.to_le_bytes());
            index.extend_from_slice(&len.to_le_bytes());
        }
        let sum = Digest::of(&index);
        index.extend_from_slice(sum.as_bytes());
        let index_file = index_path(&self.path);
        if self.objects.durability() == Durability::EachFile {
            // Also makes the pack's folder entry durable.
            crate::fsutil::write_atomic(&index_file, &index)?;
        } else {
            crate::fsutil::write_derived(&index_file, &index)?;
        }
        self.objects.packs().add(
            PackContents {
                pack: Arc::from(self.path.as_path()),
                objects: w.objects,
                indexed: true,
            },
            size,
        );
        Ok(())
    }
}

/// Reads exactly `buf.len()` bytes at `offset` (no shared file position: readers share packs).
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectEntry;

    use crate::store::objects::tests::objects;

    fn pack_of(o: &Objects, items: &[&[u8]]) -> Vec<Digest> {
        let w = PackWriter::create(o).unwrap();
        let digests: Vec<Digest> = items.iter().map(|b| Digest::of(b)).collect();
        for (d, b) in digests.iter().zip(items) {
            w.put(d, b).unwrap();
        }
        w.finish().unwrap();
        digests
    }

    #[test]
    fn packed_objects_are_read_listed_and_stored_once() {
        let (_dir, o) = objects();
        let ds = pack_of(&o, &[b"one", b"two", b"one"]);
        let files = pack_files(&o.packs_dir());
        assert_eq!(files.len(), 1);
        assert!(index_path(&files[0]).is_file());
        assert_eq!(o.read(&ds[0]).unwrap(), b"one");
        assert_eq!(o.read(&ds[1]).unwrap(), b"two");
        assert!(o.contains(&ds[1]) && !o.path(&ds[1]).exists());
        let packed: Vec<Digest> = o
            .entries()
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                ObjectEntry::Packed(d, _) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(
            packed,
            vec![ds[0], ds[1]],
            "a repeated object is packed once"
        );
        // A second pack does not store them again; an empty pack leaves no file.
        let w = PackWriter::create(&o).unwrap();
        assert!(!w.put(&ds[0], b"one").unwrap());
        w.finish().unwrap();
        assert_eq!(pack_files(&o.packs_dir()).len(), 1);
        // Another process (a fresh `Objects`) finds them too.
        let other = Objects::new(o.dir().to_path_buf());
        assert_eq!(other.read(&ds[1]).unwrap(), b"two");
    }

    #[test]
    fn a_pack_without_its_index_is_read_up_to_its_torn_end_but_not_trusted() {
        let (_dir, o) = objects();
        let ds = pack_of(&o, &[b"alpha", b"beta"]);
        let pack = pack_files(&o.packs_dir()).remove(0);
        fs::remove_file(index_path(&pack)).unwrap();
        // A third object cut short by a crash.
        let mut f = fs::OpenOptions::new().append(true).open(&pack);
        if f.is_err() {
            let mut perms = fs::metadata(&pack).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            fs::set_permissions(&pack, perms).unwrap();
            f = fs::OpenOptions::new().append(true).open(&pack);
        }
        let mut f = f.unwrap();
        f.write_all(Digest::of(b"gamma").as_bytes()).unwrap();
        f.write_all(&5u64.to_le_bytes()).unwrap();
        f.write_all(b"ga").unwrap();
        drop(f);
        let contents = PackContents::read(&pack).unwrap();
        assert!(!contents.indexed);
        assert_eq!(contents.objects.len(), 2);
        let fresh = Objects::new(o.dir().to_path_buf());
        assert_eq!(fresh.read(&ds[1]).unwrap(), b"beta");
        assert!(
            fresh
                .entries()
                .unwrap()
                .iter()
                .any(|e| matches!(e, ObjectEntry::Unfinished(_)))
        );
        // A writer does not trust it: the object is written again.
        let w = PackWriter::create(&fresh).unwrap();
        assert!(w.put(&ds[0], b"alpha").unwrap());
        w.finish().unwrap();
    }

    #[test]
    fn a_damaged_packed_object_is_an_error_not_wrong_bytes() {
        let (_dir, o) = objects();
        let ds = pack_of(&o, &[b"precious"]);
        let pack = pack_files(&o.packs_dir()).remove(0);
        let mut bytes = fs::read(&pack).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::remove_file(&pack).unwrap();
        fs::write(&pack, &bytes).unwrap();
        let err = Objects::new(o.dir().to_path_buf())
            .read(&ds[0])
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
