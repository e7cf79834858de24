//! What each folder of the vault listed when a scan last read it, so that the next scan lists
//! an unchanged folder without reading it again (git's untracked cache does the same). Every
//! file is still stat'ed: this saves the `getdents` calls, the kernel's hashing of every name
//! and the sort (an eighth to a sixth of an unchanged rescan's time). The files are stat'ed in
//! the order of their inodes, as the walk that kept the listing did, not by name: the order of
//! the inode table on disk, and about the order of the kernel's records of them in memory,
//! where a stat by name strays (one stat of each of the 23,161 files of a generated vault, in
//! C, takes 24 ms by name and 21 ms in inode order; a small folder lists its files in about
//! that order, a large one in the order of a hash).
//!
//! A folder is unchanged while its device, inode, ctime and mtime are: creating, deleting or
//! renaming an entry sets its ctime and mtime to the current time. A listing is kept only when
//! its folder's ctime was at least [`SETTLED`] old as it was read, so that an entry made in the
//! same clock tick, after the read, cannot hide behind an unchanged time. Listings are kept only
//! on local file systems: a network file system's times come from the server and its client
//! caches them.
//!
//! The file (`cache/folders`) is derived: missing, unreadable or from another vault, it is
//! ignored and rewritten by the next recording scan. Layout: a header line, each folder's
//! entries, then the table of folders (path, key, where its entries lie and their CRC-32), the
//! table's offset and CRC-32. A folder's entries: their count (u32), the order in which the
//! walk stat'ed them (for each, its place among the entries sorted by name: u32 each), then
//! the entries sorted as a walk takes them. An entry is a kind byte (`d` a folder, `f`
//! anything to stat) and the name, ended by a NUL. Numbers are little-endian.

use std::ffi::CStr;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::bytes::Reader;

/// How old a folder's ctime must be for its listing to be kept, in ns: far more than a tick of
/// the kernel's file time clock.
pub(super) const SETTLED: i64 = 2_000_000_000;

/// The file's first line; the vault's real path follows on the second.
pub(super) const MAGIC: &[u8] = b"vaultkeep folders 2\n";

/// What identifies a folder's state: any change of its entries changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FolderKey {
    dev: u64,
    ino: u64,
    ctime_ns: i64,
    mtime_ns: i64,
}

impl FolderKey {
    /// The key of the folder open as `fd`.
    #[allow(clippy::unnecessary_cast)] // the stat fields' types differ between platforms
    pub(super) fn of(fd: &impl std::os::fd::AsFd) -> Option<FolderKey> {
        let st = rustix::fs::fstat(fd).ok()?;
        Some(FolderKey {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            ctime_ns: super::nanos(st.st_ctime as i64, st.st_ctime_nsec as i64),
            mtime_ns: super::nanos(st.st_mtime as i64, st.st_mtime_nsec as i64),
        })
    }

    /// Whether the folder last changed at least `settled` ns before `now_ns`, so that a change
    /// after its read must give it a new key.
    pub(super) fn settled(&self, now_ns: i64, settled: i64) -> bool {
        self.ctime_ns < now_ns.saturating_sub(settled)
    }

    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dev.to_le_bytes());
        out.extend_from_slice(&self.ino.to_le_bytes());
        out.extend_from_slice(&self.ctime_ns.to_le_bytes());
        out.extend_from_slice(&self.mtime_ns.to_le_bytes());
    }

    fn take(r: &mut Reader<'_>) -> Option<FolderKey> {
        Some(FolderKey {
            dev: r.u64()?,
            ino: r.u64()?,
            ctime_ns: r.u64()? as i64,
            mtime_ns: r.u64()? as i64,
        })
    }
}

/// The kind of a kept entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A folder: listed without a stat.
    Folder,
    /// Anything else the walk stat'ed (a file, a symlink).
    Stat,
}

/// A folder's entries as kept (see the layout above), checked to hold a count and an order.
pub(super) struct Entries(Vec<u8>);

impl Entries {
    /// The kept bytes, if they hold a count and as many places as it says.
    fn checked(bytes: Vec<u8>) -> Option<Entries> {
        let count = Reader::new(&bytes).u32()? as usize;
        let names_at = count.checked_mul(4)?.checked_add(4)?;
        (bytes.len() >= names_at).then_some(Entries(bytes))
    }

