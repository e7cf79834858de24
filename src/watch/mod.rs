//! `vaultkeep watch`: the daemon that keeps the archive in step with the vault.
//!
//! One loop receives every source of work as an event (watchexec's shape): file changes from
//! the notify adapter ([`events`]), finished snapshots and jobs, a timer for scheduled work,
//! and SIGINT/SIGTERM. A change triggers a scan (the same engine as `vaultkeep scan`, which
//! costs a stat per unchanged file), run off the loop; what runs when is decided by
//! [`schedule`], from the notes' URLs and the clock; snapshots are taken in the background
//! from a persistent queue with bounded concurrency, so recording versions never waits for the
//! network; [`jobs`] are the link checks and composting. The loop and its reactions stay
//! together in this file because they share the running daemon's state.

pub mod events;
mod jobs;
pub mod schedule;
pub mod state;
pub mod status;
pub mod vouch;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::browser::Launcher;
use crate::config::{LinksConfig, SnapshotConfig, WatchConfig};
use crate::copies::key;
use crate::fetch::Fetcher;
use crate::report::chain;
use crate::scan::{self, Scan, ScanOptions};
use crate::snapshot::{self, NoProgress, Plan, Postpone, Stop, Taken, record};
use crate::store::{Event, Store};
use crate::vault::FileKind;

pub use jobs::Sharing;

use events::{Signal, Watching};
use schedule::{Job, Newest, Schedule, Why};
use state::{DaemonState, Queue, Queued};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The first scan failed.
    #[error(transparent)]
    Scan(#[from] scan::Error),
    /// The archive could not be used.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// The file system cannot be watched.
    #[error("cannot watch {path}")]
    Watch {
        /// The vault.
        path: PathBuf,
        /// notify's error.
        #[source]
        source: notify::Error,
    },
    /// The daemon cannot listen for signals.
    #[error("cannot listen for SIGTERM: {0}")]
    Signals(std::io::Error),
}

/// Everything the daemon works with.
pub struct Daemon {
    /// The vault folder.
    pub vault: PathBuf,
    /// The archive (whose lock the caller holds for the daemon's lifetime).
    pub store: Store,
    /// How to scan.
    pub scan: ScanOptions,
    /// The shared HTTP client.
    pub fetcher: Arc<Fetcher>,
    /// The browser, for pages built by scripts (started only when one is met).
    pub browser: Option<Arc<Launcher>>,
    /// The remote the archive is shared through, and its rhythm.
    pub remote: Option<(jobs::Sharing, crate::config::RemoteConfig)>,
    /// What snapshots of notes capture.
    pub snapshot: SnapshotConfig,
    /// When links are dead.
    pub links: LinksConfig,
    /// The daemon's own settings.
    pub config: WatchConfig,
}

/// A running snapshot's result: its root and what became of it.
type SnapshotDone = (String, Result<Taken, crate::store::Error>);

struct Run<'a> {
    d: &'a Daemon,
    state: DaemonState,
    queue: Queue,
    schedule: Schedule,
    in_progress: BTreeSet<String>,
    queue_dirty: bool,
    /// A link check or composting runs.
    web_running: bool,
    /// A push or pull runs.
    remote_running: bool,
    /// Stops a scan at shutdown (nothing half-recorded).
    stop: Arc<AtomicBool>,
    /// Stops snapshots (and composting's) at shutdown, recorded as incomplete.
    snapshots_stop: Stop,
    /// One scan at a time: two at once would both record the same change.
    gate: Arc<Mutex<()>>,
    /// The index as the last scan left it, for the next (the daemon holds the lock).
    kept: Arc<scan::KeptIndex>,
    /// The vault paths the watcher reported since the last scan started: the next scan looks
    /// at these only. `None`: it looks at every file (the first scan, after the watcher missed
    /// events or a scan failed, and once every [`FULL_SCAN_EVERY`] in case it missed some
    /// without saying).
    changed: Option<BTreeSet<String>>,
    /// When the last scan that looked at every file started.
    last_full: std::time::Instant,
    /// The changes no scan has looked at yet, for scans beside the daemon.
    vouch: vouch::Vouch,
    /// The running scan's mark among those changes, and the paths it looks at (`None`: every
    /// file).
    looking: Option<(u64, Option<BTreeSet<String>>)>,
}

