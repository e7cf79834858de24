//! One writer per archive: an advisory lock on `archive/lock`, which also says who holds it.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom};
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
        write_holder(&file, &holder).map_err(Failure::Io)?;
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

/// The length a holder's record is padded to with spaces (JSON allows them at the end).
const RECORD_LEN: usize = 128;

/// Writes `holder` over the record of the last one, in place. Truncating the file first
/// would cost an ext4 journal transaction at every command (0.15-0.3 ms on this machine),
/// and make the file's close wait for the new bytes to be written (ext4 flushes a file
/// rewritten after a truncation to zero). A reader racing the write may read a mix of the
/// two records, as it could read an empty file before: it then names no holder or the wrong
/// one, and [`Lock::acquire`] tries again.
fn write_holder(file: &File, holder: &LockHolder) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut record = serde_json::to_vec(holder)?;
    record.resize(record.len().max(RECORD_LEN - 1), b' ');
    record.push(b'\n');
    file.write_all_at(&record, 0)?;
    // Longer only when written by an older version, or by hand.
    if file.metadata()?.len() > record.len() as u64 {
        file.set_len(record.len() as u64)?;
    }
    Ok(())
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
    fn a_holder_is_written_over_the_last_one_whatever_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        // A longer record, as an older version or a person might have left.
        let long = format!(
            r#"{{"pid":1,"command":"{}","since":"then"}}"#,
            "x".repeat(300)
        );
        std::fs::write(&path, &long).unwrap();
        let first = Lock::acquire(&path, "watch").ok().unwrap();
        let holder = Lock::holder(&path).unwrap();
        assert_eq!(
            (holder.pid, holder.command.as_str()),
            (std::process::id(), "watch")
        );
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len < long.len() as u64, "the longer record was cut");
        drop(first);
        // Over a shorter record (an older version's), the padded one leaves nothing of it,
        // and the file keeps its length.
        std::fs::write(
            &path,
            r#"{"pid":1,"command":"a-much-longer-command","since":"then"}"#,
        )
        .unwrap();
        let _second = Lock::acquire(&path, "scan").ok().unwrap();
        assert_eq!(Lock::holder(&path).unwrap().command, "scan");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    }

    #[test]
    fn asking_who_holds_the_lock_never_keeps_a_writer_out() {
        // `status` asks who holds the lock by taking it for an instant: a writer starting
        // then (the daemon) was refused, naming whoever held it last.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        drop(Lock::acquire(&path, "scan").ok().unwrap());
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let (stop, asked) = (
            std::sync::Arc::new(AtomicBool::new(false)),
            std::sync::Arc::new(AtomicUsize::new(0)),
        );
        let asker = {
            let (path, stop, asked) = (path.clone(), stop.clone(), asked.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = Lock::holder(&path);
                    asked.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            })
        };
        // As many tries as it takes for the asker to ask 300 times meanwhile.
        let (mut tried, mut refused) = (0, 0);
        while asked.load(Ordering::Relaxed) < 300 {
            match Lock::acquire(&path, "watch") {
                Ok(lock) => drop(lock),
                Err(_) => refused += 1,
            }
            tried += 1;
        }
        stop.store(true, Ordering::Relaxed);
        asker.join().unwrap();
        assert!(tried > 300, "the writer tried {tried} times");
        assert_eq!(
            refused, 0,
            "a writer was refused while nobody held the lock"
        );
    }
}
