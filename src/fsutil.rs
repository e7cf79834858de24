//! Small file-system helpers shared by the archive and the note editor.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `bytes` atomically: a temp file in the same folder, fsync, rename,
/// fsync of the folder. Readers see the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true)
}

/// Replaces `path` with `bytes` atomically, without waiting for the disk: for derived files
/// (index, caches) that are rebuilt when a crash leaves them missing or unreadable.
pub fn write_derived(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false)
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let how = Replace {
        durable,
        ..Replace::default()
    };
    replace_with(path, bytes, &how).map(drop)
}

/// How [`replace_with`] writes a file.
#[derive(Debug, Default)]
pub struct Replace<'a> {
    /// fsync the file before the rename and its folder after.
    pub durable: bool,
    /// Give the new file the permissions of the one it replaces (a user's note).
    pub keep_permissions: bool,
    /// Write only if the file still holds these bytes, checked before the temp file is made
    /// and again just before the rename (a person's edit made meanwhile wins).
    pub unless_changed_from: Option<&'a [u8]>,
    /// Write only if no file is there (a new file: one made meanwhile wins).
    pub create_new: bool,
}

/// What [`replace_with`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    /// The file now holds the new bytes.
    Written,
    /// The file changed since it was read; it was left alone.
    ChangedMeanwhile,
}

/// The one atomic writer: a temp file in the same folder, then a rename, as `how` says.
/// Readers see the old file or the new one, never a mix.
pub fn replace_with(path: &Path, bytes: &[u8], how: &Replace<'_>) -> io::Result<Replaced> {
    replace_streaming(path, how, |w| w.write_all(bytes))
}

/// [`replace_with`], the content written by `write` straight into the temp file (a large
/// derived file is never held whole in memory).
pub fn replace_streaming(
    path: &Path,
    how: &Replace<'_>,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<Replaced> {
    let unchanged = || -> io::Result<bool> {
        Ok(match how.unless_changed_from {
            Some(before) => std::fs::read(path)? == before,
            None => true,
        })
    };
    if !unchanged()? {
        return Ok(Replaced::ChangedMeanwhile);
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = temp_file_in(dir)?;
    {
        let mut out = io::BufWriter::with_capacity(256 * 1024, tmp.as_file_mut());
        write(&mut out)?;
        out.flush()?;
    }
    if how.keep_permissions {
        tmp.as_file()
            .set_permissions(std::fs::metadata(path)?.permissions())?;
    } else if how.create_new {
        // A new file of the vault, readable as any file its owner saves (temp files are 0600).
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    if how.durable {
        tmp.as_file().sync_all()?;
    }
    if !unchanged()? {
        return Ok(Replaced::ChangedMeanwhile);
    }
    if how.create_new {
        match tmp.persist_noclobber(path) {
            Ok(_) => {}
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                return Ok(Replaced::ChangedMeanwhile);
            }
            Err(e) => return Err(e.error),
        }
    } else {
        tmp.persist(path).map_err(|e| e.error)?;
    }
    if how.durable {
        sync_dir(dir)?;
    }
    Ok(Replaced::Written)
}

/// A temp file in `dir`, to be renamed over the file it replaces; named so that `archive gc`
/// knows it when a writer stopped before the rename (see [`is_temp_name`]).
pub fn temp_file_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
}

const TEMP_PREFIX: &str = ".vaultkeep-";
const TEMP_SUFFIX: &str = ".tmp";

/// Whether a file name is one of [`temp_file_in`]'s.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)
}

/// Runs blocking work (disk writes and fsyncs, parsing, note edits) from async code without
/// stalling the executor: tokio moves its other tasks to other threads meanwhile. Outside a
/// multi-threaded runtime it simply runs.
pub fn off_executor<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// The kind of network file system `path` is on, if it is: there the kernel reports the changes
/// made through this machine only, and the client caches what the server says.
pub fn network_file_system(path: &Path) -> Option<&'static str> {
    let magic = rustix::fs::statfs(path).ok()?.f_type as u64 & 0xFFFF_FFFF;
    Some(match magic {
        0x6969 => "NFS",
        0x517B | 0xFE53_4D42 | 0xFF53_4D42 => "SMB",
        0x6573_5546 => "a FUSE file system (a network or cloud mount?)",
        0x0102_1997 => "9P",
        0x00C3_6400 => "Ceph",
        0x0BD0_0BD0 => "Lustre",
        0x5346_414F | 0x6B41_4653 => "AFS",
        _ => return None,
    })
}

/// Makes a folder's entries (a rename, a new file) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.txt");
        std::fs::write(&p, "old content that is longer").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
