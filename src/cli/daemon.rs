//! `watch` and `status`.

use std::sync::Arc;

use serde::Serialize;

use super::files::scan_options;
use super::output::{self, Exit, say};
use super::snapshots::{fetcher, runtime};
use super::{Context, WatchArgs};
use crate::report::human_bytes;
use crate::store::{Lock, LockHolder, ObjectEntry, Store};
use crate::watch::Daemon;
use crate::watch::state::{DaemonState, Line, Queue};

pub(crate) fn watch(ctx: &Context, args: &WatchArgs) -> anyhow::Result<Exit> {
    crate::scan::check_vault(&ctx.vault)?;
    let (store, _lock) = Store::open_for_writing(&ctx.archive, "watch")?;
    let mut scan = scan_options(ctx);
    scan.progress = false;
    let daemon = Daemon {
        vault: ctx.vault.clone(),
        store,
        scan,
        fetcher: Arc::new(fetcher(ctx, args.allow_private, false)?),
        snapshot: ctx.config.snapshot.clone(),
        links: ctx.config.links.clone(),
        config: ctx.config.watch.clone(),
    };
    runtime()?.block_on(daemon.run())?;
    Ok(Exit::Success)
}

#[derive(Serialize)]
struct Status {
    daemon: DaemonInfo,
    /// Scans, versions recorded and snapshots taken by the running (or last) daemon.
    scans: u64,
    recorded: u64,
    snapshots_taken: u64,
    queue: usize,
    queued: Vec<String>,
    last_events: Vec<Line>,
    last_errors: Vec<Line>,
    archive: Totals,
}

#[derive(Serialize)]
struct DaemonInfo {
    running: bool,
    pid: Option<u32>,
    since: Option<String>,
    /// Another vaultkeep command holding the archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    busy: Option<LockHolder>,
}

#[derive(Serialize)]
struct Totals {
    files: usize,
    versions: usize,
    objects: usize,
    bytes: u64,
    snapshots: usize,
}

pub(crate) fn status(ctx: &Context, json: bool) -> anyhow::Result<Exit> {
    let store = Store::open(&ctx.archive)?;
    let holder = Lock::holder(&store.root().join("lock"));
    let running = holder.as_ref().is_some_and(|h| h.command == "watch");
    let state = DaemonState::load(store.root());
    let queue = Queue::load(store.root());
    let index = store.load_index()?;
    let (mut objects, mut bytes) = (0, 0);
    for entry in store.objects().entries().unwrap_or_default() {
        if let ObjectEntry::Object(_, path) = entry {
            objects += 1;
            bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        }
    }
    let snapshots = crate::snapshot::record::load_all(&store).len();
    let report = Status {
        daemon: DaemonInfo {
            running,
            pid: holder.as_ref().filter(|_| running).map(|h| h.pid),
            since: holder.as_ref().filter(|_| running).map(|h| h.since.clone()),
            busy: holder.filter(|h| h.command != "watch"),
        },
        scans: state.scans,
        recorded: state.recorded,
        snapshots_taken: state.snapshots,
        queue: queue.items.len(),
        queued: queue.items.iter().map(|q| q.url.clone()).collect(),
        last_events: state.last_events.into_iter().collect(),
        last_errors: state.last_errors.into_iter().collect(),
        archive: Totals {
            files: index.files.len(),
            versions: index.log_lines,
            objects,
            bytes,
            snapshots,
        },
    };
    if json {
        output::json(&report)?;
        return Ok(Exit::Success);
    }
    match (&report.daemon.pid, &report.daemon.since) {
        (Some(pid), Some(since)) => say!("The daemon runs (pid {pid}, since {since})."),
        _ => say!("No daemon is watching {}.", ctx.archive.display()),
    }
    if let Some(b) = &report.daemon.busy {
        say!("The archive is in use by {b}.");
    }
    say!(
        "Archive: {} files, {} versions, {} objects ({}), {} snapshots; {} snapshots queued.",
        report.archive.files,
        report.archive.versions,
        report.archive.objects,
        human_bytes(report.archive.bytes),
        report.archive.snapshots,
        report.queue
    );
    output::list(
        "Last events",
        report.last_events.len(),
        report
            .last_events
            .iter()
            .rev()
            .take(10)
            .map(|l| format!("{}  {}", l.time, l.text)),
    );
    output::list(
        "Last errors",
        report.last_errors.len(),
        report
            .last_errors
            .iter()
            .rev()
            .take(10)
            .map(|l| format!("{}  {}", l.time, l.text)),
    );
    Ok(Exit::Success)
}
