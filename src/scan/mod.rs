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
use crate::report::Problem;
use crate::store::{self, Entry, Event, Index, Store, VersionRecord};
use crate::vault::{self, FileKind};

pub use summary::{Ambiguous, Composted, ScanReport, Summary, Totals, Unresolved};

use examine::{Outcome, examine};

/// Why a scan could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The vault folder is missing.
    #[error("no vault at {0} (give one with --vault, or run from a folder holding `vault/`)")]
    NoVault(PathBuf),
    /// The vault path is a file, not a folder.
    #[error("the vault {0} is a file, not a folder (give the vault's folder with --vault)")]
    VaultIsFile(PathBuf),
    /// The scan would record many files as deleted at once: more likely an unmounted drive,
    /// a sync in progress or a mistyped `--vault` than a deliberate deletion.
    #[error("{0}")]
    Deletions(Deletions),
    /// The scan was cancelled before it recorded anything.
    #[error("the scan was stopped before it recorded anything")]
    Cancelled,
    /// The archive could not be used or written; nothing new was recorded by this run.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// A refused mass deletion: what the vault looked like, for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletions {
    /// The vault.
    pub vault: PathBuf,
    /// Files the archive knows as present.
    pub known: usize,
    /// Of those, the files that are gone (renames excluded).
    pub deleted: usize,
}

impl std::fmt::Display for Deletions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.deleted == self.known {
            format!(
                "the vault {} holds none of the {} files the archive knows",
                self.vault.display(),
                self.known
            )
        } else {
            format!(
                "{} of the {} files the archive knows are gone from {}",
                self.deleted,
                self.known,
                self.vault.display()
            )
        };
        write!(
            f,
            "{what}; nothing was recorded. If the drive is not mounted, the sync is not finished or \
             --vault is mistyped, fix that and scan again. If you deleted them on purpose, run \
             `vaultkeep scan --accept-deletions` (stop `vaultkeep watch` first if it runs)"
        )
    }
}

/// The rule `scan` and the daemon share: recording more than half of the known files as
/// deleted at once (or all of them) needs the user's word (issue 9).
pub fn check_deletions(vault: &Path, known: usize, deleted: usize) -> Result<(), Error> {
    if known > 0 && deleted > 0 && deleted * 2 > known {
        return Err(Error::Deletions(Deletions {
            vault: vault.to_path_buf(),
            known,
            deleted,
        }));
    }
    Ok(())
}

/// Checks that `vault` is a folder; the one place commands ask.
pub fn check_vault(vault: &Path) -> Result<(), Error> {
    match std::fs::metadata(vault) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::VaultIsFile(vault.to_path_buf())),
        Err(_) => Err(Error::NoVault(vault.to_path_buf())),
    }
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
    /// Record more than half of the known files as deleted at once (`--accept-deletions`).
    pub accept_deletions: bool,
    /// Record what changed (false: a preview that writes nothing to the archive, for dry runs
    /// beside a running daemon).
    pub record: bool,
    /// Set to stop a scan early (a daemon shutting down); nothing is recorded then.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            max_note_bytes: 10 * 1024 * 1024,
            progress: false,
            today: today(),
            accept_deletions: false,
            record: true,
            cancel: None,
        }
    }
}

