//! What changed since the last scan, as version records, and recording them: objects made
//! durable first, then the records appended, then the index saved.

use jiff::Timestamp;

use crate::store::{self, Entry, Event, Index, Store, VersionRecord};

/// Makes the objects durable, appends the records, and brings the index up to them and to
/// the `changed` files' stat data (design.md, "The archive"). The objects the records name
/// are synced whenever records are appended, even if this batch wrote no new bytes: an object
/// left by an interrupted run may not have reached the disk yet.
pub(super) fn record(
    store: &Store,
    index: &mut Index,
    records: &[VersionRecord],
    changed: &[Changed],
) -> Result<(), store::Error> {
    crate::failpoint::pause_at("scan:objects-written");
    if !records.is_empty() {
        let named = records
            .iter()
            .filter(|r| r.event != Event::Deleted)
            .map(|r| &r.sha256);
        store
            .objects()
            .sync_objects(named)
            .map_err(store::Error::io("sync the objects of", store.root()))?;
        crate::failpoint::pause_at("scan:objects-synced");
        let journal = store.versions();
        index.log_end = journal
            .append(records)
            .map_err(store::Error::io("append to", journal.path()))?;
        index.log_lines += records.len();
        for r in records {
            index.apply(r);
        }
        crate::failpoint::pause_at("scan:records-appended");
    }
    for c in changed {
        index.set(&c.path, c.entry);
    }
    Ok(())
}

/// Saves the index once every batch is recorded (it is derived: after a crash, the next run
/// brings it up to the log), and the totals when versions were recorded.
pub(super) fn finish(
    store: &Store,
    index: &mut Index,
    changed: bool,
    recorded: bool,
    started: Timestamp,
) -> Result<(), store::Error> {
    if changed || recorded || index.scan_started_ns == 0 || index.needs_rewrite() {
        index.scan_started_ns = started.as_nanosecond();
        store.save_index(index)?;
    }
    if recorded {
        store.update_totals()?;
    }
    Ok(())
}

/// Writes the index between two batches once it holds `most` changes in memory: a first scan
/// of a large vault then holds a few thousand entries, not one per file. The index is derived:
/// if it cannot be written now, the scan goes on holding them, and its last save says why.
pub(super) fn save_if_large(store: &Store, index: &mut Index, most: usize, started: Timestamp) {
    if index.held() < most {
        return;
    }
    if let Err(e) = save_partial(store, index, started) {
        tracing::warn!("{e}; the scan goes on and writes the index at its end");
    }
}

/// Writes the index before the scan has looked at every file. Those not yet looked at keep
/// the last scan's start as the instant after which they count as changed: this scan's start,
/// later, would vouch for a file the last scan saw change within a clock tick (a first scan
/// has no last scan; the files this scan recorded count as changed a little earlier, which
/// costs a read at most).
pub(super) fn save_partial(
    store: &Store,
    index: &mut Index,
    started: Timestamp,
) -> Result<(), store::Error> {
    if index.scan_started_ns == 0 {
        index.scan_started_ns = started.as_nanosecond();
    }
    store.save_index(index)
}

/// A scanned file whose entry differs from the index's.
pub(super) struct Changed {
    /// Its path.
    pub path: String,
    /// What the index held for it.
    pub previous: Option<Entry>,
    /// What the scan saw.
    pub entry: Entry,
}

