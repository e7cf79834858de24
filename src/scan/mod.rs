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
use std::sync::mpsc::TryRecvError;

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

use changes::{Changed, changes, finish, record, save_if_large, save_partial};

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
    /// The scan was cancelled before it finished; the versions it recorded until then stay.
    #[error("the scan was stopped before it finished (the versions it recorded stay recorded)")]
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
    /// The vault paths (files or folders, present or gone) that may have changed since the
    /// last scan, as the daemon's file watcher reported them: every other file is taken as
    /// the index has it, without a look, as git's fsmonitor does. `None`: look at every file.
    pub changed_paths: Option<std::collections::BTreeSet<String>>,
    /// Where a long-running process keeps the index between its scans (see [`KeptIndex`]).
    pub keep_index: Option<std::sync::Arc<KeptIndex>>,
    /// Read every folder, trusting no listing kept by the last scan (`--every-file`).
    pub reread_folders: bool,
}

/// The index a long-running process (the daemon) keeps between its scans, so that a scan of
/// a few changed paths costs what they cost, not a read of the whole index. Only for a
/// process that holds the archive's lock throughout, so that no other process writes the
/// index. A scan takes it back only while the version log ends where it says: anything
/// appended since, by whatever, means reading the index again. A failed scan drops it.
#[derive(Debug, Default)]
pub struct KeptIndex(std::sync::Mutex<Option<store::Index>>);

impl KeptIndex {
    fn take(&self, store: &Store) -> Option<store::Index> {
        let index = self.0.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        let log = store.versions();
        let log_len = std::fs::metadata(log.path()).map_or(0, |m| m.len());
        (log_len == index.log_end).then_some(index)
    }

    fn keep(&self, index: store::Index) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(index);
    }
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            max_note_bytes: 10 * 1024 * 1024,
            progress: false,
            today: crate::localtime::today(),
            accept_deletions: false,
            record: true,
            cancel: None,
            changed_paths: None,
            keep_index: None,
            reread_folders: false,
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

/// One finished pass over the vault: what it recorded, and the means to read what the notes
/// say ([`Scan::view`]) and to report ([`Scan::report`]).
pub struct Scan {
    /// The files listed (see [`Scan::files`]).
    files: Files,
    /// Whether this pass listed the whole vault (not a scan of changed paths).
    whole: bool,
    /// How many version records this pass wrote.
    pub recorded: usize,
    /// Those records by event (`created`, `modified`, `renamed`, `deleted`).
    pub events: std::collections::BTreeMap<String, usize>,
    /// The records themselves: where they lie in the version log (a first scan of a large
    /// vault writes one per file, read back only when asked for), or held by a preview.
    written: Written,
    /// Bytes of new objects stored.
    pub new_bytes: u64,
    /// Files and folders that could not be read.
    pub problems: Vec<Problem>,
    /// Files listed through a symbolic link (a change of the target is reported by the kernel
    /// under the target's path only).
    pub linked: Vec<String>,
    /// What the notes read during this pass say: lines appended to the note cache (or, for
    /// a preview, to a temp file), never all held in memory.
    fresh: Option<cache::Lines>,
    key: summary::Key,
    store: Store,
    options: ScanOptions,
}

/// The files a scan listed, sorted by path.
enum Files {
    /// Held (a preview, a scan of changed paths).
    Held(Vec<ScannedFile>),
    /// What the index holds once a recording scan of the whole vault is done, and the files
    /// it does not hold (new, and could not be read).
    Indexed {
        index: Box<store::Index>,
        unindexed: Vec<ScannedFile>,
    },
}

/// Where a scan's version records are.
enum Written {
    /// Appended to the version log between these offsets.
    Log { from: u64, to: u64 },
    /// Not written (a preview).
    Held(Vec<VersionRecord>),
}

impl Scan {
    /// Whether this pass listed every file (false for a scan of the paths a watcher reported,
    /// which knows only those: what the whole vault says needs a whole scan).
    pub fn is_whole(&self) -> bool {
        self.whole
    }

    /// Every content file this pass listed, sorted by path; for a scan of changed paths, only
    /// those it looked at (see [`Scan::is_whole`]). A recording pass over the whole vault
    /// does not hold them (issue 14): they are what the index holds now, with the new files
    /// that could not be read, and are read from it when asked for.
    pub fn files(&self) -> Result<std::borrow::Cow<'_, [ScannedFile]>, store::Error> {
        let (index, unindexed) = match &self.files {
            Files::Held(files) => return Ok(files.into()),
            Files::Indexed { index, unindexed } => (index, unindexed),
        };
        let files = with_index(&self.store, index, unindexed.iter().cloned(), |_| true)?;
        Ok(files.into())
    }

    /// The version records this pass wrote, in order.
    pub fn records(&self) -> Result<Vec<VersionRecord>, store::Error> {
        match &self.written {
            Written::Held(records) => Ok(records.clone()),
            Written::Log { from, to } => {
                if from == to {
                    return Ok(Vec::new());
                }
                let journal = self.store.versions();
                let read = journal
                    .read_from::<VersionRecord>(*from, 0)
                    .map_err(store::Error::io("read", journal.path()))?;
                Ok(read
                    .records
                    .into_iter()
                    .map(|(_, r)| r)
                    .take(self.recorded)
                    .collect())
            }
        }
    }
}

/// What a scan learned about a file that the index does not say.
enum News {
    /// Its new entry (content or stat data changed), and what the index held.
    Entry {
        entry: Entry,
        previous: Option<Entry>,
        new_bytes: u64,
    },
    /// It could not be read; its recorded state is kept.
    Problem(Problem),
}