    /// Bytes of the entries as kept: more than their names.
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// How many entries there are.
    pub(super) fn count(&self) -> usize {
        Reader::new(&self.0).u32().unwrap_or(0) as usize
    }

    /// The entries sorted as a walk takes them, each with its name as the C string a stat
    /// takes.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Kind, &CStr)> {
        let mut rest = &self.0[4 + 4 * self.count()..];
        std::iter::from_fn(move || {
            let (&kind, after) = rest.split_first()?;
            let name = CStr::from_bytes_until_nul(after).ok()?;
            rest = &after[name.count_bytes() + 1..];
            Some((
                if kind == b'd' {
                    Kind::Folder
                } else {
                    Kind::Stat
                },
                name,
            ))
        })
    }

    /// The order in which the walk that kept them stat'ed the entries: for each, its place in
    /// [`iter`].
    ///
    /// [`iter`]: Entries::iter
    pub(super) fn listed_order(&self) -> impl Iterator<Item = usize> {
        let mut r = Reader::new(&self.0[4..4 + 4 * self.count()]);
        std::iter::from_fn(move || r.u32().map(|i| i as usize))
    }
}

/// Entries as a walk writes them down (kind byte, name, NUL), in the order it lists them.
#[derive(Default)]
pub(super) struct Unlisted(Vec<u8>);

impl Unlisted {
    /// Adds the entry named `name` (no NUL in it, as in any file name).
    pub(super) fn add(&mut self, kind: Kind, name: &[u8]) {
        put_entry(&mut self.0, kind, name);
    }

    fn count(&self) -> usize {
        memchr::memchr_iter(0, &self.0).count()
    }
}

fn put_entry(out: &mut Vec<u8>, kind: Kind, name: &[u8]) {
    out.push(if kind == Kind::Folder { b'd' } else { b'f' });
    out.extend_from_slice(name);
    out.push(0);
}

/// A folder's listing as a walk writes it down (see the layout above).
pub(super) struct Listing(Vec<u8>);

/// What a walk keeps of a folder for the next walk.
pub(super) enum ToKeep {
    /// The listing the last walk kept: the folder's key did not change, so neither did its
    /// entries. Its bytes are read again only if the kept file must be rewritten.
    Same,
    /// A listing read from the folder.
    Read(Listing),
}

impl Listing {
    /// The listing of a folder whose entries are `order` (sorted as a walk takes them, each
    /// with its place in the order the walk stat'ed them) and `unlisted` (those the walk
    /// does not list, stat'ed again each time; stat'ed after the others).
    pub(super) fn of<'n>(
        order: impl ExactSizeIterator<Item = (Kind, &'n str, usize)>,
        unlisted: Unlisted,
    ) -> Listing {
        let unlisted_count = unlisted.count();
        let count = order.len() + unlisted_count;
        let mut names = Vec::new();
        let mut listed = vec![u32::MAX; count];
        for (sorted, (kind, name, at)) in order.enumerate() {
            put_entry(&mut names, kind, name.as_bytes());
            if let Some(slot) = listed.get_mut(at) {
                *slot = sorted as u32;
            }
        }
        // The unlisted entries follow the others, in both orders.
        let unlisted_from = count - unlisted_count;
        for (slot, sorted) in listed
            .iter_mut()
            .filter(|s| **s == u32::MAX)
            .zip(unlisted_from..)
        {
            *slot = sorted as u32;
        }
        names.extend_from_slice(&unlisted.0);
        let mut bytes = Vec::with_capacity(4 + 4 * count + names.len());
        bytes.extend_from_slice(&(count as u32).to_le_bytes());
        for at in listed {
            bytes.extend_from_slice(&at.to_le_bytes());
        }
        bytes.extend_from_slice(&names);
        Listing(bytes)
    }
}

/// Where a kept folder's entries lie in the file.
struct Place {
    key: FolderKey,
    offset: u64,
    len: u32,
    crc: u32,
}

