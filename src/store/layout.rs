//! Every file and folder of an archive, named once (issue 12). The rest of vaultkeep reaches
//! them through [`Store`](super::Store)'s accessors, never by name; `archive/README.md`, the
//! note left in every archive for whoever finds it, is generated from [`table`].

/// Content-addressed blobs.
pub(crate) const OBJECTS: &str = "objects";
/// Packs of small objects, inside the object folder.
pub(crate) const PACKS: &str = "packs";
/// The scan index.
pub(crate) const INDEX: &str = "index";
/// Changes to the scan index since it was last written whole.
pub(crate) const INDEX_CHANGES: &str = "index.changes";
/// Snapshot folders.
pub(crate) const SNAPSHOTS: &str = "snapshots";
/// A snapshot's record, in its folder.
pub(crate) const SNAPSHOT_RECORD: &str = "snapshot.json";
/// A snapshot's journal while it runs, in its folder.
pub(crate) const SNAPSHOT_JOURNAL: &str = "journal.jsonl";
/// A snapshot's offline copy, in its folder.
pub const OFFLINE: &str = "offline";
/// Screenshots and PDFs of a snapshot's rendered pages, in its folder.
pub const RENDERS: &str = "renders";
/// The writer's lock.
pub(crate) const LOCK: &str = "lock";
/// Other devices' version records, pulled from the remote: `peers/<device>.jsonl`.
pub(crate) const PEERS: &str = "peers";
/// Derived files that speed up scans and reports.
pub(crate) const CACHE: &str = "cache";
/// What each vault folder listed at the last recording scan (see `vault::folders`).
pub(crate) const FOLDERS: &str = "cache/folders";
/// Where the entries of the index file start, found when it was last checked.
pub(crate) const INDEX_MARKS: &str = "cache/index-marks";
/// The running daemon's socket and cookies (see `watch::vouch`).
pub(crate) const WATCH: &str = "watch";
/// The note for people.
pub(crate) const README: &str = "README.md";

/// An append-only log of records, one JSON line each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// Every recorded version of every vault file.
    Versions,
    /// Every link check.
    Checks,
}

impl Log {
    /// Its file, relative to the archive.
    pub fn file(self) -> &'static str {
        match self {
            Log::Versions => "versions.jsonl",
            Log::Checks => "checks.jsonl",
        }
    }
}

/// A whole JSON file of the archive, replaced atomically when written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doc {
    /// The last link check's verdict.
    Verdict,
    /// The daemon's snapshot queue.
    Queue,
    /// What the daemon last did.
    Daemon,
    /// Running totals of the objects, so `status` costs no walk.
    Totals,
    /// What each note says, by content.
    NoteCache,
    /// The last scan's full summary.
    Summary,
    /// The last scan's summary, lists cut short.
    SummaryBrief,
    /// This archive's name among the devices sharing a remote.
    Device,
}

impl Doc {
    /// Its file, relative to the archive.
    pub fn file(self) -> &'static str {
        match self {
            Doc::Verdict => "links.json",
            Doc::Queue => "queue.json",
            Doc::Daemon => "daemon.json",
            Doc::Totals => "totals.json",
            Doc::NoteCache => "cache/notes.jsonl",
            Doc::Summary => "cache/summary.json",
            Doc::SummaryBrief => "cache/summary-brief.json",
            Doc::Device => "device.json",
        }
    }

    /// Whether a write waits for the disk: records a person relies on do; derived files that
    /// are rebuilt when missing do not.
    pub fn durable(self) -> bool {
        matches!(self, Doc::Verdict | Doc::Queue | Doc::Device)
    }
}

/// One line of the archive's README: a path and what it holds.
pub struct Entry {
    /// The path, relative to the archive (`<id>` for a snapshot's id).
    pub path: String,
    /// What it holds, for a person.
    pub what: &'static str,
}

