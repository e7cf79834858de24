//! `vaultkeep watch`: the daemon that keeps the archive in step with the vault.
//!
//! One loop receives every source of work as an event (watchexec's shape): file changes from
//! the notify adapter ([`events`]), finished snapshots, a timer for scheduled work, and
//! SIGINT/SIGTERM. A change triggers a scan (the same engine as `vaultkeep scan`, which costs a
//! stat per unchanged file), run off the loop; new external URLs go to a persistent queue of
//! snapshots, taken in the background with bounded concurrency, so recording versions never
//! waits for the network.

pub mod events;
pub mod state;
pub mod status;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::{LinksConfig, SnapshotConfig, WatchConfig};
use crate::copies::key;
use crate::fetch::Fetcher;
use crate::linkcheck;
use crate::note::NoteFacts;
use crate::report::chain;
use crate::scan::{self, Scan, ScanOptions};
use crate::snapshot::plan::plans_for_notes;
use crate::snapshot::{self, NoProgress, Plan, Postpone, Stop, Taken, record};
use crate::store::Store;

use events::{Signal, Watching};
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
    /// What snapshots of notes capture.
    pub snapshot: SnapshotConfig,
    /// When links are dead.
    pub links: LinksConfig,
    /// The daemon's own settings.
    pub config: WatchConfig,
}

/// The newest snapshot of a root URL.
#[derive(Debug, Clone, Copy)]
struct Newest {
    /// When the newest successful one was taken.
    success: Option<Timestamp>,
    /// When the newest attempt was made.
    attempt: Timestamp,
}

/// How long a root whose snapshots all failed waits before it is tried again.
const RETRY_FAILED: Duration = Duration::from_secs(24 * 3600);

struct Run<'a> {
    d: &'a Daemon,
    state: DaemonState,
    queue: Queue,
    wanted: BTreeMap<String, Plan>,
    urls: BTreeSet<String>,
    newest: HashMap<String, Newest>,
    in_progress: BTreeSet<String>,
    queue_dirty: bool,
    stop: Arc<AtomicBool>,
    /// Stops snapshots (and composting's) at shutdown, recorded as incomplete.
    snapshots_stop: Stop,
    /// One scan at a time: two at once would both record the same change.
    gate: Arc<std::sync::Mutex<()>>,
    resnapshot_after: Duration,
    check_every: Option<Duration>,
    compost_every: Option<Duration>,
    /// Since when the network seems down, and when to try again (issue 9: offline is a
    /// state, not a verdict).
    offline: Option<Offline>,
}

/// The network seems down: snapshots, link checks and composting wait.
#[derive(Debug, Clone, Copy)]
struct Offline {
    next_probe: Timestamp,
}

/// How often an offline daemon tries one queued snapshot to see whether the network is back.
const PROBE_EVERY: Duration = Duration::from_secs(60);

/// A finished background job.
enum JobDone {
    /// A link check: what to log, and whether the network was down.
    Links { text: String, offline: bool },
    /// Composting: what to log, and whether the network was down.
    Compost { text: String, offline: bool },
}

impl Daemon {
    /// Runs until SIGINT or SIGTERM; returns after in-flight writes are finished.
    pub async fn run(&self) -> Result<(), Error> {
        let finished = {
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || snapshot::finish_interrupted(&store))
                .await
                .unwrap_or_else(|_| Ok(Vec::new()))?
        };
        let mut run = Run {
            d: self,
            state: DaemonState {
                pid: std::process::id(),
                since: Some(Timestamp::now()),
                ..DaemonState::load(&self.store)
            },
            queue: Queue::load(&self.store),
            wanted: BTreeMap::new(),
            urls: BTreeSet::new(),
            newest: newest_snapshots(&self.store),
            in_progress: BTreeSet::new(),
            queue_dirty: false,
            stop: Arc::new(AtomicBool::new(false)),
            snapshots_stop: Stop::new(),
            gate: Arc::new(std::sync::Mutex::new(())),
            resnapshot_after: self.config.resnapshot_after.get(),
            check_every: self.config.check_links_every.nonzero(),
            compost_every: self.config.compost_every.nonzero(),
            offline: None,
        };
        run.state.scans = 0;
        run.state.recorded = 0;
        run.state.snapshots = 0;
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
        run.main().await
    }
}