/// The listings kept by the last recording scan, read folder by folder as the walk asks:
/// only the table of folders is held.
pub struct Known {
    file: File,
    folders: FxHashMap<Box<str>, Place>,
}

impl Known {
    /// The listings kept at `path` for the vault whose real path is `root`; `None` when there
    /// are none, or they are unreadable or another vault's.
    pub fn open(path: &Path, root: &Path) -> Option<Known> {
        let file = File::open(path).ok()?;
        let known = Known::read_table(file, root);
        if known.is_none() {
            tracing::debug!(path = %path.display(), "the kept folder listings are unreadable; reading every folder");
        }
        known
    }

    fn read_table(file: File, root: &Path) -> Option<Known> {
        let len = file.metadata().ok()?.len();
        let mut tail = [0u8; 12];
        file.read_exact_at(&mut tail, len.checked_sub(12)?).ok()?;
        let table_at = u64::from_le_bytes(tail[..8].try_into().ok()?);
        let table_crc = u32::from_le_bytes(tail[8..].try_into().ok()?);
        let head = header(root);
        let mut table =
            vec![0u8; usize::try_from(len.checked_sub(12)?.checked_sub(table_at)?).ok()?];
        let mut start = vec![0u8; head.len()];
        file.read_exact_at(&mut start, 0).ok()?;
        file.read_exact_at(&mut table, table_at).ok()?;
        if start != head || crc32fast::hash(&table) != table_crc {
            return None;
        }
        let mut r = Reader::new(&table);
        let count = r.u64()?;
        let mut folders = FxHashMap::default();
        folders.reserve(usize::try_from(count).ok()?.min(1 << 20));
        for _ in 0..count {
            let path_len = r.u32()? as usize;
            let path = std::str::from_utf8(r.bytes(path_len)?).ok()?;
            let key = FolderKey::take(&mut r)?;
            let place = Place {
                key,
                offset: r.u64()?,
                len: r.u32()?,
                crc: r.u32()?,
            };
            folders.insert(path.into(), place);
        }
        Some(Known { file, folders })
    }

    /// The entries of the folder at vault-relative `rel` when it was read, if its key is
    /// still `key`.
    pub(super) fn entries(&self, rel: &str, key: FolderKey) -> Option<Entries> {
        self.kept(rel, key).map(|(entries, _)| entries)
    }

    /// [`Known::entries`], with the CRC-32 they were checked against.
    fn kept(&self, rel: &str, key: FolderKey) -> Option<(Entries, u32)> {
        let place = self.folders.get(rel).filter(|p| p.key == key)?;
        // Read into the vector's spare room, not a zeroed one: jemalloc zeroes a large
        // allocation by giving its pages back to the kernel (a system call, then a page fault
        // for each page), once per large folder.
        let len = place.len as usize;
        let mut bytes = Vec::with_capacity(len);
        while bytes.len() < len {
            let at = place.offset + bytes.len() as u64;
            let spare = rustix::buffer::spare_capacity(&mut bytes);
            if rustix::io::pread(&self.file, spare, at).ok()? == 0 {
                return None;
            }
        }
        let entries = (crc32fast::hash(&bytes) == place.crc).then(|| Entries::checked(bytes))?;
        Some((entries?, place.crc))
    }
}

/// The listings a recording scan keeps for the next one, written as the walk goes: only the
/// table of folders is held until [`Keeper::keep`]. While every listing is the one kept last
/// time, nothing is written (those are only named), so an unchanged rescan writes no file.
pub struct Keeper {
    path: PathBuf,
    root: PathBuf,
    /// The listings the last walk kept (which this one replaces).
    known: Option<Arc<Known>>,
    /// The new file, once a listing differs from the one kept.
    out: Option<BufWriter<tempfile::NamedTempFile>>,
    /// The folders listed as kept, until one differs.
    same: Vec<(Box<str>, FolderKey)>,
    offset: u64,
    table: Vec<u8>,
    count: u64,
    failed: Option<io::Error>,
}

impl Keeper {
    /// Starts the listings that will replace `known`, those at `path`, for the vault at `root`.
    pub fn create(path: &Path, root: &Path, known: Option<Arc<Known>>) -> Keeper {
        Keeper {
            path: path.to_path_buf(),
            root: root.to_path_buf(),
            known,
            out: None,
            same: Vec::new(),
            offset: 0,
            table: Vec::new(),
            count: 0,
            failed: None,
        }
    }