/// Today in the system's time zone: the day `end` dates are judged against. Taken afresh by
/// every command and by the daemon at each scan and job, so time moves while it runs.
pub fn today() -> jiff::civil::Date {
    jiff::ZonedDateTime::now().date()
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

/// One finished pass over the vault: what it recorded, and the means to read what the notes
/// say ([`Scan::view`]) and to report ([`Scan::report`]).
pub struct Scan {
    /// Every content file, sorted by path.
    pub files: Vec<ScannedFile>,
    /// The version records this pass wrote.
    pub records: Vec<VersionRecord>,
    /// Bytes of new objects stored.
    pub new_bytes: u64,
    /// Files and folders that could not be read.
    pub problems: Vec<Problem>,
    /// Notes read during this pass, until [`Scan::view`] takes them.
    fresh: std::sync::Mutex<HashMap<Digest, NoteFacts>>,
    key: summary::Key,
    store: Store,
    options: ScanOptions,
}

/// Scans `vault_dir` into `store` (whose lock the caller holds): records every new version.
pub fn scan(vault_dir: &Path, store: &Store, options: &ScanOptions) -> Result<Scan, Error> {
    check_vault(vault_dir)?;
    let started = Timestamp::now();
    let clock = std::time::Instant::now();
    // Walking the vault and reading the index are independent: do both at once.
    let (listing, index) = rayon::join(
        || vault::list(vault_dir, &[store.root().to_path_buf()]),
        || store.load_index(),
    );
    let mut index = index?;
    tracing::debug!(files = listing.files.len(), elapsed = ?clock.elapsed(), "listed the vault and read the index");
    let racy_after = index.scan_started_ns;
    crate::failpoint::pause_at("scan:listed");

    let bar = progress_bar(options.progress, listing.files.len() as u64);
    let outcomes: Vec<(Option<Entry>, Outcome)> = listing
        .files
        .par_iter()
        .map(|file| {
            if options
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
            {
                return Err(None);
            }
            let previous = index.files.get(&file.path).copied();
            let outcome = examine(
                vault_dir,
                file,
                previous.as_ref(),
                racy_after,
                options.record.then(|| store.objects()),
                options.max_note_bytes,
            );
            if options.progress {
                bar.inc(1);
            }
            outcome.map(|o| (previous, o)).map_err(Some)
        })
        .collect::<Result<_, Option<store::Error>>>()
        .map_err(|e| e.map_or(Error::Cancelled, Error::Store))?;
    bar.finish_and_clear();
    tracing::debug!(elapsed = ?clock.elapsed(), "examined every file");

    let mut problems = listing.problems;
    let mut files = Vec::with_capacity(outcomes.len());
    let mut changed: Vec<(usize, Entry)> = Vec::new();
    let mut new_bytes = 0;
    let mut fresh = HashMap::new();
    let mut still_recorded = 0;
    for (file, (previous, outcome)) in listing.files.into_iter().zip(outcomes) {
        still_recorded += usize::from(previous.is_some());
        let sha256 = match outcome {
            Outcome::Seen {
                entry,
                facts,
                new_bytes: n,
            } => {
                new_bytes += n;
                if let Some(f) = facts {
                    fresh.insert(entry.sha256, *f);
                }
                if previous != Some(entry) {
                    changed.push((files.len(), entry));
                }
                Some(entry.sha256)
            }
            Outcome::Failed(p) => {
                problems.push(p);
                previous.map(|e| e.sha256)
            }
        };
        files.push(ScannedFile {
            path: file.path,
            kind: file.kind,
            sha256,
        });
    }
    let records = changes(
        &index,
        &files,
        &changed,
        vanished(&index, &files, still_recorded),
        started,
    );
    if !options.accept_deletions {
        let deleted = records.iter().filter(|r| r.event == Event::Deleted).count();
        check_deletions(vault_dir, index.files.len(), deleted)?;
    }
    if options.record {
        record(store, &mut index, &records, &changed, &files, started)?;
        tracing::debug!(elapsed = ?clock.elapsed(), records = records.len(), "recorded");
    }
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Scan {
        key: summary::Key::new(index.log_end, &files, options.today),
        files,
        records,
        new_bytes,
        problems,
        fresh: std::sync::Mutex::new(fresh),
        store: store.clone(),
        options: options.clone(),
    })
}

/// Makes the objects durable, appends the records, then saves the index (design.md, "The
/// archive"). The sync runs whenever records are appended, even if this scan wrote no new
/// bytes: an object left by an interrupted run may not have reached the disk yet.
fn record(
    store: &Store,
    index: &mut Index,
    records: &[VersionRecord],
    changed: &[(usize, Entry)],
    files: &[ScannedFile],
    started: Timestamp,
) -> Result<(), store::Error> {
    crate::failpoint::pause_at("scan:objects-written");
    if !records.is_empty() {
        store
            .objects()
            .sync()
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
    for (i, entry) in changed {
        if let Some(slot) = index.files.get_mut(&files[*i].path) {
            *slot = *entry;
        }
    }
    if !records.is_empty() || !changed.is_empty() || index.scan_started_ns == 0 {
        index.scan_started_ns = started.as_nanosecond();
        store.save_index(index)?;
    }
    Ok(())
}

/// Recorded files that are no longer listed, sorted by path; `still_recorded` of the listed
/// files are in the index. A listed file that could not be read is not among them: it is
/// still there.
fn vanished<'a>(
    index: &'a Index,
    files: &[ScannedFile],
    still_recorded: usize,
) -> Vec<(&'a String, &'a Entry)> {
    if still_recorded == index.files.len() {
        return Vec::new();
    }
    let listed: rustc_hash::FxHashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let mut gone: Vec<_> = index
        .files
        .iter()
        .filter(|(p, _)| !listed.contains(p.as_str()))
        .collect();
    gone.sort_by(|a, b| a.0.cmp(b.0));
    gone
}

