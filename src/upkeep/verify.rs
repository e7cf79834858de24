//! `vaultkeep archive verify`: re-hash every object, check every reference, list every problem.

use std::fs::File;

use rayon::prelude::*;
use serde::Serialize;

use super::{references, shown};
use crate::digest::Digest;
use crate::report::Problem;
use crate::store::{self, ObjectEntry, Store};

/// What verification found.
#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Objects re-hashed.
    pub objects: usize,
    /// Their total size.
    pub bytes: u64,
    /// Records read.
    pub records: usize,
    /// Damage: objects whose bytes do not match their name, records pointing at missing
    /// objects, unreadable records. Any of these makes `verify` exit 1.
    pub problems: Vec<Problem>,
    /// Harmless leftovers of interrupted runs (temp files, unreferenced objects, a torn last
    /// record) that `archive gc` or the next writer cleans up.
    pub warnings: Vec<Problem>,
}

/// Verifies the archive. Needs no lock: objects are immutable and records append-only.
pub fn verify(store: &Store) -> Result<VerifyReport, store::Error> {
    let root = store.root();
    let entries = store
        .entries()
        .map_err(store::Error::io("list the objects of", root))?;
    let mut report = VerifyReport::default();
    let mut present = std::collections::HashSet::new();
    let mut to_hash = Vec::new();
    for entry in entries {
        match entry {
            ObjectEntry::Object(d, path) => {
                present.insert(d);
                to_hash.push((d, Where::Loose(path)));
            }
            ObjectEntry::Packed(d, at) => {
                present.insert(d);
                to_hash.push((d, Where::Packed(at)));
            }
            ObjectEntry::Temp(path) => report.warnings.push(Problem::new(
                shown(store, &path),
                "temp file of an interrupted write (`archive gc` removes it)",
            )),
            ObjectEntry::Unfinished(path) => report.warnings.push(Problem::new(
                shown(store, &path),
                "pack of an interrupted write, without its index (its complete objects are read; `archive gc` rewrites it)",
            )),
            ObjectEntry::Stray(path) => report
                .warnings
                .push(Problem::new(shown(store, &path), "not an object; ignored")),
        }
    }
    let hashed: Vec<(Digest, Hashed)> = to_hash
        .par_iter()
        .map(|(d, place)| {
            let (shown_at, result) = match place {
                Where::Loose(path) => (
                    shown(store, path),
                    File::open(path).and_then(|f| {
                        let size = f.metadata()?.len();
                        Digest::of_reader(f).map(|actual| (actual, size))
                    }),
                ),
                Where::Packed(at) => (
                    format!("{} (object {d})", shown(store, &at.pack)),
                    at.bytes()
                        .map(|bytes| (Digest::of(&bytes), bytes.len() as u64)),
                ),
            };
            (*d, (shown_at, result))
        })
        .collect();
    let mut counted = std::collections::HashSet::new();
    for (d, (path, result)) in hashed {
        match result {
            Ok((actual, size)) => {
                if counted.insert(d) {
                    report.objects += 1;
                    report.bytes += size;
                }
                if actual != d {
                    report.problems.push(Problem::new(
                        path,
                        format!("damaged: its bytes hash to {actual}"),
                    ));
                }
            }
            Err(e) => report
                .problems
                .push(Problem::new(path, format!("cannot read: {e}"))),
        }
    }
    let refs = references(store)?;
    report.records = refs.records;
    report.problems.extend(refs.problems);
    report.warnings.extend(refs.warnings);
    let mut missing_reported = std::collections::HashSet::new();
    for (site, d) in &refs.sites {
        if !present.contains(d) && missing_reported.insert((site.clone(), *d)) {
            report.problems.push(Problem::new(
                site.clone(),
                format!("points at object {d}, which is missing"),
            ));
        }
    }
    for id in store.snapshot_ids() {
        if !store.has_snapshot_record(&id) && !store.snapshot_journal(&id).path().exists() {
            report.warnings.push(Problem::new(
                shown(store, &store.snapshot_dir(&id)),
                "a snapshot interrupted before it captured anything (`archive gc` removes it)",
            ));
        }
    }
    // Recount the running totals `status` shows, unless a writer is busy (it keeps them).
    if let Ok(_lock) = store.lock("archive verify") {
        let totals = crate::store::Totals {
            objects: report.objects as u64,
            bytes: report.bytes,
        };
        if let Err(e) = store.write_doc(crate::store::Doc::Totals, &totals) {
            tracing::warn!(
                "cannot save the archive's totals: {}",
                crate::report::chain(&e)
            );
        }
    }
    let orphans = present.difference(&refs.objects).count();
    if orphans > 0 {
        report.warnings.push(Problem::new(
            "objects",
            format!("{orphans} objects are not referenced by any record (left by an interrupted run; `archive gc` removes them)"),
        ));
    }
    Ok(report)
}

/// Where an object is (for people), and its actual digest and size or why it could not be
/// read.
type Hashed = (String, Result<(Digest, u64), std::io::Error>);

/// Where an object's bytes are.
enum Where {
    Loose(std::path::PathBuf),
    Packed(store::PackedAt),
}