/// Scans `vault_dir` into `store` (whose lock the caller holds): records every new version.
///
/// Files come from the walk a step at a time, up to a round (four batches), and meet the
/// index as they come, so that memory follows the round, not the vault (issue 14), and an
/// unchanged rescan examines its files while the walk goes on. Two things are
/// known only once every file is listed: which recorded files are gone (so which new files
/// were renamed from them), and whether the scan is a mass deletion. Until then a scan holds
/// back the records of new files, and every record while fewer than half of the known files
/// have been seen present.
pub fn scan(vault_dir: &Path, store: &Store, options: &ScanOptions) -> Result<Scan, Error> {
    check_vault(vault_dir)?;
    let started = Timestamp::now();
    let clock = std::time::Instant::now();
    let exclude = [store.root().to_path_buf()];
    let batch = batch_size();
    let round = batch.saturating_mul(4);
    let kept = options.keep_index.as_deref().and_then(|k| k.take(store));
    // Files listed and not yet examined, in path order.
    let mut listed: Vec<vault::VaultFile> = Vec::new();
    let (mut source, mut index, looked_gone) = match (&options.changed_paths, kept) {
        (Some(changed), kept) => {
            let index = kept.map_or_else(|| store.load_index(), Ok)?;
            match look_again(vault_dir, &exclude, &index, changed) {
                Some(looked) => (Source::looked(looked.listing), index, Some(looked.gone)),
                None => (
                    Source::walk(vault_dir, &exclude, store, options),
                    index,
                    None,
                ),
            }
        }
        (None, Some(index)) => (
            Source::walk(vault_dir, &exclude, store, options),
            index,
            None,
        ),
        (None, None) => {
            // The index is read on a thread of its own while the walk starts here: the walk
            // hands the pool the folders ahead of it as it reaches them, so a walk that
            // waited for the index would leave the pool the first few folders only.
            let (sender, loaded) = std::sync::mpsc::sync_channel(1);
            let loading = {
                let store = store.clone();
                std::thread::Builder::new()
                    .name("vaultkeep-index".into())
                    .spawn(move || {
                        // Nobody left to take it when the scan failed meanwhile.
                        let _ = sender.send(store.load_index());
                    })
            };
            let mut source = Source::walk(vault_dir, &exclude, store, options);
            let index = match loading {
                Ok(loading) => {
                    // Until the index comes, the walk goes on (up to a round): a core would
                    // otherwise wait idle on a machine busy reading the vault.
                    let mut most = LISTING_STEP;
                    let came = loop {
                        if source.fill(&mut listed, most) || most >= round {
                            break None;
                        }
                        match loaded.try_recv() {
                            Ok(index) => break Some(index),
                            Err(TryRecvError::Empty) => most += WAITING_STEP,
                            Err(TryRecvError::Disconnected) => break None,
                        }
                    };
                    // Taken as soon as it is sent, without waiting for the thread to end.
                    came.or_else(|| loaded.recv().ok())
                        .unwrap_or_else(|| match loading.join() {
                            Err(panic) => std::panic::resume_unwind(panic),
                            Ok(_) => store.load_index(),
                        })
                }
                // No thread to spare: read here.
                Err(_) => store.load_index(),
            };
            (source, index?, None)
        }
    };
    let whole = looked_gone.is_none();
    tracing::debug!(whole, elapsed = ?clock.elapsed(), "started the listing and read the index");
    crate::failpoint::pause_at("scan:listed");

    let mut holding = Holding::new(vault_dir, &index, looked_gone, options.accept_deletions);
    let mut looks: Vec<Look> = Vec::new();
    let bar = progress_bar(options.progress, holding.known_before);
    let notes = note_appender(store, options);
    // Started with the first batch that has files to read: an unchanged rescan writes none.
    let mut flusher = None;
    let mut gathered = Gathered::new(options.record && whole);
    let (mut recorded, mut events, mut recorded_any) =
        (0, std::collections::BTreeMap::new(), false);
    let log_from = index.log_end;
    loop {
        let most = (listed.len() + LISTING_STEP).min(round);
        let dry = source.fill(&mut listed, most);
        let new = &listed[looks.len()..];
        looks.extend(holding.look(&index, new, whole, dry.then(|| source.unseen())));
        let end = ready(&looks, batch, dry);
        if end == 0 && !dry {
            continue;
        }
        let last = dry && end == listed.len();
        holding.known += looks[..end].iter().filter(|l| **l != Look::New).count();
        if options.record
            && flusher.is_none()
            && looks[..end]
                .iter()
                .any(|l| !matches!(l, Look::Unchanged(_)))
        {
            flusher = Some(EarlyFlush::start(store));
        }
        let examined = examine_and_store(
            vault_dir,
            store,
            options,
            &index,
            (&mut listed[..end], &looks[..end]),
            notes.as_ref(),
            &bar,
        );
        tracing::debug!(files = end, last, "examined a batch");
        listed.drain(..end);
        looks.drain(..end);
        let changed = match examined {
            Ok(examined) => gathered.add(examined),
            Err(e) => {
                // What earlier batches recorded stays: the index is saved with it (as between
                // batches: files not yet looked at were not vouched for by this scan).
                if recorded_any {
                    save_partial(store, &mut index, started)?;
                    store.update_totals()?;
                }
                return Err(e);
            }
        };
        for event in holding.add(changed, last, started) {
            recorded += 1;
            *events.entry(event.name().to_string()).or_default() += 1;
        }
        if last && !options.accept_deletions {
            check_deletions(vault_dir, holding.known_before, holding.deleted())?;
        }
        if options.record
            && let Some(Held { records, changed }) = holding.release(last)
        {
            record(store, &mut index, &records, &changed)?;
            if !last {
                // Two batches' worth of new entries: 16,384 by default.
                save_if_large(store, &mut index, batch.saturating_mul(2), started);
            }
            recorded_any |= !records.is_empty() || !changed.is_empty();
            tracing::debug!(elapsed = ?clock.elapsed(), files = gathered.hash.count(), records = records.len(), "recorded a batch");
        }
        if last {
            break;
        }
    }
    drop((listed, looks));
    drop(flusher);
    bar.finish_and_clear();
    source.keep_listings();
    if options.record {
        finish(store, &mut index, recorded_any, recorded > 0, started)?;
    }
    let fresh = notes.map(|n| {
        let (lines, error) = n.finish();
        if let Some(e) = error {
            tracing::warn!("cannot write the note cache: {e}");
        }
        lines
    });
    tracing::debug!(elapsed = ?clock.elapsed(), files = gathered.hash.count(), records = recorded, "examined and recorded every file");
    let Gathered {
        held: held_files,
        unindexed,
        hash,
        mut problems,
        new_bytes,
    } = gathered;
    problems.extend(source.problems());
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    let linked = source.linked();
    // A preview of the paths the running daemon reported: the rest of the vault is as the
    // index says (the daemon vouches for it), so the report covers the whole vault.
    let (held_files, hash, whole) = match (&options.changed_paths, held_files) {
        (Some(changed), Some(looked)) if !options.record && !whole => {
            let (files, hash) = vouched_files(store, &index, changed, looked, source.unseen())?;
            (Some(files), hash, true)
        }
        (_, held_files) => (held_files, hash, whole),
    };
    let key = summary::Key::new(index.log_end, hash, options.today, options.max_note_bytes);
    let log_end = index.log_end;
    let files = match held_files {
        Some(files) => Files::Held(files),
        // The index as this scan left it (a daemon keeps its own for the next scan).
        None if options.keep_index.is_some() => Files::Indexed {
            index: Box::new(index.clone()),
            unindexed,
        },
        None => Files::Indexed {
            index: Box::new(std::mem::take(&mut index)),
            unindexed,
        },
    };
    if let Some(kept) = &options.keep_index {
        kept.keep(index);
    }
    Ok(Scan {
        key,
        files,
        whole,
        recorded,
        events,
        written: if options.record {
            Written::Log {
                from: log_from,
                to: log_end,
            }
        } else {
            Written::Held(holding.held.records)
        },
        new_bytes,
        problems,
        linked,
        fresh,
        store: store.clone(),
        options: options.clone(),
    })
}

