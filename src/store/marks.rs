//! The scan index's marks, kept between scans (issue 14). Loading an index file means checking
//! every entry (whole, in order, UTF-8) and noting where every 32nd starts: on an unchanged
//! rescan of a large vault that pass is most of what reading the index costs, and it finds
//! the same marks each time. They are kept here, for the one index file they were found in.
//!
//! That file is named by its identity: device, inode, size, modification and change times,
//! and its header (which holds the instant its scan started, in nanoseconds, and how much of
//! the version log it reflects). The index is only ever replaced whole, by a rename (a new
//! inode), and any write to a file moves its change time, which no one can set: a file with
//! the same identity holds the bytes that were checked. Anything else (another identity, a
//! torn or damaged cache) and the index is checked again, and the marks written anew.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::bytes::Reader;

const MAGIC: &[u8] = b"vaultkeep index marks 2\n";

/// Bytes of the index file's header that its identity includes.
pub(super) const HEADER: usize = 32;

/// Bytes of a cache before its marks: the magic line, the identity, `count`, and the number
/// of marks.
const HEAD_BYTES: usize = MAGIC.len() + IDENTITY_BYTES + 2 * 8;

const IDENTITY_BYTES: usize = 7 * 8 + HEADER;

/// Which index file the marks were found in: its stat data and its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Identity {
    stat: [i64; 7],
    header: [u8; HEADER],
}

impl Identity {
    pub(super) fn of(meta: &fs::Metadata, header: [u8; HEADER]) -> Identity {
        Identity {
            stat: [
                meta.dev() as i64,
                meta.ino() as i64,
                meta.size() as i64,
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
            ],
            header,
        }
    }

    fn put(&self, out: &mut Vec<u8>) {
        for value in self.stat {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(&self.header);
    }

    fn take(r: &mut Reader) -> Option<Identity> {
        let mut stat = [0; 7];
        for value in &mut stat {
            *value = i64::from_le_bytes(r.array()?);
        }
        Some(Identity {
            stat,
            header: r.array()?,
        })
    }
}

/// What checking an index file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Checked {
    /// Every `every`th entry's path and where it starts, in path order.
    pub marks: Vec<(String, u64)>,
    /// Where the last entry ends.
    pub end: u64,
    /// Entries in the file.
    pub count: usize,
}

/// The marks kept at `path` for the index file `identity`, whose entries lie from `first` to
/// `end`, when they are for that file and read whole: one mark per `every` entries, in order,
/// the first at `first`, each within the entries.
pub(super) fn read(
    path: &Path,
    identity: Identity,
    every: usize,
    (first, end): (u64, u64),
) -> Option<Checked> {
    let bytes = fs::read(path).ok()?;
    let (body, crc) = bytes.split_last_chunk::<4>()?;
    if !body.starts_with(MAGIC) || crc32fast::hash(body) != u32::from_le_bytes(*crc) {
        return None;
    }
    let mut r = Reader::new(&body[MAGIC.len()..]);
    if Identity::take(&mut r)? != identity {
        return None;
    }
    let count = usize::try_from(r.u64()?).ok()?;
    let marked = usize::try_from(r.u64()?).ok()?;
    if marked != count.div_ceil(every) {
        return None;
    }
    let mut marks: Vec<(String, u64)> = Vec::with_capacity(marked);
    for _ in 0..marked {
        let at = r.u64()?;
        let len = r.u32()? as usize;
        let path = String::from_utf8(r.bytes(len)?.to_vec()).ok()?;
        let in_order = marks
            .last()
            .map_or(at == first, |(p, a)| *p < path && *a < at);
        if !in_order || at >= end {
            return None;
        }
        marks.push((path, at));
    }
    (r.left() == 0).then_some(Checked { marks, end, count })
}

