//! The recorded versions of one vault file, following renames, and bringing one back.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use jiff::Timestamp;
use serde::Serialize;

use crate::digest::Digest;
use crate::fsutil::write_atomic;
use crate::store::{self, Event, Store, VersionRecord};

/// One entry of a file's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    /// 1 for the oldest.
    pub version: usize,
    /// When it was recorded.
    pub time: Timestamp,
    /// `created`, `modified`, `renamed` or `deleted`.
    pub event: Event,
    /// The content (for a deletion, the last content).
    pub sha256: Digest,
    /// Its size.
    pub size: u64,
    /// The path it had then.
    pub path: String,
    /// For a rename, the path before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The device that recorded it, when another device did (pulled from the remote).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// The versions of `path`, oldest first. A file that was renamed to `path` brings its earlier
/// history along; a file renamed away from `path` shows the rename as its last version.
pub fn history(records: &[VersionRecord], path: &str) -> Vec<Version> {
    let mut name = path.to_string();
    let mut picked: Vec<&VersionRecord> = Vec::new();
    for r in records.iter().rev() {
        if r.path == name {
            picked.push(r);
            if let (Event::Renamed, Some(from)) = (r.event, &r.from) {
                name = from.clone();
            }
        } else if r.event == Event::Renamed && r.from.as_deref() == Some(name.as_str()) {
            picked.push(r);
        }
    }
    picked
        .into_iter()
        .rev()
        .enumerate()
        .map(|(i, r)| Version {
            version: i + 1,
            time: r.time,
            event: r.event,
            sha256: r.sha256,
            size: r.size,
            path: r.path.clone(),
            from: r.from.clone(),
            device: r.device.clone(),
        })
        .collect()
}

/// The versions of `path`, as [`history`] finds them, from this archive's version log and with
/// `peers` the other devices' too. Only the records that can be part of them are parsed: the
/// renames first (which give every name the file had), then the records that name one of
/// those. A long log is searched, not read into memory whole (issue 14).
pub fn versions_of(store: &Store, path: &str, peers: bool) -> Result<Vec<Version>, store::Error> {
    let renames: Vec<VersionRecord> = store
        .read_versions_where(peers, |line| may_name(line, &[b"\"renamed\"".to_vec()]))?
        .into_iter()
        .filter(|r| r.event == Event::Renamed)
        .collect();
    let names: Vec<Vec<u8>> = names_of(&renames, path).iter().map(|n| quoted(n)).collect();
    let records = store.read_versions_where(peers, |line| may_name(line, &names))?;
    Ok(history(&records, path))
}

/// Whether any version of `path` is recorded (here or, with `peers`, on another device).
pub fn is_recorded(store: &Store, path: &str, peers: bool) -> Result<bool, store::Error> {
    let name = [quoted(path)];
    Ok(store
        .read_versions_where(peers, |line| may_name(line, &name))?
        .iter()
        .any(|r| r.path == path))
}

/// Every name the file now at `path` had, newest first: the renames, followed back from the
/// newest (as [`history`] follows them).
fn names_of(renames: &[VersionRecord], path: &str) -> Vec<String> {
    let mut names = vec![path.to_string()];
    for r in renames.iter().rev() {
        if let Some(from) = &r.from
            && r.path == names[names.len() - 1]
        {
            names.push(from.clone());
        }
    }
    names
}

/// A name as a record's line holds it: a JSON string.
fn quoted(name: &str) -> Vec<u8> {
    serde_json::to_vec(name).expect("a string is JSON")
}

/// Whether a record's `line` may hold one of `needles` (JSON strings): it holds one as written,
/// or an escape, which another writer could have used where ours writes the character itself.
fn may_name(line: &[u8], needles: &[Vec<u8>]) -> bool {
    memchr::memchr(b'\\', line).is_some()
        || needles
            .iter()
            .any(|n| memchr::memmem::find(line, n).is_some())
}

/// Why a version could not be brought back.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// Nothing recorded under that path.
    #[error("no recorded versions of {0}")]
    NoHistory(String),
    /// The asked-for version does not exist.
    #[error("{path} has versions 1 to {count}; there is no version {asked}")]
    NoSuchVersion {
        /// The path.
        path: String,
        /// How many versions it has.
        count: usize,
        /// What was asked.
        asked: usize,
    },
    /// The destination exists and differs.
    #[error(
        "{0} exists and differs from the version asked for; use --force to overwrite it (its content is recorded first), or --output to write elsewhere"
    )]
    Exists(String),
    /// The destination holds content no recorded version has, and the archive's writer (the
    /// daemon) did not record it in time: overwriting it would lose it.
    #[error(
        "{path} has changes that are not recorded yet, and the archive is in use by {holder}; wait a moment for it to record them and run again (nothing was overwritten)"
    )]
    Unrecorded {
        /// The vault file.
        path: String,
        /// Who holds the archive.
        holder: store::LockHolder,
    },
    /// The archive's copy does not hash to its name.
    #[error(
        "object {0} is damaged (its bytes do not match its sha256); run `vaultkeep archive verify`"
    )]
    Damaged(Digest),
    /// Reading the archive failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Writing the destination failed.
    #[error("cannot write {path}")]
    Write {
        /// The destination.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Where a recovered version goes.
pub enum Output<'a> {
    /// A file (the vault path by default). `in_vault` is its vault-relative path when it lies
    /// inside the vault: content it replaces is recorded first.
    File {
        path: &'a Path,
        force: bool,
        in_vault: Option<String>,
    },
    /// Standard output.
    Stdout,
}