/// Where a scan's files come from, in path order.
enum Source {
    /// The walk of the whole vault.
    Walk(vault::Walker),
    /// The looks at changed paths, and what else they found.
    Looked(std::vec::IntoIter<vault::VaultFile>, vault::Listing),
}

impl Source {
    /// The walk of the whole vault, listing unchanged folders as the last recording scan kept
    /// them, and keeping this one's when it records.
    fn walk(vault_dir: &Path, exclude: &[PathBuf], store: &Store, options: &ScanOptions) -> Source {
        Source::Walk(vault::Walker::remembering(
            vault_dir,
            exclude,
            &store.folder_listings(),
            options.reread_folders,
            options.record,
        ))
    }

    /// Keeps the walk's folder listings for the next scan, once it is over.
    fn keep_listings(&mut self) {
        if let Source::Walk(walker) = self {
            walker.keep_listings();
        }
    }

    fn looked(mut listing: vault::Listing) -> Source {
        Source::Looked(std::mem::take(&mut listing.files).into_iter(), listing)
    }

    /// Lists files into `listed` until it holds `most`; whether the source ran dry.
    fn fill(&mut self, listed: &mut Vec<vault::VaultFile>, most: usize) -> bool {
        let wanted = most.saturating_sub(listed.len());
        let before = listed.len();
        match self {
            Source::Walk(walker) => listed.extend(walker.by_ref().take(wanted)),
            Source::Looked(files, _) => listed.extend(files.by_ref().take(wanted)),
        }
        listed.len() - before < wanted
    }

    /// The paths the listing could not see into so far.
    fn unseen(&self) -> &[String] {
        match self {
            Source::Walk(walker) => walker.unseen(),
            Source::Looked(_, listing) => &listing.unseen,
        }
    }

    /// What could not be listed.
    fn problems(&mut self) -> Vec<Problem> {
        match self {
            Source::Walk(walker) => walker.problems(),
            Source::Looked(_, listing) => std::mem::take(&mut listing.problems),
        }
    }

    /// The files listed through a symbolic link.
    fn linked(&mut self) -> Vec<String> {
        match self {
            Source::Walk(walker) => walker.linked(),
            Source::Looked(_, listing) => std::mem::take(&mut listing.linked),
        }
    }
}

/// What a scan gathers from its batches for the report.
struct Gathered {
    /// Every file, unless the scan is a recording scan of the whole vault (see [`Files`]).
    held: Option<Vec<ScannedFile>>,
    /// New files that could not be read, which the index then lacks.
    unindexed: Vec<ScannedFile>,
    /// The summary cache's key, added up file by file.
    hash: summary::FilesHash,
    problems: Vec<Problem>,
    /// Bytes of new objects stored.
    new_bytes: u64,
}

impl Gathered {
    fn new(indexed: bool) -> Gathered {
        Gathered {
            held: (!indexed).then(Vec::new),
            unindexed: Vec::new(),
            hash: summary::FilesHash::default(),
            problems: Vec::new(),
            new_bytes: 0,
        }
    }

