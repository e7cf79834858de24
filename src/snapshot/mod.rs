//! Snapshots of web pages: capture a page with its requisites (or a bounded same-site crawl)
//! into the archive, and build an offline copy that opens from the file system.
//!
//! Order (design.md, "The archive"): captured bodies are stored as objects and, in batches once
//! durable, listed in the snapshot's journal; at the end the offline copy is built (derived
//! files are objects too, linked into `snapshots/<id>/offline/`), the objects are made durable,
//! and only then is `snapshots/<id>/snapshot.json`, the record, written and the journal
//! removed. A snapshot stopped early is recorded as incomplete; one killed outright is finished
//! from its journal by the next writer ([`finish_interrupted`]).

pub mod crawl;
pub mod css;
pub mod html;
pub mod journal;
pub mod offline;
pub mod paths;
pub mod plan;
pub mod record;
pub mod render;
pub mod stop;
pub mod text;

use jiff::Timestamp;

use crate::browser::Launcher;
use crate::fetch::Fetcher;
use crate::store::{self, Store};

pub use crawl::{NoProgress, Progress};
pub use plan::{Limits, Plan};
pub use record::{Role, Snapshot};
pub use stop::Stop;

/// What snapshots are taken with: the HTTP client, and a browser for the pages that need one
/// (none: every page statically).
#[derive(Clone, Copy)]
pub struct Tools<'a> {
    /// The fetcher.
    pub fetcher: &'a Fetcher,
    /// The browser.
    pub browser: Option<&'a Launcher>,
}

/// What became of a snapshot.
#[derive(Debug)]
pub enum Taken {
    /// It was recorded (its root may still have failed: that is a record of what happened).
    Recorded(Box<Snapshot>),
    /// Its root failed before any server answered while the network was not known to work:
    /// nothing was recorded; try again when the network is back (issue 9).
    Offline(String),
    /// It was stopped before it captured anything: nothing to keep, nothing recorded.
    Stopped(String),
}

/// When a snapshot whose root could not be reached is not recorded, because the network may
/// be what failed (issue 9: offline is not dead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Postpone {
    /// When the root failed as `offline`: the resolver could not work, or there was no route.
    WhenOffline,
    /// Also when the root failed at name resolution or connection (a "no such host" too) and
    /// no server has answered lately (the daemon, composting).
    UnlessNetworkKnownUp,
}

/// Captures `plan` and records it as a new snapshot, unless `postpone` says the root's failure
/// may be the network's: then nothing is recorded and the result is [`Taken::Offline`]. A
/// `stop` request ends it early, recorded as incomplete. With a browser among the `tools`,
/// pages are rendered as `plan.browser` says, and screenshots taken as `plan.screenshots` says.
pub async fn take(
    tools: Tools<'_>,
    store: &Store,
    plan: &Plan,
    progress: &dyn Progress,
    postpone: Postpone,
    stop: &Stop,
) -> Result<Taken, store::Error> {
    let started = Timestamp::now();
    let id = record::new_id(&plan.root, started);
    let dir = store.snapshot_dir(&id);
    let root = crawl::without_fragment(&plan.root);
    let journal = crate::fsutil::off_executor(|| {
        journal::SnapshotJournal::create(
            store,
            journal::Start {
                id: id.clone(),
                root: root.clone(),
                depth: plan.depth,
                max_pages: plan.max_pages,
                started,
            },
        )
    })?;
    crate::failpoint::pause_at("snapshot:started");
    let fetcher = tools.fetcher;
    let mut crawl = crawl::crawl(tools, store, plan, progress, stop, &journal).await?;
    if plan.screenshots && stop.reason().is_none() {
        screenshots(tools.browser, store, &mut crawl).await?;
    }
    let doubtful = |reason: &str| match postpone {
        Postpone::WhenOffline => reason == "offline",
        Postpone::UnlessNetworkKnownUp => {
            reason == "offline"
                || (crate::fetch::is_network_level(reason) && !fetcher.network_known_up())
        }
    };
    if crawl.captures.is_empty() {
        let offline = crawl
            .failures
            .iter()
            .find(|f| f.url == root && doubtful(&f.reason))
            .map(|f| Taken::Offline(f.detail.clone()));
        let stopped = stop
            .reason()
            .filter(|_| crawl.incomplete.is_some())
            .map(Taken::Stopped);
        if let Some(taken) = offline.or(stopped) {
            journal.remove();
            let _ = std::fs::remove_dir(&dir);
            return Ok(taken);
        }
    }
    let snapshot = Snapshot {
        id,
        root,
        depth: plan.depth,
        max_pages: plan.max_pages,
        started,
        finished: Timestamp::now(),
        new_bytes: crawl.new_bytes,
        reused_bytes: crawl.reused_bytes,
        offline: None,
        captures: crawl.captures,
        failures: crawl.failures,
        offline_files: Vec::new(),
        incomplete: crawl.incomplete,
        not_listed: crawl.not_listed,
        problems: crawl.problems,
    };
    let snapshot = crate::fsutil::off_executor(|| finish(store, snapshot))?;
    journal.remove();
    Ok(Taken::Recorded(Box::new(snapshot)))
}