/// What `recover` did.
#[derive(Debug, Clone, Serialize)]
pub struct Recovered {
    /// The version written.
    pub version: Version,
    /// The version that now holds the content the write replaced, when it replaced a file of
    /// the vault with different content.
    pub kept: Option<Version>,
}

/// Writes version `version` (default: the newest) of `path` to `to`.
pub fn recover(
    store: &Store,
    path: &str,
    version: Option<usize>,
    to: Output<'_>,
) -> Result<Recovered, RecoverError> {
    let versions = versions_of(store, path, true)?;
    if versions.is_empty() {
        return Err(RecoverError::NoHistory(path.to_string()));
    }
    let chosen = match version {
        None => versions.last(),
        Some(v) => versions.get(v.wrapping_sub(1)),
    }
    .cloned()
    .ok_or(RecoverError::NoSuchVersion {
        path: path.to_string(),
        count: versions.len(),
        asked: version.unwrap_or(0),
    })?;
    let bytes = read_object(store, &chosen.sha256)?;
    let mut kept = None;
    match to {
        Output::Stdout => io::stdout()
            .write_all(&bytes)
            .map_err(|source| RecoverError::Write {
                path: "standard output".into(),
                source,
            })?,
        Output::File {
            path: out,
            force,
            in_vault,
        } => {
            let shown = out.display().to_string();
            match fs::read(out) {
                Ok(existing) if existing == bytes => {
                    return Ok(Recovered {
                        version: chosen,
                        kept,
                    });
                }
                Ok(_) if !force => return Err(RecoverError::Exists(shown)),
                Ok(existing) => {
                    if let Some(rel) = &in_vault {
                        kept = Some(keep_replaced(store, rel, &existing)?);
                    }
                }
                Err(_) => {}
            }
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir).map_err(|source| RecoverError::Write {
                    path: shown.clone(),
                    source,
                })?;
            }
            write_atomic(out, &bytes).map_err(|source| RecoverError::Write {
                path: shown,
                source,
            })?;
        }
    }
    Ok(Recovered {
        version: chosen,
        kept,
    })
}