    /// Takes what a batch's files left; the files that changed.
    fn add(&mut self, examined: Examined) -> Vec<Changed> {
        let Examined { files, news } = examined;
        let mut changed = Vec::new();
        for (i, news) in news {
            match news {
                News::Entry {
                    entry,
                    previous,
                    new_bytes,
                } => {
                    self.new_bytes += new_bytes;
                    changed.push(Changed {
                        path: files[i].path.clone(),
                        previous,
                        entry,
                    });
                }
                News::Problem(p) => self.problems.push(p),
            }
        }
        for file in files {
            self.hash.add(&file);
            match &mut self.held {
                Some(held) => held.push(file),
                None if file.sha256.is_none() => self.unindexed.push(file),
                None => {}
            }
        }
        changed
    }
}

/// Records and changed entries a scan holds back while a mass deletion is not ruled out.
#[derive(Default)]
struct Held {
    records: Vec<VersionRecord>,
    changed: Vec<Changed>,
}

/// What a scan needs the whole walk for, and what it holds back until then (see [`scan`]):
/// which recorded files vanished, the new files that may have been renamed from one of them,
/// and every record while a mass deletion is not ruled out.
struct Holding {
    /// Files the index held when the scan began.
    known_before: usize,
    /// Of those, the files seen present so far.
    known: usize,
    /// The recorded files gone, not yet claimed by a rename: known at once after a look (and
    /// for a first scan: none), else once the walk has met the whole index.
    gone: Option<Vec<(String, Entry)>>,
    /// The recorded files found gone so far, and the last listed file met with the index.
    found_gone: Vec<(String, Entry)>,
    met_up_to: Option<String>,
    /// New files, until it is known what is gone.
    waiting: Vec<Changed>,
    held: Held,
    /// Whether a mass deletion is ruled out: by the files gone (when known), or by the known
    /// files seen present (even if all others are gone, fewer than half are).
    safe: bool,
}

impl Holding {
    fn new(
        vault_dir: &Path,
        index: &store::Index,
        looked_gone: Option<Vec<(String, Entry)>>,
        accept_deletions: bool,
    ) -> Holding {
        let known_before = index.len();
        let gone = looked_gone.or_else(|| index.is_empty().then(Vec::new));
        let safe = accept_deletions
            || gone
                .as_ref()
                .is_some_and(|g| check_deletions(vault_dir, known_before, g.len()).is_ok());
        Holding {
            known_before,
            known: 0,
            gone,
            found_gone: Vec::new(),
            met_up_to: None,
            waiting: Vec::new(),
            held: Held::default(),
            safe,
        }
    }

    /// What the index says of `new`, the files listed since the last call: met with the index
    /// in one pass when the walk lists the `whole` vault (the recorded files between them that
    /// it did not list are gone, but for those where the walk could not see; with `dry`, the
    /// walk is over and those are known), else looked up.
    fn look(
        &mut self,
        index: &store::Index,
        new: &[vault::VaultFile],
        whole: bool,
        dry: Option<&[String]>,
    ) -> Vec<Look> {
        if !whole {
            return look_up(index, new);
        }
        if new.is_empty() && !(dry.is_some() && self.gone.is_none()) {
            return Vec::new();
        }
        let met = meet(index, self.met_up_to.as_deref(), new, dry.is_some());
        self.found_gone.extend(met.gone);
        if let Some(f) = new.last() {
            self.met_up_to = Some(f.path.clone());
        }
        if let Some(unseen) = dry
            && self.gone.is_none()
        {
            let mut gone = std::mem::take(&mut self.found_gone);
            gone.retain(|(path, _)| !vault::is_unseen(unseen, path));
            self.gone = Some(gone);
        }
        met.looks
    }

    /// Adds a batch's changed files and turns what it can into records (new files wait until
    /// it is known what is gone; after the `last` batch, the unclaimed gone are deleted); the
    /// records' events.
    fn add(&mut self, changed: Vec<Changed>, last: bool, time: Timestamp) -> Vec<Event> {
        let (mut ready, new): (Vec<Changed>, Vec<Changed>) = changed
            .into_iter()
            .partition(|c| c.previous.is_some() || self.gone.is_some());
        self.waiting.extend(new);
        let records = match &mut self.gone {
            Some(gone) => {
                ready.append(&mut self.waiting);
                changes(&ready, gone, last, time)
            }
            None => changes(&ready, &mut Vec::new(), last, time),
        };
        let events = records.iter().map(|r| r.event).collect();
        self.held.records.extend(records);
        self.held.changed.extend(ready);
        events
    }

    /// Files the records held would record as deleted.
    fn deleted(&self) -> usize {
        self.held
            .records
            .iter()
            .filter(|r| r.event == Event::Deleted)
            .count()
    }

    /// What may be recorded now: everything held once a mass deletion is ruled out, or after
    /// the `last` batch (whose deletions the caller checked).
    fn release(&mut self, last: bool) -> Option<Held> {
        self.safe |= self.known * 2 >= self.known_before;
        (self.safe || last).then(|| std::mem::take(&mut self.held))
    }
}

/// What the index says of each of `files` (a few files spread over the vault): each parallel
/// task reads the index alongside its files (both in path order).
fn look_up(index: &store::Index, files: &[vault::VaultFile]) -> Vec<Look> {
    files
        .par_iter()
        .with_min_len(LOOKUP_CHUNK)
        .map_init(
            || index.alongside(),
            |recorded, f| Look::of(recorded.get(&f.path), f, index.scan_started_ns),
        )
        .collect()
}