/// Builds the offline copy of a snapshot whose captures are stored, makes every object
/// durable and writes the record (blocking work): the end of a capture, of an interrupted
/// snapshot's recovery, and of an import.
pub(crate) fn finish(store: &Store, mut snapshot: Snapshot) -> Result<Snapshot, store::Error> {
    let dir = store.snapshot_dir(&snapshot.id);
    let built = offline::build(store, &dir, &mut snapshot.captures);
    snapshot.offline_files = built.derived;
    snapshot.problems.extend(built.problems);
    snapshot.offline = snapshot
        .captures
        .iter()
        .find(|c| c.url == snapshot.root && c.role == Role::Page)
        .and_then(|c| c.offline.clone());
    store
        .objects()
        .sync()
        .map_err(store::Error::io("sync the objects of", store.root()))?;
    crate::failpoint::pause_at("snapshot:before-record");
    record::save(store, &snapshot)?;
    store.update_totals()?;
    Ok(snapshot)
}

/// A screenshot of every page the crawl did not render, taken in the browser from the
/// snapshot's own captures (what was kept, not what the server says now).
async fn screenshots(
    browser: Option<&Launcher>,
    store: &Store,
    crawl: &mut crawl::Crawl,
) -> Result<(), store::Error> {
    let Some(browser) = browser else {
        crawl.problems.push(crate::report::Problem::new(
            "screenshots",
            "not taken: the browser is turned off",
        ));
        return Ok(());
    };
    let replay = render::Replay::new(store, &crawl.captures);
    let wanted = crate::browser::Wanted {
        screenshot: true,
        full_page: true,
        scroll: true,
        ..Default::default()
    };
    let pages: Vec<(usize, url::Url)> = crawl
        .captures
        .iter()
        .enumerate()
        .filter(|(_, c)| c.role == Role::Page && c.rendered.is_none())
        .filter(|(_, c)| c.media_type.as_deref().is_none_or(|m| m.contains("html")))
        .filter_map(|(i, c)| url::Url::parse(&c.final_url).ok().map(|u| (i, u)))
        .collect();
    let mut taken = Vec::new();
    for (i, url) in pages {
        match browser.render(&replay, &url, wanted).await {
            Ok(render) => taken.push((i, render)),
            Err(e) => {
                let missing = matches!(e, crate::browser::BrowserError::NotFound);
                crawl.problems.push(crate::report::Problem::new(
                    url.as_str(),
                    format!("no screenshot: {e}"),
                ));
                if missing {
                    break;
                }
            }
        }
    }
    drop(replay);
    for (i, render) in taken {
        let kept = crate::fsutil::off_executor(|| render::keep(store, &render))?;
        crawl.captures[i].rendered = Some(kept);
    }
    Ok(())
}

/// Records the snapshots a killed process left unfinished, from their journals: what they
/// captured, marked incomplete, with an offline copy. The caller holds the archive's lock.
/// Returns their ids.
pub fn finish_interrupted(store: &Store) -> Result<Vec<String>, store::Error> {
    let mut done = Vec::new();
    for left in journal::left(store) {
        let snapshot = Snapshot {
            id: left.start.id.clone(),
            root: left.start.root,
            depth: left.start.depth,
            max_pages: left.start.max_pages,
            started: left.start.started,
            finished: Timestamp::now(),
            new_bytes: 0,
            reused_bytes: left.captures.iter().map(|c| c.size).sum(),
            offline: None,
            captures: left.captures,
            failures: left.failures,
            offline_files: Vec::new(),
            incomplete: Some(
                "interrupted: vaultkeep stopped before the snapshot finished; what it captured is kept"
                    .into(),
            ),
            not_listed: 0,
            problems: Vec::new(),
        };
        tracing::warn!(id = %snapshot.id, captures = snapshot.captures.len(), "finishing a snapshot left by an interrupted run");
        finish(store, snapshot)?;
        journal::remove(store, &left.start.id);
        done.push(left.start.id);
    }
    Ok(done)
}
