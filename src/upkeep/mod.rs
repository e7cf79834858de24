//! Looking after the archive itself: `archive verify`, `archive gc`, and objects one by one
//! (`archive objects`, `cat`, `unpack`).

mod gc;
mod objects;
mod verify;

use std::collections::HashSet;

use crate::digest::Digest;
use crate::report::Problem;
use crate::store::{self, Store, VersionRecord};

pub use gc::gc;
pub use objects::{cat, list as list_objects, unpack};
pub use verify::verify;

/// Every object the archive's records point at, with problems found while reading them.
pub(crate) struct References {
    pub(crate) objects: HashSet<Digest>,
    /// `(record file and line, digest)` for each reference, to say who is missing what.
    pub(crate) sites: Vec<(String, Digest)>,
    pub(crate) problems: Vec<Problem>,
    pub(crate) warnings: Vec<Problem>,
    pub(crate) records: usize,
}

/// Reads every record file of the archive.
pub(crate) fn references(store: &Store) -> Result<References, store::Error> {
    let mut refs = References {
        objects: HashSet::new(),
        sites: Vec::new(),
        problems: Vec::new(),
        warnings: Vec::new(),
        records: 0,
    };
    // This archive's versions, and the other devices' pulled from the remote.
    let mut logs = vec![(store::Log::Versions.file().to_string(), store.versions())];
    for device in store.peers() {
        let journal = store.peer_log(&device);
        let name = crate::upkeep::shown(store, journal.path());
        logs.push((name, journal));
    }
    for (name, journal) in logs {
        let read = journal
            .read::<VersionRecord>()
            .map_err(store::Error::io("read", journal.path()))?;
        for (line, message) in read.bad {
            refs.problems.push(Problem::new(
                format!("{name}:{line}"),
                format!("not a version record: {message}"),
            ));
        }
        if read.torn_tail > 0 {
            refs.warnings.push(Problem::new(
                &name,
                format!(
                    "{} bytes of an interrupted write after the last record; the next writer cuts them",
                    read.torn_tail
                ),
            ));
        }
        refs.records += read.records.len();
        for (line, r) in read.records {
            refs.objects.insert(r.sha256);
            refs.sites.push((format!("{name}:{line}"), r.sha256));
        }
    }
    // Snapshots a killed process left unfinished: their journals reference objects too.
    for left in crate::snapshot::journal::left(store) {
        let site = shown(store, store.snapshot_journal(&left.start.id).path());
        refs.warnings.push(Problem::new(
            site.clone(),
            "a snapshot interrupted before it was recorded; the next `archive snapshot`, `archive gc` or `watch` records what it captured",
        ));
        for d in left.captures.iter().flat_map(|c| c.objects()) {
            refs.objects.insert(d);
            refs.sites.push((site.clone(), d));
        }
    }
    for snapshot in crate::snapshot::record::load_all(store) {
        let snapshot = match snapshot {
            Ok(s) => s,
            Err((path, message)) => {
                let shown = path
                    .strip_prefix(store.root())
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                refs.problems.push(Problem::new(
                    shown,
                    format!("unreadable snapshot record: {message}"),
                ));
                continue;
            }
        };
        refs.records += 1;
        let site = shown(store, &store.snapshot_dir(&snapshot.id));
        for d in snapshot.objects() {
            refs.objects.insert(d);
            refs.sites.push((site.clone(), d));
        }
    }
    Ok(refs)
}

/// A path of the archive, relative to it, for reports.
pub(crate) fn shown(store: &Store, path: &std::path::Path) -> String {
    path.strip_prefix(store.root())
        .unwrap_or(path)
        .display()
        .to_string()
}