/// What meeting a part of the walk with the index found.
struct Met {
    /// What the index says of each file.
    looks: Vec<Look>,
    /// The recorded files between the part's first and last (and after `after`) that the
    /// walk did not list, in path order.
    gone: Vec<(String, Entry)>,
}

/// Meets the next part of the walk, `files` (which follow `after`, the last file met), with
/// the index: one pass over each, on this thread. A file costs a few hundred nanoseconds
/// here; handing the part to the pool cost more (a wake-up of its threads and of this one,
/// 0.1-0.2 ms each on a virtual machine), and took the pool off the folders it reads ahead
/// meanwhile. With `to_end` (the walk is over), what the index holds past the last file is
/// gone too.
fn meet(
    index: &store::Index,
    after: Option<&str>,
    files: &[vault::VaultFile],
    to_end: bool,
) -> Met {
    let racy_after = index.scan_started_ns;
    let mut met = Met {
        looks: Vec::with_capacity(files.len()),
        gone: Vec::new(),
    };
    let mut stats = files.iter();
    index.meet(
        after,
        files.iter().map(|f| f.path.as_str()),
        to_end,
        |entry| {
            let file = stats.next().expect("one entry per file");
            met.looks.push(Look::of(entry, file, racy_after));
        },
        |path, entry| met.gone.push((path.to_string(), *entry)),
    );
    met
}

/// Fewest files per parallel task that looks files up in the index: enough that finding a
/// task's first entry costs little, few enough that the files a first scan's task reads
/// spread over the threads.
const LOOKUP_CHUNK: usize = 256;

/// Files to read per batch (up to four times as many files in all, those whose stat data match
/// the index riding along): `VAULTKEEP_SCAN_BATCH`, else 8192 (large enough that the sync per
/// batch costs little, small enough that a batch's records and entries do not count against a
/// large vault).
fn batch_size() -> usize {
    std::env::var("VAULTKEEP_SCAN_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(8192)
}

/// What a batch's files left: each file's path and content address, and what is new about
/// some (by position in the batch), in order.
struct Examined {
    files: Vec<ScannedFile>,
    news: Vec<(usize, News)>,
}

/// Examines a batch, `files` with what the index says of each, storing what a recording
/// scan reads in a pack of its own (when enough files are to be read), which is complete and
/// indexed before the batch's objects are synced.
fn examine_and_store(
    vault_dir: &Path,
    store: &Store,
    options: &ScanOptions,
    index: &store::Index,
    (files, looks): (&mut [vault::VaultFile], &[Look]),
    notes: Option<&cache::Appender>,
    bar: &ProgressBar,
) -> Result<Examined, Error> {
    let sink = options
        .record
        .then(|| sink_for(store, looks))
        .transpose()
        .map_err(|e| Error::Store(store::Error::io("start a pack in", store.root())(e)))?;
    let examined = examine_batch(
        vault_dir,
        options,
        index,
        (files, looks),
        sink.as_ref(),
        notes,
        bar,
    )?;
    if let Some(sink) = sink {
        sink.finish()
            .map_err(|e| Error::Store(store::Error::io("finish a pack in", store.root())(e)))?;
    }
    Ok(examined)
}

/// Examines a batch of listed files in parallel (taking their paths): each leaves only what
/// the rest of the scan needs (its path and content address), in order. What is new about a
/// file comes back with its position in the batch, in order. The first archive error stops
/// the others. What a note says goes to the note cache at once.
fn examine_batch(
    vault_dir: &Path,
    options: &ScanOptions,
    index: &store::Index,
    (batch, looks): (&mut [vault::VaultFile], &[Look]),
    sink: Option<&store::Sink<'_>>,
    notes: Option<&cache::Appender>,
    bar: &ProgressBar,
) -> Result<Examined, Error> {
    let racy_after = index.scan_started_ns;
    let cancelled = || {
        options
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    };
    let failure = std::sync::Mutex::new(None);
    let failed = std::sync::atomic::AtomicBool::new(false);
    // Few files bring news: collected aside, so the files go straight into `files`.
    let news = std::sync::Mutex::new(Vec::new());
    // In path order, each task reads the index alongside the files it must look at (an
    // unchanged file's content address came with its look).
    let examine_one =
        |recorded: &mut store::Alongside<'_>,
         (i, (file, look)): (usize, (&mut vault::VaultFile, &Look))| {
            let previous = match look {
                Look::Unchanged(sha256) => {
                    if options.progress {
                        bar.inc(1);
                    }
                    return ScannedFile {
                        sha256: Some(*sha256),
                        path: std::mem::take(&mut file.path),
                        kind: file.kind,
                    };
                }
                Look::New | Look::Changed => recorded.get(&file.path),
            };
            let mut done = ScannedFile {
                sha256: previous.map(|e| e.sha256),
                path: String::new(),
                kind: file.kind,
            };
            if failed.load(std::sync::atomic::Ordering::Relaxed) || cancelled() {
                failed.store(true, std::sync::atomic::Ordering::Relaxed);
                return done;
            }
            let outcome = examine(
                vault_dir,
                file,
                previous.as_ref(),
                racy_after,
                sink,
                options.max_note_bytes,
            );
            let new = match outcome {
                Ok(Outcome::Seen {
                    entry,
                    facts,
                    new_bytes,
                }) => {
                    if let (Some(facts), Some(notes)) = (facts, notes) {
                        notes.add(&entry.sha256, &facts);
                    }
                    done.sha256 = Some(entry.sha256);
                    (previous != Some(entry)).then_some(News::Entry {
                        entry,
                        previous,
                        new_bytes,
                    })
                }
                Ok(Outcome::Failed(p)) => Some(News::Problem(p)),
                Err(e) => {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    failure
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(e);
                    None
                }
            };
            if let Some(new) = new {
                news.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((i, new));
            }
            done.path = std::mem::take(&mut file.path);
            if options.progress {
                bar.inc(1);
            }
            done
        };
    // A batch of files whose stat data match the index needs no read: it is gone through
    // here, not handed to the pool (see `meet`).
    let files: Vec<ScannedFile> = if looks.iter().all(|l| matches!(l, Look::Unchanged(_))) {
        let mut recorded = index.alongside();
        batch
            .iter_mut()
            .zip(looks)
            .enumerate()
            .map(|file| examine_one(&mut recorded, file))
            .collect()
    } else {
        batch
            .par_iter_mut()
            .zip(looks)
            .enumerate()
            .with_min_len(LOOKUP_CHUNK)
            .map_init(|| index.alongside(), &examine_one)
            .collect()
    };
    if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(Error::Store(e));
    }
    if failed.into_inner() {
        return Err(Error::Cancelled);
    }
    let mut news = news.into_inner().unwrap_or_else(|e| e.into_inner());
    news.sort_unstable_by_key(|(i, _)| *i);
    Ok(Examined { files, news })
}