impl Run<'_> {
    async fn main(&mut self) -> Result<(), Error> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut watching = Some(self.start_watching(tx.clone())?);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(Error::Signals)?;
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        let mut snapshots: JoinSet<(String, Result<Taken, crate::store::Error>)> = JoinSet::new();
        let mut jobs: JoinSet<JobDone> = JoinSet::new();
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
                    Some(Signal::Changed(_)) => {
                        if scanning.is_some() { pending = true } else { scanning = Some(self.start_scan()) }
                    }
                    Some(Signal::Trouble(t)) => self.state.error(format!("watcher: {t}")),
                    None => {}
                },
                done = async { scanning.as_mut().expect("guarded").await }, if scanning.is_some() => {
                    scanning = None;
                    match done {
                        Ok(Ok(scan)) => {
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
                        }
                        Ok(Err(scan::Error::Deletions(d))) if d.deleted == d.known => {
                            if !vault_missing {
                                self.state.error(format!(
                                    "{d}. Waiting for the files to come back (checked every 5 s)"
                                ));
                            }
                            vault_missing = true;
                            watching = None;
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
                        self.state.save(&self.d.store);
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

    fn start_watching(&self, tx: mpsc::UnboundedSender<Signal>) -> Result<Watching, Error> {
        events::watch(
            &self.d.vault,
            self.d.store.root(),
            Duration::from_millis(self.d.config.debounce_ms),
            Duration::from_secs(self.d.config.poll_secs.max(1)),
            tx,
        )
        .map_err(|source| Error::Watch {
            path: self.d.vault.clone(),
            source,
        })
    }

    fn start_scan(&self) -> JoinHandle<Result<Scan, scan::Error>> {
        let vault = self.d.vault.clone();
        let store = self.d.store.clone();
        let mut options = self.d.scan.clone();
        options.cancel = Some(self.stop.clone());
        options.today = scan::today();
        let gate = self.gate.clone();
        tokio::task::spawn_blocking(move || {
            let _one = gate.lock().unwrap_or_else(|e| e.into_inner());
            scan::scan(&vault, &store, &options)
        })
    }

    /// After a scan: count what it recorded; queue snapshots for new URLs. The first scan
    /// reads every note (from the cache); later ones only the notes that changed.
    fn scanned(&mut self, scan: &Scan, first: bool) {
        self.state.scans += 1;
        if !scan.records.is_empty() {
            self.state.recorded += scan.records.len() as u64;
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for r in &scan.records {
                *counts.entry(r.event.name()).or_default() += 1;
            }
            let what: Vec<String> = counts.iter().map(|(e, n)| format!("{n} {e}")).collect();
            let example = &scan.records[0].path;
            self.state.event(format!(
                "recorded {} versions ({}), e.g. {example}",
                scan.records.len(),
                what.join(", ")
            ));
        }
        for p in &scan.problems {
            self.state.error(format!("{}: {}", p.path, p.message));
        }
        // The first scan reads what every note says; later ones only the changed notes.
        let (all, fresh);
        let facts: Vec<&NoteFacts> = if first {
            all = match scan.facts() {
                Ok(f) => f,
                Err(e) => {
                    self.state
                        .error(format!("cannot read the notes' links: {}", chain(&e)));
                    Default::default()
                }
            };
            all.values().collect()
        } else {
            fresh = scan.take_fresh();
            fresh.values().collect()
        };
        for f in &facts {
            for link in &f.links {
                if let crate::links::Destination::External(u) = link.destination() {
                    self.urls.insert(key(u));
                }
            }
        }
        let plans = plans_for_notes(
            facts.iter().copied(),
            &self.d.snapshot,
            None,
            self.d.snapshot.max_pages,
        );
        let before = self.queue.items.len();
        for plan in plans {
            let root = key(plan.root.as_str());
            if !self.newest.contains_key(&root) {
                self.enqueue(&plan, "new");
            }
            self.wanted.insert(root, plan);
        }
        let queued = self.queue.items.len() - before;
        if queued > 0 {
            self.state
                .event(format!("queued {queued} snapshots of new URLs"));
        }
        self.save_queue();
    }

    fn enqueue(&mut self, plan: &Plan, why: &str) {
        if !self.d.config.snapshots {
            return;
        }
        let added = self.queue.push(Queued {
            url: key(plan.root.as_str()),
            depth: plan.depth,
            max_pages: plan.max_pages,
            queued: Timestamp::now(),
            why: why.into(),
        });
        if added {
            tracing::info!("queued a snapshot of {} ({why})", plan.root);
            self.queue_dirty = true;
        }
    }

    /// Saves the queue if it changed (once per batch of changes, not per URL).
    fn save_queue(&mut self) {
        if std::mem::take(&mut self.queue_dirty)
            && let Err(e) = crate::fsutil::off_executor(|| self.queue.save(&self.d.store))
        {
            self.state
                .error(format!("cannot save the snapshot queue: {e}"));
        }
    }

    /// Starts queued snapshots up to the concurrency limit; while offline, one at a time when
    /// a probe is due.
    fn fill(&mut self, tasks: &mut JoinSet<(String, Result<Taken, crate::store::Error>)>) {
        let mut limit = self.d.config.snapshot_concurrency.max(1);
        if let Some(off) = self.offline {
            if Timestamp::now() < off.next_probe || !tasks.is_empty() {
                return;
            }
            limit = 1;
            self.offline = Some(Offline {
                next_probe: Timestamp::now() + PROBE_EVERY,
            });
        }
        let waiting: Vec<Queued> = self
            .queue
            .items
            .iter()
            .filter(|q| !self.in_progress.contains(&q.url))
            .take(limit.saturating_sub(tasks.len()))
            .cloned()
            .collect();
        for q in waiting {
            let Ok(root) = url::Url::parse(&q.url) else {
                self.queue.remove(&q.url);
                continue;
            };
            let plan = Plan {
                root,
                depth: q.depth,
                max_pages: q.max_pages,
                limits: (&self.d.snapshot).into(),
            };
            let stop = self.snapshots_stop.clone();
            let fetcher = self.d.fetcher.clone();
            let store = self.d.store.clone();
            self.in_progress.insert(q.url.clone());
            tasks.spawn(async move {
                let result = snapshot::take(
                    &fetcher,
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
        match result {
            Ok(Taken::Recorded(snap)) => {
                self.online();
                self.state.snapshots += 1;
                let now = Timestamp::now();
                let entry = self.newest.entry(url.to_string()).or_insert(Newest {
                    success: None,
                    attempt: now,
                });
                entry.attempt = now;
                if snap.root_captured() {
                    entry.success = Some(now);
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
                if let Err(e) = crate::fsutil::off_executor(|| self.queue.save(&self.d.store)) {
                    self.state
                        .error(format!("cannot save the snapshot queue: {e}"));
                }
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

    /// The network seems down: postpone what needs it, and probe now and then.
    fn went_offline(&mut self, why: &str) {
        if self.offline.is_none() {
            self.state.error(format!(
                "the network seems down ({why}); snapshots, link checks and composting wait, \
                 and nothing is judged dead meanwhile (trying again every {} s)",
                PROBE_EVERY.as_secs()
            ));
        }
        self.state.offline = true;
        self.offline = Some(Offline {
            next_probe: Timestamp::now() + PROBE_EVERY,
        });
    }

    fn online(&mut self) {
        if self.offline.take().is_some() {
            self.state.event("the network is back");
        }
        self.state.offline = false;
    }

    fn job_done(&mut self, done: JobDone) {
        let now = Timestamp::now();
        match done {
            JobDone::Links { text, offline } => {
                self.state.event(text);
                if offline {
                    self.went_offline("every host failed before answering during the link check");
                } else {
                    self.state.links_checked = Some(now);
                }
            }
            JobDone::Compost { text, offline } => {
                self.state.event(text);
                if offline {
                    self.went_offline("composting could not reach the network");
                } else {
                    self.state.composted = Some(now);
                }
            }
        }
    }

    /// Re-snapshots, link checks and composting that are due.
    fn scheduled(&mut self, jobs: &mut JoinSet<JobDone>) {
        let now = Timestamp::now();
        let older = |t: Timestamp, d: Duration| now.duration_since(t).unsigned_abs() >= d;
        let due: Vec<Plan> = self
            .wanted
            .iter()
            .filter(|(root, _)| match self.newest.get(*root) {
                Some(Newest {
                    success: Some(t), ..
                }) => older(*t, self.resnapshot_after),
                Some(Newest {
                    success: None,
                    attempt,
                }) => older(*attempt, RETRY_FAILED),
                None => false,
            })
            .map(|(_, p)| p.clone())
            .collect();
        for plan in due {
            self.enqueue(&plan, "stale");
        }
        self.save_queue();
        // While offline, link checks and composting wait: they would judge nothing.
        if !jobs.is_empty() || self.offline.is_some() {
            return;
        }
        if let Some(every) = self.check_every
            && self.state.links_checked.is_none_or(|t| older(t, every))
            && !self.urls.is_empty()
        {
            let (fetcher, store, urls) = (
                self.d.fetcher.clone(),
                self.d.store.clone(),
                self.urls.iter().cloned().collect::<Vec<_>>(),
            );
            let (rule, concurrency) = ((&self.d.links).into(), self.d.links.concurrency);
            jobs.spawn(async move {
                match linkcheck::check_and_record(&fetcher, &store, &urls, rule, false, concurrency)
                    .await
                {
                    Ok(checked) => {
                        let failed = checked.results.iter().filter(|r| !r.ok).count();
                        let text = if checked.offline {
                            format!(
                                "checked {} links while the network was down: recorded as offline, nothing judged",
                                checked.results.len()
                            )
                        } else {
                            format!("checked {} links ({failed} failed)", checked.results.len())
                        };
                        JobDone::Links {
                            text,
                            offline: checked.offline,
                        }
                    }
                    Err(e) => JobDone::Links {
                        text: format!("checked links, but cannot record the results: {}", chain(&e)),
                        offline: false,
                    },
                }
            });
            return;
        }
        if let Some(every) = self.compost_every
            && self.state.composted.is_none_or(|t| older(t, every))
        {
            let (fetcher, store, vault) = (
                self.d.fetcher.clone(),
                self.d.store.clone(),
                self.d.vault.clone(),
            );
            let (snapshot, mut options, gate, stop) = (
                self.d.snapshot.clone(),
                self.d.scan.clone(),
                self.gate.clone(),
                self.snapshots_stop.clone(),
            );
            // Time moves: a profile whose `end` passed while the daemon ran is composted.
            options.today = scan::today();
            jobs.spawn(async move {
                compost(&fetcher, &store, &vault, &snapshot, &options, gate, stop).await
            });
        }
    }
}

/// Composting, as `vaultkeep compost` does it. Its edits come back as file events and are
/// recorded by the next scan; being idempotent, they cause no further edits.
async fn compost(
    fetcher: &Fetcher,
    store: &Store,
    vault: &Path,
    snapshot: &SnapshotConfig,
    options: &ScanOptions,
    gate: Arc<std::sync::Mutex<()>>,
    stop: Stop,
) -> JobDone {
    let skipped = |e: &(dyn std::error::Error + 'static)| JobDone::Compost {
        text: format!("composting skipped: {}", chain(e)),
        offline: false,
    };
    let scanned = {
        let (vault, store, options) = (vault.to_path_buf(), store.clone(), options.clone());
        let gate = gate.clone();
        tokio::task::spawn_blocking(move || {
            let _one = gate.lock().unwrap_or_else(|e| e.into_inner());
            scan::scan(&vault, &store, &options).and_then(|s| s.view().map_err(Into::into))
        })
        .await
    };
    let view = match scanned {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return skipped(&e),
        Err(e) => return skipped(&e),
    };
    let job = crate::compost::Compost {
        vault,
        store,
        fetcher: Some(fetcher),
        snapshot,
        today: options.today,
        gate: Some(&gate),
        stop,
    };
    match job.run(&view).await {
        Ok(r) => {
            let written = r
                .profiles
                .iter()
                .filter(|p| p.result.written())
                .count();
            JobDone::Compost {
                text: format!(
                    "composting: {} profiles, {written} marked, {} snapshots taken",
                    r.profiles.len(),
                    r.snapshots_taken
                ),
                offline: r.offline,
            }
        }
        Err(e) => JobDone::Compost {
            text: format!("composting failed: {}", chain(&e)),
            offline: false,
        },
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
