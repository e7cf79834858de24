//! One pass over the vault: record every new version of every note and asset, and read what
//! the notes link to. `vaultkeep scan` is this; the daemon runs it on what changed.
//!
//! Order (design.md, "The archive"): hash and store objects (in parallel), make them durable
//! with one sync, append the version records, then save the derived index and cache.

mod cache;
mod changes;
mod examine;
mod summary;
mod view;

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use jiff::Timestamp;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::report::Problem;
use crate::store::{self, Entry, Event, Store, VersionRecord};
use crate::vault::{self, FileKind};

pub use summary::ScanReport;
pub use view::VaultView;

use changes::{changes, record, vanished};

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
    /// What the notes read during this pass say: lines appended to the note cache (or, for
    /// a preview, to a temp file), never all held in memory.
    fresh: Option<cache::Lines>,
    key: summary::Key,
    store: Store,
    options: ScanOptions,
}

/// One listed file after a scan looked at it.
struct Examined {
    /// Its path and content (the recorded content when it could not be read).
    file: ScannedFile,
    /// Whether the index knew it.
    known: bool,
    /// What is new about it, if anything (boxed: most files bring nothing new).
    news: Option<Box<News>>,
}

/// What a scan learned about a file that the index does not say.
enum News {
    /// Its new entry (content or stat data changed).
    Entry { entry: Entry, new_bytes: u64 },
    /// It could not be read; its recorded state is kept.
    Problem(Problem),
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
    let notes = note_appender(store, options);
    let cancelled = || {
        options
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    };
    // The first archive error stops the others; each file leaves only what the rest of the
    // scan needs (most files: their path and content address).
    let failure = std::sync::Mutex::new(None);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let mut examined: Vec<Examined> = Vec::with_capacity(listing.files.len());
    let flusher = options.record.then(|| EarlyFlush::start(store));
    listing
        .files
        .into_par_iter()
        .map(|file| {
            let previous = index.files.get(&file.path).copied();
            let mut done = Examined {
                file: ScannedFile {
                    sha256: previous.map(|e| e.sha256),
                    path: String::new(),
                    kind: file.kind,
                },
                known: previous.is_some(),
                news: None,
            };
            if failed.load(std::sync::atomic::Ordering::Relaxed) || cancelled() {
                failed.store(true, std::sync::atomic::Ordering::Relaxed);
                return done;
            }
            let outcome = examine(
                vault_dir,
                &file,
                previous.as_ref(),
                racy_after,
                options.record.then(|| store.objects()),
                options.max_note_bytes,
            );
            done.news = match outcome {
                Ok(Outcome::Seen {
                    entry,
                    facts,
                    new_bytes,
                }) => {
                    // What a note says goes to the cache at once: no note's facts are held.
                    if let (Some(facts), Some(notes)) = (facts, &notes) {
                        notes.add(&entry.sha256, &facts);
                    }
                    done.file.sha256 = Some(entry.sha256);
                    (previous != Some(entry)).then(|| Box::new(News::Entry { entry, new_bytes }))
                }
                Ok(Outcome::Failed(p)) => Some(Box::new(News::Problem(p))),
                Err(e) => {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    failure
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(e);
                    None
                }
            };
            done.file.path = file.path;
            if options.progress {
                bar.inc(1);
            }
            done
        })
        .collect_into_vec(&mut examined);
    drop(flusher);
    bar.finish_and_clear();
    if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(Error::Store(e));
    }
    if failed.into_inner() {
        return Err(Error::Cancelled);
    }
    tracing::debug!(elapsed = ?clock.elapsed(), "examined every file");

    let mut problems = listing.problems;
    let mut changed: Vec<(usize, Entry)> = Vec::new();
    let mut new_bytes = 0;
    let fresh = notes.map(|n| {
        let (lines, error) = n.finish();
        if let Some(e) = error {
            tracing::warn!("cannot write the note cache: {e}");
        }
        lines
    });
    let mut still_recorded = 0;
    let files: Vec<ScannedFile> = examined
        .into_iter()
        .enumerate()
        .map(|(i, done)| {
            still_recorded += usize::from(done.known);
            match done.news.map(|n| *n) {
                Some(News::Entry {
                    entry,
                    new_bytes: n,
                }) => {
                    new_bytes += n;
                    changed.push((i, entry));
                }
                Some(News::Problem(p)) => problems.push(p),
                None => {}
            }
            done.file
        })
        .collect();
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
        key: summary::Key::new(index.log_end, &files, options.today, options.max_note_bytes),
        files,
        records,
        new_bytes,
        problems,
        fresh,
        store: store.clone(),
        options: options.clone(),
    })
}

/// Writes new objects back to the disk while a scan goes on, so that the sync before the
/// records are appended finds little left to do: the disk works while the CPUs hash. Only
/// an earlier start; the sync that makes a scan durable is still the one in `record`.
struct EarlyFlush {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EarlyFlush {
    /// Bytes of new objects that start a write-back.
    const EVERY: u64 = 64 * 1024 * 1024;

    fn start(store: &Store) -> EarlyFlush {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let objects = store.objects().clone();
        let stop = done.clone();
        let thread = std::thread::Builder::new()
            .name("vaultkeep-flush".into())
            .spawn(move || {
                let mut flushed = objects.bytes_added();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::park_timeout(std::time::Duration::from_millis(100));
                    let added = objects.bytes_added();
                    if added.saturating_sub(flushed) >= Self::EVERY {
                        flushed = added;
                        if let Err(e) = objects.start_writeback() {
                            tracing::debug!(
                                "early write-back failed (the final sync decides): {e}"
                            );
                        }
                    }
                }
            })
            .ok();
        EarlyFlush { done, thread }
    }
}

impl Drop for EarlyFlush {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Where the notes read by a scan go: the archive's note cache, or a temp file for a
/// preview. `None` (logged) when neither can be written: notes are then read again later.
fn note_appender(store: &Store, options: &ScanOptions) -> Option<cache::Appender> {
    let appender = if options.record {
        // The cache of versions before 0.1 (one JSON document) is replaced by the line cache.
        let _ = std::fs::remove_file(store.root().join("cache/notes.json"));
        cache::Appender::archive(&cache::path(store), options.max_note_bytes)
    } else {
        cache::Appender::temporary()
    };
    appender
        .inspect_err(|e| tracing::warn!("cannot write the note cache: {e}"))
        .ok()
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