/// How often the daemon looks at every file even if the watcher reported nothing missed.
const FULL_SCAN_EVERY: Duration = Duration::from_secs(60 * 60);

impl Daemon {
    /// Runs until SIGINT or SIGTERM; returns after in-flight writes are finished.
    pub async fn run(&self) -> Result<(), Error> {
        let finished = {
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || snapshot::finish_interrupted(&store))
                .await
                .unwrap_or_else(|_| Ok(Vec::new()))?
        };
        let state = DaemonState {
            pid: std::process::id(),
            since: Some(Timestamp::now()),
            scans: 0,
            recorded: 0,
            snapshots: 0,
            offline: false,
            ..DaemonState::load(&self.store)
        };
        let mut schedule = Schedule::new(
            &self.config,
            &self.snapshot,
            newest_snapshots(&self.store),
            state.links_checked,
            state.composted,
        );
        if let Some((_, config)) = &self.remote {
            schedule = schedule.with_remote(config.push_after.get(), config.pull_every.get());
            // Whatever is here may not be there yet: the first push checks.
            schedule.changed(Timestamp::now() - jiff::SignedDuration::from_secs(3600));
        }
        let mut run = Run {
            d: self,
            state,
            queue: Queue::load(&self.store),
            schedule,
            in_progress: BTreeSet::new(),
            queue_dirty: false,
            web_running: false,
            remote_running: false,
            stop: Arc::new(AtomicBool::new(false)),
            snapshots_stop: Stop::new(),
            gate: Arc::new(Mutex::new(())),
            kept: Arc::default(),
            changed: None,
            last_full: std::time::Instant::now(),
            vouch: vouch::Vouch::new(&self.vault, &self.store),
            looking: None,
        };
        run.state.event(format!(
            "watching {} (pid {})",
            self.vault.display(),
            run.state.pid
        ));
        for id in finished {
            run.state.event(format!(
                "recorded {id}, a snapshot an interrupted run left unfinished"
            ));
        }
        // `status` tells this run from the last one (its scans start from 0) at once.
        run.state.save(&self.store);
        run.main().await
    }
}