/// [`keep`], taking the archive's lock for it. When another process holds the lock (the
/// daemon, which records every change within moments), waits a little for it to record the
/// content; if it does not, refuses rather than lose the bytes.
fn keep_replaced(store: &Store, path: &str, bytes: &[u8]) -> Result<Version, RecoverError> {
    let digest = Digest::of(bytes);
    let recorded = |store: &Store| -> Result<Option<Version>, RecoverError> {
        Ok(versions_of(store, path, false)?
            .into_iter()
            .rev()
            .find(|v| v.sha256 == digest && v.event != Event::Deleted))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if let Some(v) = recorded(store)? {
            return Ok(v);
        }
        match store.lock("recover") {
            Ok(_lock) => return Ok(keep(store, path, bytes)?),
            Err(store::Error::Locked { holder, .. }) => {
                if std::time::Instant::now() >= deadline {
                    return Err(RecoverError::Unrecorded {
                        path: path.to_string(),
                        holder,
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Makes sure `bytes`, the content of vault file `path` that is about to be replaced, is a
/// recorded version: if no recorded version of `path` holds it, it is stored and recorded (as
/// `modified`, or `created` for a path without history). Returns the version that holds it
/// now. The caller holds the archive's lock. Nothing vaultkeep writes into the vault may
/// destroy bytes the archive does not have (issue 9).
pub fn keep(store: &Store, path: &str, bytes: &[u8]) -> Result<Version, store::Error> {
    let versions = versions_of(store, path, false)?;
    let digest = Digest::of(bytes);
    if let Some(v) = versions
        .iter()
        .rev()
        .find(|v| v.sha256 == digest && v.event != Event::Deleted)
    {
        return Ok(v.clone());
    }
    let objects = store.objects();
    let object = objects.path(&digest);
    objects
        .put(&digest, bytes)
        .map_err(store::Error::io("write", &object))?;
    objects
        .sync_objects([&digest])
        .map_err(store::Error::io("sync the objects of", store.root()))?;
    let live = versions
        .last()
        .is_some_and(|v| v.event != Event::Deleted && v.path == path);
    let record = VersionRecord {
        time: Timestamp::now(),
        event: if live {
            Event::Modified
        } else {
            Event::Created
        },
        path: path.to_string(),
        from: None,
        sha256: digest,
        size: bytes.len() as u64,
        device: None,
    };
    let journal = store.versions();
    journal
        .append(std::slice::from_ref(&record))
        .map_err(store::Error::io("append to", journal.path()))?;
    store.update_totals()?;
    Ok(Version {
        version: versions.len() + 1,
        time: record.time,
        event: record.event,
        sha256: digest,
        size: record.size,
        path: record.path,
        from: None,
        device: None,
    })
}

/// An object's bytes, checked against its name.
pub fn read_object(store: &Store, digest: &Digest) -> Result<Vec<u8>, RecoverError> {
    store.objects().read(digest).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData => RecoverError::Damaged(*digest),
        _ => store::Error::io("read", &store.objects().path(digest))(e).into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(event: Event, path: &str, from: Option<&str>, content: &[u8]) -> VersionRecord {
        VersionRecord {
            time: Timestamp::UNIX_EPOCH,
            event,
            path: path.into(),
            from: from.map(String::from),
            sha256: Digest::of(content),
            size: content.len() as u64,
            device: None,
        }
    }

    fn events(records: &[VersionRecord], path: &str) -> Vec<(usize, Event, String)> {
        history(records, path)
            .into_iter()
            .map(|v| (v.version, v.event, v.path))
            .collect()
    }

    #[test]
    fn history_follows_a_rename_back_to_the_old_path() {
        let log = vec![
            rec(Event::Created, "a.md", None, b"1"),
            rec(Event::Created, "other.md", None, b"x"),
            rec(Event::Modified, "a.md", None, b"2"),
            rec(Event::Renamed, "b.md", Some("a.md"), b"2"),
            rec(Event::Modified, "b.md", None, b"3"),
        ];
        assert_eq!(
            events(&log, "b.md"),
            vec![
                (1, Event::Created, "a.md".into()),
                (2, Event::Modified, "a.md".into()),
                (3, Event::Renamed, "b.md".into()),
                (4, Event::Modified, "b.md".into()),
            ]
        );
        // The old path's history ends with the move.
        assert_eq!(events(&log, "a.md").last().unwrap().1, Event::Renamed);
    }

    #[test]
    fn versions_read_from_the_logs_by_search_are_those_of_the_whole_logs() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _lock) = Store::open_for_writing(dir.path(), "test").unwrap();
        let at = |s: i64, mut r: VersionRecord| {
            r.time = Timestamp::from_second(s).unwrap();
            r
        };
        let odd = "say \"hi\" \\ café.md";
        let mine = vec![
            at(1, rec(Event::Created, "a.md", None, b"1")),
            at(2, rec(Event::Created, "aa.md", None, b"x")),
            at(3, rec(Event::Created, "a.md.bak", None, b"y")),
            at(5, rec(Event::Renamed, "b.md", Some("a.md"), b"1")),
            at(7, rec(Event::Renamed, odd, Some("b.md"), b"2")),
            at(8, rec(Event::Modified, odd, None, b"3")),
            at(9, rec(Event::Renamed, "z.md", Some("aa.md"), b"x")),
        ];
        store.versions().append(&mine).unwrap();
        // Another device's log: a change between two of ours, and a line written with
        // escapes where ours writes the characters themselves.
        let peer = store.peer_log("laptop");
        peer.append(&[at(6, rec(Event::Modified, "b.md", None, b"2"))])
            .unwrap();
        let escaped = format!(
            "{{\"time\":\"1970-01-01T00:00:10Z\",\"event\":\"modified\",\"path\":\"say \\\"hi\\\" \\\\ caf\\u00e9.md\",\"sha256\":\"{}\",\"size\":1}}\n",
            Digest::of(b"4")
        );
        peer.append_raw(escaped.as_bytes()).unwrap();
        let mut all = mine.clone();
        all.push(at(6, rec(Event::Modified, "b.md", None, b"2")));
        let mut last = at(10, rec(Event::Modified, odd, None, b"4"));
        last.size = 1;
        all.push(last);
        for r in &mut all[mine.len()..] {
            r.device = Some("laptop".into());
        }
        all.sort_by_key(|r| r.time);
        for path in ["a.md", "aa.md", "a.md.bak", "b.md", odd, "z.md", "none.md"] {
            assert_eq!(
                versions_of(&store, path, true).unwrap(),
                history(&all, path),
                "{path}"
            );
        }
        assert_eq!(versions_of(&store, odd, true).unwrap().len(), 6);
        assert_eq!(
            versions_of(&store, odd, false).unwrap().len(),
            4,
            "ours alone"
        );
        assert!(is_recorded(&store, "a.md.bak", true).unwrap());
        assert!(!is_recorded(&store, "a.md.ba", true).unwrap());
    }

    #[test]
    fn deleted_files_keep_their_history() {
        let log = vec![
            rec(Event::Created, "a.md", None, b"1"),
            rec(Event::Deleted, "a.md", None, b"1"),
        ];
        let h = history(&log, "a.md");
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].sha256, Digest::of(b"1"));
    }
}