/// The version records that bring the recorded state (`index`) to what is on disk now, for
/// one batch: `changed` are the files whose entry differs from the index, `gone` the recorded
/// files no longer listed and not yet claimed. A file that appeared with the content of one
/// that vanished was renamed (the vanished one is claimed); after the `last` batch, the
/// unclaimed are deleted.
pub(super) fn changes(
    changed: &[Changed],
    gone: &mut Vec<(String, Entry)>,
    last: bool,
    time: Timestamp,
) -> Vec<VersionRecord> {
    let record = |event, path: &str, from: Option<String>, e: &Entry| VersionRecord {
        time,
        event,
        path: path.to_string(),
        from,
        sha256: e.sha256,
        size: e.size,
        device: None,
    };
    let mut out = Vec::new();
    let mut created = Vec::new();
    for c in changed {
        let path = c.path.as_str();
        match c.previous {
            Some(old) if old.sha256 == c.entry.sha256 => {}
            Some(_) => out.push(record(Event::Modified, path, None, &c.entry)),
            None => created.push((path, &c.entry)),
        }
    }
    for (path, entry) in created {
        // Prefer the vanished file with the same inode (a real rename), else the same content.
        let pick = gone
            .iter()
            .position(|(_, g)| g.sha256 == entry.sha256 && g.ino != 0 && g.ino == entry.ino)
            .or_else(|| gone.iter().position(|(_, g)| g.sha256 == entry.sha256));
        match pick {
            Some(i) => {
                let (from, _) = gone.remove(i);
                out.push(record(Event::Renamed, path, Some(from), entry));
            }
            None => out.push(record(Event::Created, path, None, entry)),
        }
    }
    if last {
        for (path, entry) in gone.drain(..) {
            out.push(record(Event::Deleted, &path, None, &entry));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn entry(content: &[u8], ino: u64) -> Entry {
        Entry {
            sha256: Digest::of(content),
            size: content.len() as u64,
            mtime_ns: 1,
            ino,
        }
    }

    /// The recorded files not among `present` (in path order), found as a scan finds them.
    fn vanished(index: &Index, present: &[(&str, Entry)]) -> Vec<(String, Entry)> {
        let mut gone = Vec::new();
        index.meet(
            None,
            present.iter().map(|(p, _)| *p),
            true,
            |_| {},
            |p, e| gone.push((p.to_string(), *e)),
        );
        gone
    }

    fn events(index: &Index, present: &[(&str, Entry)]) -> Vec<(Event, String, Option<String>)> {
        let changed: Vec<Changed> = present
            .iter()
            .filter(|(p, e)| index.get(p) != Some(*e))
            .map(|(p, e)| Changed {
                path: p.to_string(),
                previous: index.get(p),
                entry: *e,
            })
            .collect();
        let mut gone = vanished(index, present);
        changes(&changed, &mut gone, true, Timestamp::UNIX_EPOCH)
            .into_iter()
            .map(|r| (r.event, r.path, r.from))
            .collect()
    }

    fn index(files: &[(&str, Entry)]) -> Index {
        Index::holding(files.iter().copied())
    }

    #[test]
    fn new_changed_moved_and_gone_files_become_records() {
        let old = index(&[
            ("a.md", entry(b"a", 1)),
            ("b.md", entry(b"b", 2)),
            ("c.md", entry(b"c", 3)),
        ]);
        let now = [
            ("a.md", entry(b"a2", 1)),
            ("d.md", entry(b"d", 4)),
            ("moved/b.md", entry(b"b", 2)),
        ];
        assert_eq!(
            events(&old, &now),
            vec![
                (Event::Modified, "a.md".into(), None),
                (Event::Created, "d.md".into(), None),
                (Event::Renamed, "moved/b.md".into(), Some("b.md".into())),
                (Event::Deleted, "c.md".into(), None),
            ]
        );
    }

    #[test]
    fn an_unreadable_file_is_not_taken_for_deleted() {
        let old = index(&[("a.md", entry(b"a", 1)), ("b.md", entry(b"b", 2))]);
        // `a.md` was listed but could not be read: it keeps its recorded content.
        let present = [("a.md", entry(b"a", 1))];
        let gone: Vec<_> = vanished(&old, &present)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(gone, vec!["b.md"]);
    }

    #[test]
    fn a_rename_prefers_the_same_inode_among_copies() {
        let old = index(&[
            ("a/one.png", entry(b"same", 7)),
            ("b/two.png", entry(b"same", 8)),
        ]);
        let now = [("c/new.png", entry(b"same", 8))];
        assert_eq!(
            events(&old, &now),
            vec![
                (Event::Renamed, "c/new.png".into(), Some("b/two.png".into())),
                (Event::Deleted, "a/one.png".into(), None),
            ]
        );
    }

    #[test]
    fn batches_claim_renames_as_they_come_and_delete_only_at_the_end() {
        let old = index(&[("old/a.md", entry(b"a", 1)), ("old/b.md", entry(b"b", 2))]);
        let present = [("new/a.md", entry(b"a", 1)), ("z.md", entry(b"z", 9))];
        let mut gone = vanished(&old, &present);
        let new = |at: usize| Changed {
            path: present[at].0.to_string(),
            previous: None,
            entry: present[at].1,
        };
        let first = changes(&[new(0)], &mut gone, false, Timestamp::UNIX_EPOCH);
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].event, first[0].from.as_deref()),
            (Event::Renamed, Some("old/a.md"))
        );
        let last = changes(&[new(1)], &mut gone, true, Timestamp::UNIX_EPOCH);
        let events: Vec<_> = last.iter().map(|r| (r.event, r.path.as_str())).collect();
        assert_eq!(
            events,
            vec![(Event::Created, "z.md"), (Event::Deleted, "old/b.md")]
        );
    }
}
