//! `vaultkeep archive gc`: remove objects nothing references and stale temp files.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::references;
use crate::digest::Digest;
use crate::store::{self, ObjectEntry, PackWriter, PackedAt, Store};

/// Temp files younger than this may belong to a write in progress elsewhere; they stay.
pub const TEMP_GRACE: Duration = Duration::from_secs(60 * 60);

/// Packs smaller than this are merged into one when there are several: a daemon writes one
/// per burst of changes, and many small packs would cost what many loose objects cost.
pub const SMALL_PACK: u64 = 16 * 1024 * 1024;

/// Why gc would not run, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// Records that cannot be read might reference objects: nothing is removed.
    #[error(
        "{0} records of the archive are unreadable and might reference objects, so nothing was removed; run `vaultkeep archive verify` to see them"
    )]
    UnreadableRecords(usize),
    /// The archive could not be read or changed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// What gc removed (or, with `--dry-run`, would remove).
#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Unreferenced objects.
    pub objects: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Stale temp files.
    pub temp_files: usize,
    /// Packs rewritten: without their unreferenced objects, completed (their writer was
    /// interrupted) or merged; what they keep goes to one new pack.
    pub packs_rewritten: usize,
    /// Of those, the packs merged only for being small (see [`SMALL_PACK`]).
    pub packs_merged: usize,
    /// Folders of snapshots interrupted before they were recorded, with no journal to finish
    /// them from.
    pub incomplete_snapshots: usize,
    /// Snapshots interrupted before they were recorded, recorded now from their journals.
    pub finished_snapshots: Vec<String>,
    /// Paths removed, relative to the archive.
    pub removed: Vec<String>,
}