/// What a scan of changed paths looks at.
struct Looked {
    /// The changed paths as they are now (a folder with what it holds), sorted by path.
    listing: vault::Listing,
    /// The recorded files at or under a changed path that are gone, sorted by path.
    gone: Vec<(String, Entry)>,
}

/// Looks again at the `changed` paths only: every other file is taken to be as the index
/// says, unlisted. `None` when the index knows no file (a first scan walks the vault).
fn look_again(
    vault_dir: &Path,
    exclude: &[std::path::PathBuf],
    index: &store::Index,
    changed: &std::collections::BTreeSet<String>,
) -> Option<Looked> {
    if index.is_empty() {
        return None;
    }
    let roots = Covers::new(changed).roots;
    let mut listing = vault::look_at(vault_dir, exclude, &roots);
    listing
        .files
        .par_sort_unstable_by(|a, b| a.path.cmp(&b.path));
    // The recorded files the looks cover: each changed path, and what it held as a folder
    // (in path order, what follows `path/` and starts with it).
    let mut recorded: Vec<(String, Entry)> = Vec::new();
    for root in &roots {
        if let Some(entry) = index.get(root) {
            recorded.push((root.to_string(), entry));
        }
        let folder = format!("{root}/");
        let read = index.visit_from(&folder, |path, entry| {
            if !path.starts_with(&folder) {
                return std::ops::ControlFlow::Break(());
            }
            recorded.push((path.to_string(), *entry));
            std::ops::ControlFlow::Continue(())
        });
        // Fewer recorded files: fewer taken for gone, none taken wrongly.
        if let Err(e) = read {
            store::warn_unread(&e);
        }
    }
    let listed: rustc_hash::FxHashSet<&str> =
        listing.files.iter().map(|f| f.path.as_str()).collect();
    let mut gone: Vec<(String, Entry)> = recorded
        .into_iter()
        .filter(|(path, _)| {
            !listed.contains(path.as_str()) && !vault::is_unseen(&listing.unseen, path)
        })
        .collect();
    gone.sort_by(|a, b| a.0.cmp(&b.0));
    Some(Looked { listing, gone })
}

/// The changed paths a look starts from, and what they cover: a path is covered when it or a
/// folder above it changed. A path under another changed path is looked at with it (sorted, a
/// folder comes before what it holds).
pub(crate) struct Covers<'a> {
    set: rustc_hash::FxHashSet<&'a str>,
    roots: Vec<&'a str>,
}

