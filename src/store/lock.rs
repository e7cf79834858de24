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

impl LockHolder {
    /// Whether the process it names runs.
    fn alive(&self) -> bool {
        let pid = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        pid.is_some_and(|pid| {
            matches!(
                rustix::process::test_kill_process(pid),
                Ok(()) | Err(rustix::io::Errno::PERM)
            )
        })
    }
}

/// How long a writer waits before each new try for a lock held by someone passing (see
/// [`Lock::acquire`]): 15 ms in all, 1.1 ms when the holder named runs.
const WAITS: [std::time::Duration; 5] = [
    std::time::Duration::from_micros(100),
    std::time::Duration::from_millis(1),
    std::time::Duration::from_millis(2),
    std::time::Duration::from_millis(4),
    std::time::Duration::from_millis(8),
];

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
        let mut tries = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let holder = read_holder(&mut file);
                    // The holder it names, alive, most likely holds it: two more tries cover
                    // a probe that met its release. Otherwise what holds it is passing: a
                    // process asking who holds the lock (`status`, a scan beside the daemon)
                    // takes it for an instant, and a writer that just took it has not
                    // written its name yet.
                    let most = if holder.alive() { 2 } else { WAITS.len() };
                    if tries == most {
                        return Err(Failure::Held(holder));
                    }
                    std::thread::sleep(WAITS[tries]);
                    tries += 1;
                }
                Err(TryLockError::Error(e)) => return Err(Failure::Io(e)),
            }
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

    #[test]
    fn asking_who_holds_the_lock_never_keeps_a_writer_out() {
        // `status` asks who holds the lock by taking it for an instant: a writer starting
        // then (the daemon) was refused, naming whoever held it last.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        drop(Lock::acquire(&path, "scan").ok().unwrap());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let asker = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut asked = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = Lock::holder(&path);
                    asked += 1;
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                asked
            })
        };
        let mut refused = 0;
        for _ in 0..3000 {
            match Lock::acquire(&path, "watch") {
                Ok(lock) => drop(lock),
                Err(_) => refused += 1,
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(
            asker.join().unwrap() > 100,
            "the lock was asked about meanwhile"
        );
        assert_eq!(
            refused, 0,
            "a writer was refused while nobody held the lock"
        );
    }
}