/// Every file and folder, for people.
pub fn table() -> Vec<Entry> {
    let e = |path: String, what: &'static str| Entry { path, what };
    let snapshot = |name: &str| format!("{SNAPSHOTS}/<id>/{name}");
    vec![
        e(
            format!("{OBJECTS}/ab/ab12…"),
            "content-addressed blobs: the name is the sha256 of the bytes (check with `sha256sum`). Written once, read-only; identical files are stored once.",
        ),
        e(
            format!("{OBJECTS}/{PACKS}/<name>.pack"),
            "small objects stored together by a scan that stored many at once (a first scan), or by `archive gc` merging small packs: per object its sha256 (32 bytes), its length (8 bytes, little endian) and its bytes. `<name>.idx` beside it, written once the pack is complete and durable, lists where each object is. `vaultkeep archive objects` lists every object, `archive cat <sha256>` prints one (`| sha256sum` checks it), `archive unpack` makes each a file of its own.",
        ),
        e(
            Log::Versions.file().into(),
            "one JSON line per recorded version of a vault file: time, event (created, modified, renamed, deleted), path, from (renames), sha256, size. Append-only.",
        ),
        e(
            INDEX.into(),
            "the scan index: path → size, mtime, inode, sha256, sorted by path (binary, like git's index; a scan reads it alongside the vault and does not load it). Derived: delete it and the next scan re-hashes every file, recording nothing new.",
        ),
        e(
            INDEX_CHANGES.into(),
            "changes to the scan index since it was written whole (a scan that changed few entries appends them here; past 2,048 entries or a quarter of the index's size the index is rewritten). Derived.",
        ),
        e(
            FOLDERS.into(),
            "what each vault folder listed at the last scan, with its inode and times: the next scan stats the files of a folder whose times did not change without listing it again. Binary, checked by CRC-32. Derived: `scan --every-file` reads every folder.",
        ),
        e(
            INDEX_MARKS.into(),
            "where every 32nd entry of the scan index starts, found when a scan last checked that index file (named by its inode, size and times): the next scan of an unchanged index skips checking it. Binary, checked by CRC-32. Derived.",
        ),
        e(
            Doc::NoteCache.file().into(),
            "what each note says (links, composting signs): one line per note content, `<sha256> <JSON>`, appended as notes are read and rewritten when mostly stale. Derived.",
        ),
        e(
            Doc::Summary.file().into(),
            "the last scan's summary, reused while the vault is unchanged. Derived.",
        ),
        e(
            Doc::SummaryBrief.file().into(),
            "the same with each list cut to its first items, for the terminal. Derived.",
        ),
        e(
            snapshot(SNAPSHOT_RECORD),
            "one snapshot's record: every capture (URL, status, headers, time, sha256) and every failure with its reason. Written last, after its objects are durable.",
        ),
        e(
            snapshot(&format!("{OFFLINE}/")),
            "its offline copy: open the entry page in a browser; files are hard links to objects.",
        ),
        e(
            snapshot(&format!("{RENDERS}/")),
            "screenshots (PNG) and PDFs of its pages, named after each page's offline file (`<page>.png`, `<page>.pdf`); hard links to objects.",
        ),
        e(
            snapshot(SNAPSHOT_JOURNAL),
            "while a snapshot runs: its captures and failures as they land. Removed once the record is written; after a crash the next writer records the snapshot from it.",
        ),
        e(
            Doc::Device.file().into(),
            "this archive's name among the devices that share a remote (`vaultkeep remote`): its records carry it there.",
        ),
        e(
            format!("{PEERS}/<device>.jsonl"),
            "version records of the other devices sharing the remote, pulled as they wrote them (same lines as versions.jsonl). Append-only.",
        ),
        e(
            Log::Checks.file().into(),
            "one JSON line per link check. Append-only.",
        ),
        e(
            Doc::Verdict.file().into(),
            "the last link check's verdict: its rule and the dead URLs.",
        ),
        e(
            Doc::Queue.file().into(),
            "the daemon's snapshot queue (survives restarts).",
        ),
        e(
            Doc::Daemon.file().into(),
            "what the daemon last did, for `vaultkeep status`. Derived.",
        ),
        e(
            Doc::Totals.file().into(),
            "how many objects and bytes the archive holds, kept as they are written (`archive verify` recounts). Derived.",
        ),
        e(
            format!("{WATCH}/"),
            "while the daemon runs: `socket`, where `vaultkeep scan` asks it which files changed since the index was written (it vouches for the rest), and the empty `cookie-<n>` files it writes to know its watcher has caught up. Removed when it stops.",
        ),
        e(
            LOCK.into(),
            "held by the one process writing to the archive; says which (pid, command, since).",
        ),
        e(README.into(), "this file."),
    ]
}

/// The README written into every archive.
pub fn readme() -> String {
    let mut out = String::from(
        "# A vaultkeep archive\n\n\
         Every version of every note and asset of an Obsidian vault, and snapshots of the websites \
         the notes reference. Plain files: read them with `ls`, `sha256sum`, a text editor and a \
         browser (packed objects with `vaultkeep archive cat`). Written by vaultkeep; do not edit.\n\n\
         | path | what |\n|---|---|\n",
    );
    for e in table() {
        out.push_str(&format!("| `{}` | {} |\n", e.path, e.what));
    }
    out.push_str(
        "\nCrash safety: objects are written first and made durable, then the records that point \
         at them. A crash leaves at worst an orphan object or temp file, a pack without its index, \
         or a torn last line of a log: `vaultkeep archive verify` reports them, `vaultkeep archive \
         gc` removes or completes them.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_archive_readme_is_the_generated_one() {
        let committed =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/archive/README.md"))
                .unwrap();
        assert_eq!(
            committed,
            readme(),
            "archive/README.md is generated: write readme() into it"
        );
    }

    #[test]
    fn every_file_is_in_the_table() {
        let paths: String = table().iter().map(|e| e.path.clone()).collect();
        for log in [Log::Versions, Log::Checks] {
            assert!(paths.contains(log.file()), "{}", log.file());
        }
        for doc in [
            Doc::Verdict,
            Doc::Queue,
            Doc::Daemon,
            Doc::Totals,
            Doc::NoteCache,
            Doc::Summary,
            Doc::SummaryBrief,
        ] {
            assert!(paths.contains(doc.file()), "{}", doc.file());
        }
    }
}
