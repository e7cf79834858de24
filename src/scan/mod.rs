//! One pass over the vault: record every new version of every note and asset, and read what
//! the notes link to. `vaultkeep scan` is this; the daemon runs it on what changed.
//!
//! Order (design.md, "The archive"): hash and store objects (in parallel), make them durable
//! with one sync, append the version records, then save the derived index and cache.

mod cache;
mod examine;
mod summary;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use jiff::Timestamp;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::links::FileIndex;
use crate::note::NoteFacts;
use crate::store::{self, Entry, Event, Index, Store, VersionRecord};
use crate::vault::{self, FileKind};

pub use summary::{Ambiguous, Composted, ScanReport, Unresolved};

use examine::{Outcome, examine};

/// Why a scan could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The vault folder is missing.
    #[error("no vault at {0} (give one with --vault, or run from a folder holding `vault/`)")]
    NoVault(PathBuf),
    /// The archive could not be used or written; nothing new was recorded by this run.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Settings of a scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Notes larger than this are recorded but not read for links.
    pub max_note_bytes: u64,
    /// Show a progress bar on stderr (only drawn on a terminal).
    pub progress: bool,
    /// The day against which `end` dates are judged.
    pub today: jiff::civil::Date,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            max_note_bytes: 10 * 1024 * 1024,
            progress: false,
            today: jiff::ZonedDateTime::now().date(),
        }
    }
}

/// A content file as the scan left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScannedFile {
    /// Vault-relative path.
    pub path: String,
    /// Note or asset.
    pub kind: FileKind,
    /// Current content, when it could be read (or its last recorded content).
    pub sha256: Option<Digest>,
}

/// The vault as read by a scan: its files and what each note says. Other commands (snapshot,
/// compost, links) work from this.
#[derive(Debug, Default)]
pub struct VaultView {
    /// Every content file, sorted by path.
    pub files: Vec<ScannedFile>,
    /// What each note says, by content address.
    pub facts: HashMap<Digest, NoteFacts>,
    /// The files by path and name, for resolving links.
    pub index: FileIndex,
}

impl VaultView {
    /// Notes with what they say.
    pub fn notes(&self) -> impl Iterator<Item = (&str, &NoteFacts)> {
        self.files
            .iter()
            .filter(|f| f.kind == FileKind::Note)
            .filter_map(|f| {
                let facts = self.facts.get(f.sha256.as_ref()?)?;
                Some((f.path.as_str(), facts))
            })
    }

    /// What one note says, by vault-relative path.
    pub fn note(&self, path: &str) -> Option<&NoteFacts> {
        self.notes().find(|(p, _)| *p == path).map(|(_, f)| f)
    }
}

/// Scans `vault_dir` into `store` (whose lock the caller holds).
pub fn scan(
    vault_dir: &Path,
    store: &Store,
    options: &ScanOptions,
) -> Result<(ScanReport, VaultView), Error> {
    if !vault_dir.is_dir() {
        return Err(Error::NoVault(vault_dir.to_path_buf()));
    }
    let started = Timestamp::now();
    let listing = vault::list(vault_dir, &[store.root().to_path_buf()]);
    let mut index = store.load_index()?;
    let cache_dir = store.cache_dir();
    let mut known = cache::load(&cache_dir);
    let racy_after = index.scan_started_ns;

    let bar = progress_bar(options.progress, listing.files.len() as u64);
    let outcomes: Vec<Outcome> = listing
        .files
        .par_iter()
        .map(|file| {
            let outcome = examine(
                file,
                index.files.get(&file.path),
                racy_after,
                store.objects(),
                &known,
                options.max_note_bytes,
            );
            bar.inc(1);
            outcome
        })
        .collect::<Result<_, _>>()?;
    bar.finish_and_clear();

    let mut problems = listing.problems;
    let mut present: HashMap<&str, Entry> = HashMap::with_capacity(outcomes.len());
    let mut unreadable: Vec<&str> = Vec::new();
    let mut new_bytes = 0;
    let mut cache_changed = false;
    for (file, outcome) in listing.files.iter().zip(outcomes) {
        match outcome {
            Outcome::Seen {
                entry,
                facts,
                new_bytes: n,
            } => {
                present.insert(&file.path, entry);
                new_bytes += n;
                if let Some(f) = facts {
                    known.insert(entry.sha256, f);
                    cache_changed = true;
                }
            }
            Outcome::Failed(p) => {
                problems.push(p);
                unreadable.push(&file.path);
            }
        }
    }

    let records = changes(&index, &present, &unreadable, started);
    if new_bytes > 0 {
        store
            .objects()
            .sync()
            .map_err(store::Error::io("sync the objects of", store.root()))?;
    }
    if !records.is_empty() {
        let journal = store.versions();
        index.log_end = journal
            .append(&records)
            .map_err(store::Error::io("append to", journal.path()))?;
        index.log_lines += records.len();
        for r in &records {
            index.apply(r);
        }
    }
    let mut index_changed = !records.is_empty();
    for (path, entry) in &present {
        let slot = index.files.get_mut(*path);
        if let Some(slot) = slot
            && slot != entry
        {
            *slot = *entry;
            index_changed = true;
        }
    }
    if index_changed || index.scan_started_ns == 0 {
        index.scan_started_ns = started.as_nanosecond();
        store.save_index(&index)?;
    }

    let files: Vec<ScannedFile> = listing
        .files
        .iter()
        .map(|f| ScannedFile {
            path: f.path.clone(),
            kind: f.kind,
            sha256: present
                .get(f.path.as_str())
                .or_else(|| index.files.get(&f.path))
                .map(|e| e.sha256),
        })
        .collect();
    // Keep the cache to what the vault holds now, so it does not grow forever.
    let live: std::collections::HashSet<Digest> = files.iter().filter_map(|f| f.sha256).collect();
    let before = known.len();
    known.retain(|d, _| live.contains(d));
    if cache_changed || known.len() != before {
        known = match cache::save(&cache_dir, known) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!("cannot save the note cache in {}: {e}", cache_dir.display());
                HashMap::new()
            }
        };
    }

    let view = VaultView {
        index: FileIndex::new(files.iter().map(|f| f.path.clone())),
        files,
        facts: known,
    };
    let mut report = summary::summarize(&view, options.today);
    report.recorded = records.len();
    for r in &records {
        *report.events.entry(r.event.name().to_string()).or_default() += 1;
    }
    report.new_bytes = new_bytes;
    problems.append(&mut report.problems);
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    report.problems = problems;
    Ok((report, view))
}