    /// Keeps the listing of the folder at vault-relative `rel`, whose key was `key`.
    pub(super) fn add(&mut self, rel: &str, key: FolderKey, listing: &ToKeep) {
        let kept = self.known.as_ref().and_then(|k| k.folders.get(rel));
        // A listing read anew may still be the one kept (a folder touched, its entries not).
        let read = match listing {
            ToKeep::Same => None,
            ToKeep::Read(listing) => Some((&listing.0, crc32fast::hash(&listing.0))),
        };
        let same = kept.is_some_and(|p| p.key == key && read.is_none_or(|(_, crc)| p.crc == crc));
        if self.out.is_none() && same {
            self.same.push((rel.into(), key));
            return;
        }
        if let Err(e) = self.start() {
            self.failed.get_or_insert(e);
        }
        match read {
            Some((bytes, crc)) => self.write(rel, key, bytes, crc),
            None => self.copy(rel, key),
        }
    }

    /// Starts the new file, with the listings named so far.
    fn start(&mut self) -> io::Result<()> {
        if self.out.is_some() || self.failed.is_some() {
            return Ok(());
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = crate::fsutil::temp_file_in(dir)?;
        let mut out = BufWriter::with_capacity(64 * 1024, tmp);
        let head = header(&self.root);
        out.write_all(&head)?;
        self.out = Some(out);
        self.offset = head.len() as u64;
        for (rel, key) in std::mem::take(&mut self.same) {
            self.copy(&rel, key);
        }
        self.failed.take().map_or(Ok(()), Err)
    }

    /// Writes the listing of `rel` as the last walk kept it (its CRC checked as it was read).
    fn copy(&mut self, rel: &str, key: FolderKey) {
        match self.known.as_ref().and_then(|k| k.kept(rel, key)) {
            Some((Entries(bytes), crc)) => self.write(rel, key, &bytes, crc),
            None => {
                let e = io::Error::other(format!("cannot read the kept listing of {rel}"));
                self.failed.get_or_insert(e);
            }
        }
    }

    fn write(&mut self, rel: &str, key: FolderKey, bytes: &[u8], crc: u32) {
        let (Some(out), None) = (&mut self.out, &self.failed) else {
            return;
        };
        let (Ok(path_len), Ok(len)) = (u32::try_from(rel.len()), u32::try_from(bytes.len())) else {
            return;
        };
        if let Err(e) = out.write_all(bytes) {
            self.failed = Some(e);
            return;
        }
        self.table.extend_from_slice(&path_len.to_le_bytes());
        self.table.extend_from_slice(rel.as_bytes());
        key.put(&mut self.table);
        self.table.extend_from_slice(&self.offset.to_le_bytes());
        self.table.extend_from_slice(&len.to_le_bytes());
        self.table.extend_from_slice(&crc.to_le_bytes());
        self.offset += u64::from(len);
        self.count += 1;
    }

    /// Folders kept so far.
    pub(super) fn len(&self) -> u64 {
        self.count + self.same.len() as u64
    }

    /// Replaces the kept listings with these (no fsync: a listing lost to a crash is read
    /// again); leaves them when they are the same.
    pub fn keep(mut self) -> io::Result<()> {
        let known = self.known.as_ref().map_or(0, |k| k.folders.len());
        if self.out.is_none() && self.same.len() == known && known > 0 {
            return Ok(());
        }
        self.start()?;
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let mut out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("not started"))?;
        let mut table = self.count.to_le_bytes().to_vec();
        table.extend_from_slice(&self.table);
        out.write_all(&table)?;
        out.write_all(&self.offset.to_le_bytes())?;
        out.write_all(&crc32fast::hash(&table).to_le_bytes())?;
        let tmp = out.into_inner().map_err(|e| e.into_error())?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// The header: what the file is, and whose vault.
fn header(root: &Path) -> Vec<u8> {
    let mut head = MAGIC.to_vec();
    head.extend_from_slice(root.as_os_str().as_encoded_bytes());
    head.push(b'\n');
    head
}