impl Scan {
    /// What the notes read during this pass say (the new and changed ones), taking them out
    /// of the scan (a later [`Scan::view`] reads them from the cache or the archive).
    pub fn take_fresh(&self) -> HashMap<Digest, NoteFacts> {
        std::mem::take(&mut *self.fresh.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// What every note says, read from the note cache, from this pass, or (for notes the
    /// cache lacks) from the archive's copy. Keeps the cache to the vault's current notes.
    pub fn view(&self) -> Result<VaultView, store::Error> {
        let (view, dirty) = self.build_view()?;
        if dirty {
            self.save_facts(&view.facts);
        }
        Ok(view)
    }

    /// What every note says (as [`Scan::view`], without indexing the files for links).
    pub fn facts(&self) -> Result<HashMap<Digest, NoteFacts>, store::Error> {
        let (facts, dirty) = self.load_facts()?;
        if dirty {
            self.save_facts(&facts);
        }
        Ok(facts)
    }

    /// The view, and whether the note cache needs saving.
    fn build_view(&self) -> Result<(VaultView, bool), store::Error> {
        let (facts, dirty) = self.load_facts()?;
        let view = VaultView {
            index: FileIndex::new(self.files.iter().map(|f| f.path.clone())),
            files: self.files.clone(),
            facts,
        };
        Ok((view, dirty))
    }

    /// Every note's facts, and whether the note cache needs saving.
    fn load_facts(&self) -> Result<(HashMap<Digest, NoteFacts>, bool), store::Error> {
        let cache_dir = self.store.cache_dir();
        let (mut facts, fresh) = rayon::join(
            || cache::load(&cache_dir),
            || std::mem::take(&mut *self.fresh.lock().unwrap_or_else(|e| e.into_inner())),
        );
        let mut dirty = !fresh.is_empty();
        facts.extend(fresh);
        let missing: std::collections::HashSet<Digest> = self
            .files
            .iter()
            .filter(|f| f.kind == FileKind::Note)
            .filter_map(|f| f.sha256)
            .filter(|d| !facts.contains_key(d))
            .collect();
        let read: Vec<(Digest, NoteFacts)> = missing
            .par_iter()
            .map(|d| {
                let bytes = self
                    .store
                    .objects()
                    .read(d)
                    .map_err(store::Error::io("read", &self.store.objects().path(d)))?;
                Ok((
                    *d,
                    crate::note::read_note_bytes(&bytes, self.options.max_note_bytes),
                ))
            })
            .collect::<Result<_, store::Error>>()?;
        dirty |= !read.is_empty();
        facts.extend(read);
        let live: std::collections::HashSet<Digest> =
            self.files.iter().filter_map(|f| f.sha256).collect();
        let before = facts.len();
        facts.retain(|d, _| live.contains(d));
        dirty |= facts.len() != before;
        Ok((facts, dirty))
    }

    /// Saves the note cache; a failure only costs time next run.
    fn save_facts(&self, facts: &HashMap<Digest, NoteFacts>) {
        if !self.options.record {
            return;
        }
        let dir = self.store.cache_dir();
        if let Err(e) = cache::save(&dir, facts) {
            tracing::warn!("cannot save the note cache in {}: {e}", dir.display());
        }
    }

    /// The full report. The summary of links and profiles is reused from the last scan when
    /// the vault is as it was then (same records, same files, same day).
    pub fn report(&self) -> Result<ScanReport, store::Error> {
        let summary = match summary::load_full(&self.store.cache_dir(), &self.key) {
            Some(s) => s,
            None => self.summarize()?,
        };
        Ok(self.complete(summary, None))
    }

    /// The report with each list cut to its first few items, and the full counts: what a
    /// person reads. Cheap when the vault has not changed.
    pub fn brief(&self) -> Result<ScanReport, store::Error> {
        let (summary, totals) = match summary::load_brief(&self.store.cache_dir(), &self.key) {
            Some(b) => b,
            None => {
                let full = self.summarize()?;
                let totals = full.totals();
                (full.brief(), totals)
            }
        };
        Ok(self.complete(summary, Some(totals)))
    }

    fn summarize(&self) -> Result<Summary, store::Error> {
        let clock = std::time::Instant::now();
        let (view, dirty) = self.build_view()?;
        tracing::debug!(elapsed = ?clock.elapsed(), "read what the notes say");
        // Saving the note cache and summarizing only read the view: do both at once.
        let ((), summary) = rayon::join(
            || {
                if dirty {
                    self.save_facts(&view.facts);
                    tracing::debug!(elapsed = ?clock.elapsed(), "saved the note cache");
                }
            },
            || {
                let s = summary::summarize(&view, self.options.today);
                tracing::debug!(elapsed = ?clock.elapsed(), "summary computed");
                s
            },
        );
        tracing::debug!(elapsed = ?clock.elapsed(), "summarized");
        if self.options.record {
            summary::save(&self.store.cache_dir(), &self.key, &summary);
        }
        tracing::debug!(elapsed = ?clock.elapsed(), "saved the summary");
        Ok(summary)
    }

    fn complete(&self, mut summary: Summary, totals: Option<Totals>) -> ScanReport {
        let mut totals = totals.unwrap_or_else(|| summary.totals());
        totals.problems += self.problems.len();
        summary.problems.extend(self.problems.iter().cloned());
        summary.problems.sort_by(|a, b| a.path.cmp(&b.path));
        let mut events = std::collections::BTreeMap::new();
        for r in &self.records {
            *events.entry(r.event.name().to_string()).or_default() += 1;
        }
        ScanReport {
            summary,
            recorded: self.records.len(),
            events,
            new_bytes: self.new_bytes,
            totals,
        }
    }
}

/// The version records that bring the recorded state (`index`) to what is on disk now:
/// `changed` are the files (by position in `files`) whose entry differs from the index, `gone`
/// the recorded files no longer listed. A file that appeared with the content of one that
/// vanished was renamed.
fn changes(
    index: &Index,
    files: &[ScannedFile],
    changed: &[(usize, Entry)],
    mut gone: Vec<(&String, &Entry)>,
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
    let mut out = Vec::new();
    let mut created = Vec::new();
    for (i, entry) in changed {
        let path = files[*i].path.as_str();
        match index.files.get(path) {
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

    fn scanned(present: &[(&str, Entry)]) -> Vec<ScannedFile> {
        present
            .iter()
            .map(|(p, e)| ScannedFile {
                path: p.to_string(),
                kind: FileKind::of(p),
                sha256: Some(e.sha256),
            })
            .collect()
    }

    fn events(index: &Index, present: &[(&str, Entry)]) -> Vec<(Event, String, Option<String>)> {
        let files = scanned(present);
        let changed: Vec<(usize, Entry)> = present
            .iter()
            .enumerate()
            .filter(|(_, (p, e))| index.files.get(*p) != Some(e))
            .map(|(i, (_, e))| (i, *e))
            .collect();
        changes(
            index,
            &files,
            &changed,
            vanished(index, &files, recorded(index, &files)),
            Timestamp::UNIX_EPOCH,
        )
        .into_iter()
        .map(|r| (r.event, r.path, r.from))
        .collect()
    }

    fn recorded(index: &Index, files: &[ScannedFile]) -> usize {
        files
            .iter()
            .filter(|f| index.files.contains_key(&f.path))
            .count()
    }

    fn index(files: &[(&str, Entry)]) -> Index {
        Index {
            files: files.iter().map(|(p, e)| (p.to_string(), *e)).collect(),
            ..Index::default()
        }
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
        let files = scanned(&[("a.md", entry(b"a", 1))]);
        let gone: Vec<_> = vanished(&old, &files, recorded(&old, &files))
            .into_iter()
            .map(|(p, _)| p.clone())
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
}