impl<'a> Covers<'a> {
    pub(crate) fn new(changed: &'a std::collections::BTreeSet<String>) -> Covers<'a> {
        let mut covers = Covers {
            set: rustc_hash::FxHashSet::default(),
            roots: Vec::new(),
        };
        for path in changed {
            if !covers.above(path) {
                covers.set.insert(path);
                covers.roots.push(path);
            }
        }
        covers
    }

    /// Whether a folder above `path` changed.
    fn above(&self, path: &str) -> bool {
        path.match_indices('/')
            .any(|(i, _)| self.set.contains(&path[..i]))
    }

    /// Whether `path` or a folder above it changed.
    pub(crate) fn covers(&self, path: &str) -> bool {
        self.set.contains(path) || self.above(path)
    }
}

/// Every file of a preview beside the daemon, in path order: the files it looked at (`looked`,
/// under the `changed` paths), and the others as the index has them. A recorded file under a
/// changed path that the look could not see (`unseen`) counts as recorded, as in a whole scan.
fn vouched_files(
    store: &Store,
    index: &store::Index,
    changed: &std::collections::BTreeSet<String>,
    looked: Vec<ScannedFile>,
    unseen: &[String],
) -> Result<(Vec<ScannedFile>, summary::FilesHash), Error> {
    let covers = Covers::new(changed);
    let files = with_index(store, index, looked.into_iter(), |path| {
        !covers.covers(path) || vault::is_unseen(unseen, path)
    })?;
    let mut hash = summary::FilesHash::default();
    files.iter().for_each(|f| hash.add(f));
    Ok((files, hash))
}

/// The index's files that `keep` keeps, merged in path order with `others` (sorted, and not
/// among those kept).
fn with_index(
    store: &Store,
    index: &store::Index,
    others: impl Iterator<Item = ScannedFile>,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<ScannedFile>, store::Error> {
    let mut files = Vec::with_capacity(index.len() + others.size_hint().0);
    let mut others = others.peekable();
    index
        .visit_from("", |path, entry| {
            while let Some(file) = others.next_if(|f| f.path.as_str() < path) {
                files.push(file);
            }
            if keep(path) {
                files.push(ScannedFile {
                    path: path.to_string(),
                    kind: FileKind::of(path),
                    sha256: Some(entry.sha256),
                });
            }
            std::ops::ControlFlow::Continue(())
        })
        .map_err(store::Error::io("read the scan index in", store.root()))?;
    files.extend(others);
    Ok(files)
}

/// Files listed at a time before they meet the index: few enough that the looks and the
/// examining of unchanged files go on while the pool reads the next folders, rather than
/// after the walk.
const LISTING_STEP: usize = 4096;

/// Files listed at a time while the index is still being read: a few hundred microseconds of
/// walking between looks at whether it has come.
const WAITING_STEP: usize = 512;

/// How many of the files looked at to examine now: the first batch once it is whole or the
/// listing is over (see [`batch_end`]); before that, the unchanged files that lead, which
/// need no read and no sync (none: list more first).
fn ready(looks: &[Look], batch: usize, dry: bool) -> usize {
    let end = batch_end(looks, batch);
    if dry || end < looks.len() || end == batch.saturating_mul(4) {
        return end;
    }
    looks
        .iter()
        .take_while(|l| matches!(l, Look::Unchanged(_)))
        .count()
}

/// Where the batch that begins the listed files ends: after `batch` files to read, so that the few
/// changes of a daemon's scan, spread over the vault, are one batch and one sync; and after
/// four times as many files in all, so that a rescan's unchanged files (which cost no sync)
/// are not all examined at once.
fn batch_end(looks: &[Look], batch: usize) -> usize {
    let most = batch.saturating_mul(4).min(looks.len());
    let mut to_read = 0;
    for (i, look) in looks.iter().enumerate().take(most) {
        if !matches!(look, Look::Unchanged(_)) {
            if to_read == batch {
                return i;
            }
            to_read += 1;
        }
    }
    most
}

/// What the index says of a listed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    /// Not in the index.
    New,
    /// Its stat data differ from the index's: read it.
    Changed,
    /// Its stat data match: not read again, nor looked up again (its content address).
    Unchanged(crate::digest::Digest),
}

impl Look {
    fn of(recorded: Option<Entry>, file: &vault::VaultFile, racy_after: i128) -> Look {
        match recorded {
            None => Look::New,
            Some(prev) if examine::unchanged(&prev, &file.stat, racy_after) => {
                Look::Unchanged(prev.sha256)
            }
            Some(_) => Look::Changed,
        }
    }
}

/// Batches with at least this many files to read store their new small objects in one pack.
const PACK_FROM: usize = 256;

/// Loose objects for a batch with few files to read (a daemon's change, a few edits), one
/// new pack for one with many (a first scan, a vault copied in): creating a file per object
/// would then cost more than the rest of the scan.
fn sink_for<'a>(store: &'a Store, looks: &[Look]) -> std::io::Result<store::Sink<'a>> {
    let to_read = looks
        .iter()
        .filter(|l| !matches!(l, Look::Unchanged(_)))
        .take(PACK_FROM)
        .count();
    if to_read < PACK_FROM || std::env::var_os("VAULTKEEP_NO_PACKS").is_some() {
        return Ok(store::Sink::Loose(store.objects()));
    }
    store::PackWriter::create(store.objects()).map(|w| store::Sink::Pack(Box::new(w)))
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
        cache::Appender::archive(&cache::path(store), options.max_note_bytes)
    } else {
        cache::Appender::temporary()
    };
    appender
        .inspect_err(|e| tracing::warn!("cannot write the note cache: {e}"))
        .ok()
}