/// Keeps `checked`, found in the index file `identity`, at `path` (atomically; a derived file
/// that the next load writes again if it is lost). Where its entries end follows from the
/// file's size, which the identity holds: it is not kept.
pub(super) fn write(path: &Path, identity: Identity, checked: &Checked) -> io::Result<()> {
    let paths: usize = checked.marks.iter().map(|(p, _)| p.len() + 12).sum();
    let mut out = Vec::with_capacity(HEAD_BYTES + paths + 4);
    out.extend_from_slice(MAGIC);
    identity.put(&mut out);
    out.extend_from_slice(&(checked.count as u64).to_le_bytes());
    out.extend_from_slice(&(checked.marks.len() as u64).to_le_bytes());
    for (mark, at) in &checked.marks {
        let len = u32::try_from(mark.len()).map_err(io::Error::other)?;
        out.extend_from_slice(&at.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(mark.as_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    crate::fsutil::write_derived(path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the entries of the index file of [`fixture`] lie.
    const ENTRIES: (u64, u64) = (48, 1500);

    fn checked() -> Checked {
        Checked {
            marks: vec![("a.md".into(), 48), ("d/é.md".into(), 900)],
            end: ENTRIES.1,
            count: 40,
        }
    }

    /// An index file of 1,520 bytes in `dir`, its identity with a header of sevens, and where
    /// its marks are kept, written there.
    fn fixture(dir: &Path) -> (std::path::PathBuf, Identity, std::path::PathBuf) {
        let index = dir.join("index");
        fs::write(&index, vec![0; 1520]).unwrap();
        let identity = Identity::of(&fs::metadata(&index).unwrap(), [7; HEADER]);
        let path = dir.join("cache/index-marks");
        write(&path, identity, &checked()).unwrap();
        (index, identity, path)
    }

    #[test]
    fn marks_come_back_for_the_same_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let (index, identity, path) = fixture(dir.path());
        assert_eq!(read(&path, identity, 32, ENTRIES), Some(checked()));
        // Another mark spacing, other entries: not these marks.
        assert_eq!(read(&path, identity, 16, ENTRIES), None);
        assert_eq!(read(&path, identity, 32, (40, 1500)), None);
        assert_eq!(read(&path, identity, 32, (48, 900)), None);

        // The index replaced (a new inode), or written in place (a new change time).
        let other = dir.path().join("index.new");
        fs::write(&other, vec![0; 1520]).unwrap();
        fs::rename(&other, &index).unwrap();
        let replaced = Identity::of(&fs::metadata(&index).unwrap(), [7; HEADER]);
        assert_ne!(replaced, identity);
        assert_eq!(read(&path, replaced, 32, ENTRIES), None);
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&index, vec![1; 1520]).unwrap();
        assert_ne!(
            Identity::of(&fs::metadata(&index).unwrap(), [7; HEADER]),
            replaced
        );
        // Another header: another index.
        let identity = Identity::of(&fs::metadata(&index).unwrap(), [7; HEADER]);
        write(&path, identity, &checked()).unwrap();
        assert!(read(&path, identity, 32, ENTRIES).is_some());
        let other = Identity::of(&fs::metadata(&index).unwrap(), [8; HEADER]);
        assert_eq!(read(&path, other, 32, ENTRIES), None);
    }

    #[test]
    fn a_damaged_cache_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, identity, path) = fixture(dir.path());
        let bytes = fs::read(&path).unwrap();
        for at in [0, MAGIC.len() + 3, HEAD_BYTES + 5, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 1;
            fs::write(&path, &damaged).unwrap();
            assert_eq!(
                read(&path, identity, 32, ENTRIES),
                None,
                "byte {at} flipped"
            );
        }
        fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        assert_eq!(read(&path, identity, 32, ENTRIES), None, "torn");
        // Marks past the end of the entries, out of order, or too few for the count, even
        // with a good checksum.
        for bad in [
            Checked {
                marks: vec![("a.md".into(), 48), ("d/é.md".into(), 1500)],
                ..checked()
            },
            Checked {
                marks: vec![("d.md".into(), 48), ("a.md".into(), 900)],
                ..checked()
            },
            Checked {
                count: 70,
                ..checked()
            },
        ] {
            write(&path, identity, &bad).unwrap();
            assert_eq!(read(&path, identity, 32, ENTRIES), None, "{bad:?}");
        }
    }
}