impl Run<'_> {
    async fn main(&mut self) -> Result<(), Error> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut watching = Some(self.start_watching(tx.clone())?);
        let answering = self.vouch.serve();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(Error::Signals)?;
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        let mut snapshots: JoinSet<SnapshotDone> = JoinSet::new();
        let mut jobs: JoinSet<jobs::Done> = JoinSet::new();
        let mut scanning: Option<JoinHandle<Result<Scan, scan::Error>>> = Some(self.start_scan());
        let mut first = true;
        let mut pending = false;
        let mut vault_missing = false;
        loop {
            self.fill(&mut snapshots);
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                signal = rx.recv() => match signal {
                    Some(Signal::Changed(paths)) => {
                        tracing::debug!(paths = paths.as_ref().map(Vec::len), "changes");
                        match (paths, &mut self.changed) {
                            (Some(paths), Some(changed)) => changed.extend(paths),
                            _ => self.changed = None,
                        }
                        if scanning.is_some() { pending = true } else { scanning = Some(self.start_scan()) }
                    }
                    Some(Signal::Trouble(t)) => {
                        // Events may have been lost with it.
                        self.changed = None;
                        self.state.error(format!("watcher: {t}"));
                    }
                    None => {}
                },
                done = async { scanning.as_mut().expect("guarded").await }, if scanning.is_some() => {
                    scanning = None;
                    // The paths a scan that did not finish was given are looked at by the
                    // next scan only if it looks at every file.
                    if !matches!(done, Ok(Ok(_))) {
                        self.changed = None;
                    }
                    let looking = self.looking.take();
                    match done {
                        Ok(Ok(scan)) => {
                            if let Some((mark, changed)) = looking {
                                let problems = scan.problems.iter().map(|p| p.path.clone());
                                let linked = scan.linked.iter().cloned();
                                self.vouch.lock().looked(mark, changed.as_ref(), problems, linked);
                            }
                            vault_missing = false;
                            self.scanned(&scan, first);
                            first = false;
                        }
                        Ok(Err(scan::Error::NoVault(p) | scan::Error::VaultIsFile(p))) => {
                            if !vault_missing {
                                self.state.error(format!(
                                    "the vault {} is gone; nothing is recorded as deleted. \
                                     Waiting for it to come back (checked every 5 s)",
                                    p.display()
                                ));
                            }
                            vault_missing = true;
                            watching = None;
                            self.vouch.stop("the vault is gone");
                        }
                        Ok(Err(scan::Error::Deletions(d))) if d.deleted == d.known => {
                            if !vault_missing {
                                self.state.error(format!(
                                    "{d}. Waiting for the files to come back (checked every 5 s)"
                                ));
                            }
                            vault_missing = true;
                            watching = None;
                            self.vouch.stop("the vault's files are gone");
                        }
                        Ok(Err(scan::Error::Cancelled)) => {}
                        Ok(Err(e)) => self.state.error(format!("scan failed: {}", chain(&e))),
                        Err(e) => self.state.error(format!("scan task failed: {e}")),
                    }
                    if pending && !vault_missing {
                        pending = false;
                        scanning = Some(self.start_scan());
                    }
                    self.state.save(&self.d.store);
                }
                Some(done) = snapshots.join_next(), if !snapshots.is_empty() => {
                    if let Ok((url, result)) = done {
                        self.snapshot_done(&url, result);
                    }
                }
                Some(done) = jobs.join_next(), if !jobs.is_empty() => {
                    if let Ok(done) = done {
                        self.job_done(done);
                    }
                }
                _ = tick.tick() => {
                    if vault_missing && vault_has_files(&self.d.vault) && scanning.is_none() {
                        match self.start_watching(tx.clone()) {
                            Ok(w) => {
                                watching = Some(w);
                                self.state.event(format!("the vault {} is back", self.d.vault.display()));
                                scanning = Some(self.start_scan());
                            }
                            Err(e) => self.state.error(chain(&e)),
                        }
                    }
                    if !first && !vault_missing && scanning.is_none()
                        && self.last_full.elapsed() >= FULL_SCAN_EVERY
                    {
                        self.changed = None;
                        scanning = Some(self.start_scan());
                    }
                    if !first {
                        self.scheduled(&mut jobs);
                    }
                }
            }
        }
        // Shut down: stop scanning and snapshots; what was recorded stays, queued snapshots
        // stay queued for the next start.
        self.stop.store(true, Ordering::Relaxed);
        drop(watching);
        if let Some(answering) = answering {
            answering.abort();
        }
        self.vouch.stop("the daemon stops");
        self.vouch.clean_up();
        if let Some(scan) = scanning {
            let _ = tokio::time::timeout(Duration::from_secs(4), scan).await;
        }
        // Snapshots in progress record what they captured, marked incomplete; their URLs stay
        // queued for the next start.
        self.snapshots_stop
            .request("interrupted: the daemon stopped");
        let wind_down = async {
            while snapshots.join_next().await.is_some() {}
            while jobs.join_next().await.is_some() {}
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), wind_down).await;
        snapshots.abort_all();
        jobs.abort_all();
        self.state.event(format!(
            "stopped; {} snapshots left in the queue",
            self.queue.items.len()
        ));
        self.state.save(&self.d.store);
        Ok(())
    }

    /// Starts both watchers: the one whose changes the daemon scans, then (second, so that the
    /// one the daemon needs gets the system's watches first) the one that numbers changes for
    /// scans beside it.
    fn start_watching(&mut self, tx: mpsc::UnboundedSender<Signal>) -> Result<Watching, Error> {
        let watching = events::watch(
            &self.d.vault,
            self.d.store.root(),
            Duration::from_millis(self.d.config.debounce_ms),
            Duration::from_secs(self.d.config.poll_secs.max(1)),
            tx,
        )
        .map_err(|source| Error::Watch {
            path: self.d.vault.clone(),
            source,
        })?;
        self.vouch.watch();
        Ok(watching)
    }

    /// Starts a scan of what the watcher reported since the last one (of every file when it
    /// may have missed something).
    fn start_scan(&mut self) -> JoinHandle<Result<Scan, scan::Error>> {
        let vault = self.d.vault.clone();
        let store = self.d.store.clone();
        let mut options = self.scan_options();
        options.cancel = Some(self.stop.clone());
        if self.vouch.needs_every_file() {
            self.changed = None;
        }
        options.changed_paths = self.changed.replace(BTreeSet::new());
        // A change of a link's target is reported under the target's path: links are looked
        // at with every change.
        if let Some(changed) = options.changed_paths.as_mut() {
            changed.extend(self.vouch.lock().linked().cloned());
        }
        if options.changed_paths.is_none() {
            self.last_full = std::time::Instant::now();
        }
        self.looking = Some((self.vouch.lock().mark(), options.changed_paths.clone()));
        let gate = self.gate.clone();
        tokio::task::spawn_blocking(move || {
            let _one = gate.lock().unwrap_or_else(|e| e.into_inner());
            scan::scan(&vault, &store, &options)
        })
    }

    /// The options of the daemon's scans, its own and composting's: they share the kept
    /// index, and the day is taken afresh (issue 9: a profile whose `end` passed while the
    /// daemon ran is composted).
    fn scan_options(&self) -> ScanOptions {
        ScanOptions {
            keep_index: Some(self.kept.clone()),
            today: crate::localtime::today(),
            ..self.d.scan.clone()
        }
    }

    /// After a scan: count what it recorded; tell the schedule what the notes now ask for.
    /// A scan of every file reads every note (from the cache); a scan of changed paths, the
    /// notes that changed.
    fn scanned(&mut self, scan: &Scan, first: bool) {
        self.state.scans += 1;
        // A first scan's records are only counted; later scans read theirs back (few).
        let records = if first || scan.recorded == 0 {
            Vec::new()
        } else {
            scan.records().unwrap_or_else(|e| {
                self.state
                    .error(format!("cannot read back what was recorded: {}", chain(&e)));
                Vec::new()
            })
        };
        if scan.recorded > 0 {
            self.schedule.changed(Timestamp::now());
            self.state.recorded += scan.recorded as u64;
            let what: Vec<String> = scan
                .events
                .iter()
                .map(|(e, n)| format!("{n} {e}"))
                .collect();
            let example = records
                .first()
                .map(|r| format!(", e.g. {}", r.path))
                .unwrap_or_default();
            self.state.event(format!(
                "recorded {} versions ({}){example}",
                scan.recorded,
                what.join(", ")
            ));
        }
        for p in &scan.problems {
            self.state.error(format!("{}: {}", p.path, p.message));
        }
        if scan.is_whole() {
            // Every note: what no note asks for any more leaves the schedule. (0.6 s at 89,000
            // files: tokio moves the loop's other tasks, the answers to scans beside the daemon
            // among them, to another thread meanwhile.)
            let clock = std::time::Instant::now();
            let schedule = &mut self.schedule;
            let read = crate::fsutil::off_executor(|| {
                schedule.all_notes(|add| scan.each_note(|_, facts| add(facts)))
            });
            tracing::debug!(elapsed = ?clock.elapsed(), "read what every note asks");
            if let Err(e) = read {
                self.state
                    .error(format!("cannot read the notes' links: {}", chain(&e)));
            }
        } else {
            let fresh = scan.take_fresh();
            for r in records.iter().filter(|r| {
                FileKind::of(&r.path) == FileKind::Note
                    && matches!(r.event, Event::Created | Event::Modified)
            }) {
                if let Some(facts) = fresh.get(&r.sha256) {
                    self.schedule.note(facts);
                }
            }
        }
        self.enqueue_due();
    }

    /// Queues the snapshots the schedule says are due.
    fn enqueue_due(&mut self) {
        let before = self.queue.items.len();
        for (plan, why) in self.schedule.due_snapshots(Timestamp::now()) {
            self.enqueue(&plan, why);
        }
        let queued = self.queue.items.len() - before;
        if queued > 0 {
            self.state.event(format!("queued {queued} snapshots"));
        }
        self.save_queue();
    }

    fn enqueue(&mut self, plan: &Plan, why: Why) {
        if !self.d.config.snapshots {
            return;
        }
        let added = self.queue.push(Queued {
            url: key(plan.root.as_str()),
            depth: plan.depth,
            max_pages: plan.max_pages,
            queued: Timestamp::now(),
            why: why.word().into(),
        });
        if added {
            tracing::info!("queued a snapshot of {} ({})", plan.root, why.word());
            self.queue_dirty = true;
        }
    }

    /// Saves the queue if it changed (once per batch of changes, not per URL).
    fn save_queue(&mut self) {
        if std::mem::take(&mut self.queue_dirty)
            && let Err(e) = crate::fsutil::off_executor(|| self.queue.save(&self.d.store))
        {
            self.state
                .error(format!("cannot save the snapshot queue: {}", chain(&e)));
        }
    }

    /// Starts queued snapshots in the slots the schedule gives (while offline, one probe now
    /// and then).
    fn fill(&mut self, tasks: &mut JoinSet<SnapshotDone>) {
        let slots = self.schedule.snapshot_slots(
            Timestamp::now(),
            tasks.len(),
            self.d.config.snapshot_concurrency,
        );
        let waiting: Vec<Queued> = self
            .queue
            .items
            .iter()
            .filter(|q| !self.in_progress.contains(&q.url))
            .take(slots)
            .cloned()
            .collect();
        for q in waiting {
            let Ok(root) = url::Url::parse(&q.url) else {
                self.queue.remove(&q.url);
                continue;
            };
            let plan = Plan::new(root, q.depth, q.max_pages, &self.d.snapshot);
            let stop = self.snapshots_stop.clone();
            let (fetcher, browser) = (self.d.fetcher.clone(), self.d.browser.clone());
            let store = self.d.store.clone();
            self.in_progress.insert(q.url.clone());
            tasks.spawn(async move {
                let tools = snapshot::Tools {
                    fetcher: &fetcher,
                    browser: browser.as_deref(),
                };
                let result = snapshot::take(
                    tools,
                    &store,
                    &plan,
                    &NoProgress,
                    Postpone::UnlessNetworkKnownUp,
                    &stop,
                )
                .await;
                (q.url, result)
            });
        }
    }

    fn snapshot_done(&mut self, url: &str, result: Result<Taken, crate::store::Error>) {
        self.in_progress.remove(url);
        let now = Timestamp::now();
        match result {
            Ok(Taken::Recorded(snap)) => {
                self.online();
                self.schedule.changed(now);
                self.state.snapshots += 1;
                self.schedule
                    .snapshot_recorded(url, now, snap.root_captured());
                if snap.root_captured() {
                    self.state.event(format!(
                        "snapshot {} of {url}: {} captures",
                        snap.id,
                        snap.captures.len()
                    ));
                } else {
                    let why = snap
                        .root_failure()
                        .map(|f| f.detail.clone())
                        .unwrap_or_default();
                    self.state
                        .error(format!("snapshot {} of {url} failed: {why}", snap.id));
                }
                self.queue.remove(url);
                self.queue_dirty = true;
                self.save_queue();
            }
            // Nothing recorded: the URL stays queued until the network is back.
            Ok(Taken::Offline(why)) => self.went_offline(&why),
            // Stopped with nothing captured: it stays queued for the next start.
            Ok(Taken::Stopped(_)) => {}
            // The archive could not be written (a full disk): the URL stays queued.
            Err(e) => self
                .state
                .error(format!("snapshot of {url} failed: {}", chain(&e))),
        }
        self.state.save(&self.d.store);
    }

    /// The network seems down: what needs it waits, and a probe runs now and then.
    fn went_offline(&mut self, why: &str) {
        if self.schedule.went_offline(Timestamp::now()) {
            self.state.error(format!(
                "the network seems down ({why}); snapshots, link checks and composting wait, \
                 and nothing is judged dead meanwhile (trying again every {} s)",
                schedule::PROBE_EVERY.as_secs()
            ));
        }
        self.state.offline = true;
    }

    fn online(&mut self) {
        if self.schedule.online() {
            self.state.event("the network is back");
        }
        self.state.offline = false;
    }

    fn job_done(&mut self, done: jobs::Done) {
        if matches!(done.job, Job::Push | Job::Pull) {
            self.remote_running = false;
        } else {
            self.web_running = false;
        }
        if done.failed {
            self.state.error(done.text);
            self.schedule.job_failed(done.job, Timestamp::now());
        } else {
            self.state.event(done.text);
        }
        if done.failed {
        } else if done.offline {
            let why = match done.job {
                Job::CheckLinks => "every host failed before answering during the link check",
                _ => "composting could not reach the network",
            };
            self.went_offline(why);
        } else {
            self.schedule.job_done(done.job, Timestamp::now());
            (self.state.links_checked, self.state.composted) = self.schedule.last_jobs();
        }
        self.state.save(&self.d.store);
    }

    /// Snapshots that became due, and the jobs that are due: one web job (link checks,
    /// composting) and one remote job (push, pull) at a time, each beside the other.
    fn scheduled(&mut self, jobs: &mut JoinSet<jobs::Done>) {
        self.enqueue_due();
        let store = self.d.store.clone();
        if !self.remote_running
            && let Some(job) = self.schedule.due_remote(Timestamp::now())
            && let Some((sharing, _)) = self.d.remote.clone()
        {
            self.remote_running = true;
            self.schedule.job_started(job, Timestamp::now());
            let store = store.clone();
            jobs.spawn(async move {
                if job == Job::Push {
                    jobs::push(&sharing, &store).await
                } else {
                    jobs::pull(&sharing, &store).await
                }
            });
        }
        if self.web_running {
            return;
        }
        let fetcher = self.d.fetcher.clone();
        match self.schedule.due_job(Timestamp::now()) {
            Some(Job::CheckLinks) => {
                let urls: Vec<String> = self.schedule.urls().into_iter().collect();
                let links = self.d.links.clone();
                self.web_running = true;
                jobs.spawn(async move { jobs::check_links(&fetcher, &store, &urls, &links).await });
            }
            Some(Job::Compost) => {
                let vault = self.d.vault.clone();
                let (snapshot, gate, stop) = (
                    self.d.snapshot.clone(),
                    self.gate.clone(),
                    self.snapshots_stop.clone(),
                );
                let options = self.scan_options();
                let browser = self.d.browser.clone();
                self.web_running = true;
                jobs.spawn(async move {
                    let tools = snapshot::Tools {
                        fetcher: &fetcher,
                        browser: browser.as_deref(),
                    };
                    jobs::compost(tools, &store, &vault, &snapshot, &options, gate, stop).await
                });
            }
            Some(Job::Push | Job::Pull) | None => {}
        }
    }
}

/// Whether the vault folder exists and holds anything (the daemon waits for that after the
/// vault vanished or emptied).
fn vault_has_files(vault: &Path) -> bool {
    std::fs::read_dir(vault).is_ok_and(|mut entries| entries.next().is_some())
}

/// The newest snapshot of every root in the archive.
fn newest_snapshots(store: &Store) -> HashMap<String, Newest> {
    let mut out: HashMap<String, Newest> = HashMap::new();
    for snap in record::load_all(store).into_iter().flatten() {
        let entry = out.entry(key(&snap.root)).or_insert(Newest {
            success: None,
            attempt: snap.started,
        });
        entry.attempt = entry.attempt.max(snap.started);
        if snap.root_captured() {
            entry.success = Some(entry.success.map_or(snap.started, |t| t.max(snap.started)));
        }
    }
    out
}