/// A bar over the files the archive knows (what a rescan will likely list), or a count of
/// files for a first scan; none for a vault of a few hundred files.
fn progress_bar(enabled: bool, known: usize) -> ProgressBar {
    if !enabled || (known > 0 && known < 500) {
        return ProgressBar::hidden();
    }
    let (len, template) = if known == 0 {
        (None, "{spinner} scanning: {pos} files")
    } else {
        (
            Some(known as u64),
            "{spinner} scanning {pos}/{len} files [{bar:30}] {eta}",
        )
    };
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::fs;

    use super::*;

    fn events(scan: &Scan) -> Vec<String> {
        let mut out: Vec<String> = scan
            .records()
            .unwrap()
            .iter()
            .map(|r| match &r.from {
                Some(from) => format!("{} {from} -> {}", r.event.name(), r.path),
                None => format!("{} {}", r.event.name(), r.path),
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_batch_holds_a_number_of_files_to_read_and_any_unchanged_between() {
        use Look::{Changed as C, New as N};
        let u = Look::Unchanged(crate::digest::Digest::of(b""));
        let looks = [u, N, u, u, C, N, u];
        assert_eq!(batch_end(&looks, 2), 5);
        assert_eq!(batch_end(&looks[5..], 2), 2);
        assert_eq!(batch_end(&looks, usize::MAX), 7);
        // At most four times the batch in all, unchanged files included.
        assert_eq!(batch_end(&[u; 10], 2), 8);
        assert_eq!(batch_end(&[u; 2], 2), 2);
    }

    #[test]
    fn while_the_walk_goes_on_only_whole_batches_or_the_unchanged_files_that_lead_are_examined() {
        use Look::{Changed as C, New as N};
        let u = Look::Unchanged(crate::digest::Digest::of(b""));
        // A whole batch (two files to read) is examined as batch_end says.
        assert_eq!(ready(&[u, N, u, C, N], 2, false), 4);
        // Four batches' worth of unchanged files in all.
        assert_eq!(ready(&[u; 9], 2, false), 8);
        // Not whole yet: the unchanged files before the first to read, which need no sync.
        assert_eq!(ready(&[u, u, N, u], 2, false), 2);
        // None of those: list more first.
        assert_eq!(ready(&[C, u], 2, false), 0);
        // The listing is over: whatever is there.
        assert_eq!(ready(&[C, u], 2, true), 2);
        assert_eq!(ready(&[], 2, true), 0);
    }

    #[test]
    fn a_scan_of_changed_paths_looks_at_them_only_and_records_what_a_full_scan_would() {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault");
        let write = |rel: &str, text: &str| {
            let p = vault.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        write("a.md", "a");
        write("dir/b.md", "b");
        write("dir/sub/c.png", "c");
        write("other/d.md", "d");
        write("keep.md", "k");
        let (store, _lock) = Store::open_for_writing(&dir.path().join("archive"), "test").unwrap();
        let options = ScanOptions::default();
        let first = scan(&vault, &store, &options).unwrap();
        assert_eq!(first.recorded, 5);

        write("dir/b.md", "b, edited");
        fs::remove_file(vault.join("dir/sub/c.png")).unwrap();
        write("dir/new.md", "new");
        fs::rename(vault.join("other"), vault.join("moved")).unwrap();
        write(".obsidian/workspace.json", "{}");
        // Changed, but not reported: trusted to be as the index says.
        write("a.md", "a, edited unseen");
        let reported: BTreeSet<String> = [
            "dir/b.md",
            "dir",
            "dir/sub/c.png",
            "other",
            "moved",
            ".obsidian/workspace.json",
        ]
        .map(String::from)
        .into();
        let targeted = ScanOptions {
            changed_paths: Some(reported),
            ..options.clone()
        };
        let done = scan(&vault, &store, &targeted).unwrap();
        assert_eq!(
            events(&done),
            vec![
                "created dir/new.md",
                "deleted dir/sub/c.png",
                "modified dir/b.md",
                "renamed other/d.md -> moved/d.md",
            ]
        );
        // Only what was looked at is listed, in path order as a walk lists it.
        let files = done.files().unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, vec!["dir/b.md", "dir/new.md", "moved/d.md"]);
        assert!(!done.is_whole());
        // A full look finds what nobody reported.
        let full = scan(&vault, &store, &options).unwrap();
        assert_eq!(events(&full), vec!["modified a.md"]);
        // Nothing reported, nothing changed: nothing recorded, every file still listed.
        let quiet = ScanOptions {
            changed_paths: Some(BTreeSet::new()),
            ..options
        };
        let none = scan(&vault, &store, &quiet).unwrap();
        assert_eq!((none.recorded, none.files().unwrap().len()), (0, 0));
    }

    #[test]
    fn a_kept_index_serves_the_next_scan_until_the_version_log_moves_on() {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault");
        fs::create_dir_all(vault.join("dir")).unwrap();
        fs::write(vault.join("a.md"), "a").unwrap();
        fs::write(vault.join("dir/b.md"), "b").unwrap();
        let (store, _lock) = Store::open_for_writing(&dir.path().join("archive"), "test").unwrap();
        let kept = std::sync::Arc::new(KeptIndex::default());
        let options = ScanOptions {
            keep_index: Some(kept.clone()),
            ..ScanOptions::default()
        };
        let changed = |paths: &[&str]| ScanOptions {
            changed_paths: Some(paths.iter().map(|p| p.to_string()).collect()),
            ..options.clone()
        };
        assert_eq!(scan(&vault, &store, &options).unwrap().recorded, 2);
        // The kept index is the one on disk: a scan of a change records it against either.
        fs::write(vault.join("a.md"), "a, edited").unwrap();
        let done = scan(&vault, &store, &changed(&["a.md"])).unwrap();
        assert_eq!(events(&done), vec!["modified a.md"]);
        let kept_now = kept.take(&store).expect("kept after a scan");
        let on_disk = store.load_index().unwrap();
        assert_eq!(kept_now.entries(), on_disk.entries());
        assert_eq!(kept_now.log_end, on_disk.log_end);
        kept.keep(kept_now);
        // Records appended by something else: the kept index is stale and read again.
        fs::remove_file(vault.join("dir/b.md")).unwrap();
        let other = ScanOptions::default();
        assert_eq!(
            events(&scan(&vault, &store, &other).unwrap()),
            vec!["deleted dir/b.md"]
        );
        fs::write(vault.join("dir/b.md"), "b, back").unwrap();
        let done = scan(&vault, &store, &changed(&["dir"])).unwrap();
        assert_eq!(events(&done), vec!["created dir/b.md"]);
        // A folder that replaced a file: what was recorded under the path is searched for.
        fs::remove_file(vault.join("a.md")).unwrap();
        fs::create_dir(vault.join("a.md")).unwrap();
        fs::write(vault.join("a.md/c.md"), "c").unwrap();
        let done = scan(&vault, &store, &changed(&["a.md"])).unwrap();
        assert_eq!(events(&done), vec!["created a.md/c.md", "deleted a.md"]);
        let full = scan(&vault, &store, &options).unwrap();
        assert!(full.is_whole());
        assert_eq!(full.recorded, 0);
    }
}
