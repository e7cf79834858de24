//! One writer per archive: an advisory lock on `archive/lock`, which also says who holds it.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The held lock; released when dropped (or when the process dies, even by `kill -9`).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Who holds an archive's lock, as written in the lock file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// Process id.
    pub pid: u32,
    /// The vaultkeep command (`scan`, `watch`...).
    pub command: String,
    /// Since when (RFC 3339).
    pub since: String,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pid == 0 {
            return f.write_str("another vaultkeep process");
        }
        write!(
            f,
            "`vaultkeep {}` (pid {}, since {})",
            self.command, self.pid, self.since
        )
    }
}

pub(crate) enum Failure {
    Held(LockHolder),
    Io(io::Error),
}

impl Lock {
    pub(crate) fn acquire(path: &Path, command: &str) -> Result<Lock, Failure> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(Failure::Io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(Failure::Held(read_holder(&mut file))),
            Err(TryLockError::Error(e)) => return Err(Failure::Io(e)),
        }
        let holder = LockHolder {
            pid: std::process::id(),
            command: command.to_string(),
            since: jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .unwrap_or_default()
                .to_string(),
        };
        let body = serde_json::to_vec(&holder).map_err(|e| Failure::Io(io::Error::other(e)))?;
        file.set_len(0).map_err(Failure::Io)?;
        file.seek(SeekFrom::Start(0)).map_err(Failure::Io)?;
        file.write_all(&body).map_err(Failure::Io)?;
        Ok(Lock { _file: file })
    }

    /// Who holds the lock at `path` now, if anyone (for `vaultkeep status`).
    pub fn holder(path: &Path) -> Option<LockHolder> {
        let mut file = OpenOptions::new().read(true).write(true).open(path).ok()?;
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                None
            }
            Err(TryLockError::WouldBlock) => Some(read_holder(&mut file)),
            Err(TryLockError::Error(_)) => None,
        }
    }
}

fn read_holder(file: &mut File) -> LockHolder {
    let mut body = String::new();
    let _ = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_string(&mut body));
    serde_json::from_str(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = Lock::acquire(&path, "watch").ok().unwrap();
        match Lock::acquire(&path, "scan") {
            Err(Failure::Held(holder)) => {
                assert_eq!(holder.pid, std::process::id());
                assert_eq!(holder.command, "watch");
            }
            _ => panic!("second lock was granted"),
        }
        assert_eq!(Lock::holder(&path).unwrap().command, "watch");
        drop(first);
        assert!(Lock::holder(&path).is_none());
        assert!(Lock::acquire(&path, "scan").is_ok());
    }
}