/// Removes what nothing references. For a real run the caller holds the archive's lock, so no
/// writer can be between storing an object and recording it. A dry run may run beside a
/// writer (the daemon): then objects younger than [`TEMP_GRACE`] may be about to be recorded,
/// and are not listed.
pub fn gc(store: &Store, dry_run: bool) -> Result<GcReport, GcError> {
    let writer_busy = dry_run && store.lock_holder().is_some();
    let mut finished = Vec::new();
    if !dry_run {
        // Record what interrupted snapshots captured before anything could look unreferenced.
        finished = crate::snapshot::finish_interrupted(store)?;
    }
    let refs = references(store)?;
    if !refs.problems.is_empty() {
        // A record we cannot read might reference objects: removing anything could lose data.
        return Err(GcError::UnreadableRecords(refs.problems.len()));
    }
    let mut report = GcReport {
        dry_run,
        finished_snapshots: finished,
        ..GcReport::default()
    };
    let now = SystemTime::now();
    let entries = store
        .entries()
        .map_err(store::Error::io("list the objects of", store.root()))?;
    let mut packs: BTreeMap<Arc<Path>, Pack> = BTreeMap::new();
    for entry in &entries {
        match entry {
            ObjectEntry::Packed(d, at) => packs
                .entry(at.pack.clone())
                .or_default()
                .objects
                .push((*d, at.clone())),
            ObjectEntry::Unfinished(path) => {
                packs
                    .entry(Arc::from(path.as_path()))
                    .or_default()
                    .unfinished = true;
            }
            _ => {}
        }
    }
    let small: std::collections::BTreeSet<Arc<Path>> = packs
        .iter()
        .filter(|(path, pack)| {
            !pack.unfinished && fs::metadata(path).is_ok_and(|m| m.len() < SMALL_PACK)
        })
        .map(|(path, _)| path.clone())
        .collect();
    let merge_small = small.len() > 1;
    let mut rewriting: Vec<(Arc<Path>, Pack)> = Vec::new();
    for (path, pack) in packs {
        // A pack being written (a busy writer's, seen by a dry run) is left alone.
        if pack.unfinished && writer_busy {
            continue;
        }
        let dead: Vec<&(Digest, PackedAt)> = pack
            .objects
            .iter()
            .filter(|(d, _)| !refs.objects.contains(d))
            .collect();
        let merged = merge_small && small.contains(&path);
        if dead.is_empty() && !pack.unfinished {
            if !merged {
                continue;
            }
            report.packs_merged += 1;
        }
        report.packs_rewritten += 1;
        for (d, at) in dead {
            report.objects += 1;
            report.bytes += at.len;
            report
                .removed
                .push(format!("{} {d}", super::shown(store, &path)));
        }
        rewriting.push((path, pack));
    }
    if !dry_run && !rewriting.is_empty() {
        rewrite(store, &rewriting, &refs.objects)?;
    }
    for entry in entries {
        let (path, is_object) = match entry {
            ObjectEntry::Object(d, path) if !refs.objects.contains(&d) => {
                if writer_busy && age(&path, now) < TEMP_GRACE {
                    continue;
                }
                (path, true)
            }
            ObjectEntry::Temp(path) => {
                if age(&path, now) < TEMP_GRACE {
                    continue;
                }
                (path, false)
            }
            _ => continue,
        };
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if !dry_run {
            fs::remove_file(&path).map_err(store::Error::io("remove", &path))?;
        }
        if is_object {
            report.objects += 1;
            report.bytes += size;
        } else {
            report.temp_files += 1;
        }
        report.removed.push(
            path.strip_prefix(store.root())
                .unwrap_or(&path)
                .display()
                .to_string(),
        );
    }
    // Snapshot folders without a record or a journal were interrupted before they captured
    // anything.
    for id in store.snapshot_ids() {
        let path = store.snapshot_dir(&id);
        if store.has_snapshot_record(&id)
            || store.snapshot_journal(&id).path().exists()
            || age(&path, now) < TEMP_GRACE
        {
            continue;
        }
        if !dry_run {
            fs::remove_dir_all(&path).map_err(store::Error::io("remove", &path))?;
        }
        report.incomplete_snapshots += 1;
        report.removed.push(super::shown(store, &path));
    }
    report.removed.sort();
    if !dry_run {
        let totals = store.count_objects()?;
        store.write_doc(store::Doc::Totals, &totals)?;
    }
    Ok(report)
}

/// One pack's objects, as listed.
#[derive(Default)]
struct Pack {
    objects: Vec<(Digest, PackedAt)>,
    unfinished: bool,
}

/// Copies the packs' referenced objects into one new pack, makes it durable, then removes the
/// old packs. A referenced object that cannot be read intact stops gc with every pack
/// untouched; an interruption after the new pack is durable leaves objects stored twice, which
/// the next gc merges.
fn rewrite(
    store: &Store,
    packs: &[(Arc<Path>, Pack)],
    referenced: &std::collections::HashSet<Digest>,
) -> Result<(), store::Error> {
    let objects = store.objects();
    let in_packs = objects.packs_dir();
    let writer =
        PackWriter::create(objects).map_err(store::Error::io("start a pack in", &in_packs))?;
    for (path, pack) in packs {
        for (d, at) in pack.objects.iter().filter(|(d, _)| referenced.contains(d)) {
            let bytes = at.read(d).map_err(store::Error::io("read", path))?;
            writer
                .copy(d, &bytes)
                .map_err(store::Error::io("write a pack in", &in_packs))?;
        }
    }
    writer
        .finish()
        .map_err(store::Error::io("finish a pack in", &in_packs))?;
    objects
        .sync()
        .map_err(store::Error::io("sync the objects of", store.root()))?;
    for (path, _) in packs {
        objects
            .remove_pack(path)
            .map_err(store::Error::io("remove", path))?;
    }
    Ok(())
}

/// How long ago a file was last modified (zero when unknown).
fn age(path: &std::path::Path, now: SystemTime) -> Duration {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| now.duration_since(t).ok())
        .unwrap_or_default()
}