/// The version records that bring the recorded state (`index`) to what is on disk now.
/// A file that vanished while another with the same content appeared was renamed.
fn changes(
    index: &Index,
    present: &HashMap<&str, Entry>,
    unreadable: &[&str],
    time: Timestamp,
) -> Vec<VersionRecord> {
    let record = |event, path: &str, from: Option<&str>, e: &Entry| VersionRecord {
        time,
        event,
        path: path.to_string(),
        from: from.map(str::to_string),
        sha256: e.sha256,
        size: e.size,
    };
    let mut gone: Vec<(&String, &Entry)> = index
        .files
        .iter()
        .filter(|(p, _)| !present.contains_key(p.as_str()) && !unreadable.contains(&p.as_str()))
        .collect();
    gone.sort_by(|a, b| a.0.cmp(b.0));
    let mut created: Vec<(&str, &Entry)> = Vec::new();
    let mut out = Vec::new();
    let mut sorted: Vec<(&&str, &Entry)> = present.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (path, entry) in sorted {
        match index.files.get(*path) {
            Some(old) if old.sha256 == entry.sha256 => {}
            Some(_) => out.push(record(Event::Modified, path, None, entry)),
            None => created.push((path, entry)),
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
    for (path, entry) in gone {
        out.push(record(Event::Deleted, path, None, entry));
    }
    out
}

fn progress_bar(enabled: bool, len: u64) -> ProgressBar {
    if !enabled || len < 500 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} scanning {pos}/{len} files [{bar:30}] {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(content: &[u8], ino: u64) -> Entry {
        Entry {
            sha256: Digest::of(content),
            size: content.len() as u64,
            mtime_ns: 1,
            ino,
        }
    }

    fn events(
        index: &Index,
        present: &[(&'static str, Entry)],
        unreadable: &[&str],
    ) -> Vec<(Event, String, Option<String>)> {
        let present: HashMap<&str, Entry> = present.iter().cloned().collect();
        changes(index, &present, unreadable, Timestamp::UNIX_EPOCH)
            .into_iter()
            .map(|r| (r.event, r.path, r.from))
            .collect()
    }

    fn index(files: &[(&str, Entry)]) -> Index {
        let mut i = Index::default();
        i.files = files.iter().map(|(p, e)| (p.to_string(), *e)).collect();
        i
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
            ("moved/b.md", entry(b"b", 2)),
            ("d.md", entry(b"d", 4)),
        ];
        assert_eq!(
            events(&old, &now, &[]),
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
        let old = index(&[("a.md", entry(b"a", 1))]);
        assert!(events(&old, &[], &["a.md"]).is_empty());
    }

    #[test]
    fn a_rename_prefers_the_same_inode_among_copies() {
        let old = index(&[
            ("a/one.png", entry(b"same", 7)),
            ("b/two.png", entry(b"same", 8)),
        ]);
        let now = [("c/new.png", entry(b"same", 8))];
        assert_eq!(
            events(&old, &now, &[]),
            vec![
                (Event::Renamed, "c/new.png".into(), Some("b/two.png".into())),
                (Event::Deleted, "a/one.png".into(), None),
            ]
        );
    }
}
