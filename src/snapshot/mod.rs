//! Snapshots of web pages: capture a page with its requisites (or a bounded same-site crawl)
//! into the archive, and build an offline copy that opens from the file system.
//!
//! Order (design.md, "The archive"): captured bodies and the derived offline files are stored
//! as objects and linked into `snapshots/<id>/offline/`, the objects are made durable, and only
//! then is `snapshots/<id>/snapshot.json`, the record, written.

pub mod crawl;
pub mod css;
pub mod html;
pub mod offline;
pub mod paths;
pub mod plan;
pub mod record;

use jiff::Timestamp;

use crate::fetch::Fetcher;
use crate::store::{self, Store};

pub use crawl::{NoProgress, Plan, Progress};
pub use record::{Capture, FailedUrl, Role, Snapshot, Summary};

/// What became of a snapshot.
#[derive(Debug)]
pub enum Taken {
    /// It was recorded (its root may still have failed: that is a record of what happened).
    Recorded(Snapshot),
    /// Its root failed before any server answered while the network was not known to work:
    /// nothing was recorded; try again when the network is back (issue 9).
    Offline(String),
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
/// may be the network's: then nothing is recorded and the result is [`Taken::Offline`].
pub async fn take(
    fetcher: &Fetcher,
    store: &Store,
    plan: &Plan,
    progress: &dyn Progress,
    postpone: Postpone,
) -> Result<Taken, store::Error> {
    let started = Timestamp::now();
    let id = record::new_id(&plan.root, started);
    let dir = record::snapshots_dir(store).join(&id);
    let mut crawl = crawl::crawl(fetcher, store, plan, progress).await?;
    let root_key = crawl::without_fragment(&plan.root);
    let doubtful = |reason: &str| match postpone {
        Postpone::WhenOffline => reason == "offline",
        Postpone::UnlessNetworkKnownUp => {
            reason == "offline"
                || (crate::fetch::is_network_level(reason) && !fetcher.network_known_up())
        }
    };
    if crawl.captures.is_empty()
        && let Some(f) = crawl
            .failures
            .iter()
            .find(|f| f.url == root_key && doubtful(&f.reason))
    {
        return Ok(Taken::Offline(f.detail.clone()));
    }
    let offline_files = offline::build(store, &dir, &mut crawl.captures)?;
    store
        .objects()
        .sync()
        .map_err(store::Error::io("sync the objects of", store.root()))?;
    let root = crawl::without_fragment(&plan.root);
    let entry = crawl
        .captures
        .iter()
        .find(|c| c.url == root && c.role == Role::Page)
        .and_then(|c| c.offline.clone());
    let snapshot = Snapshot {
        id,
        root,
        depth: plan.depth,
        max_pages: plan.max_pages,
        started,
        finished: Timestamp::now(),
        new_bytes: crawl.new_bytes,
        reused_bytes: crawl.reused_bytes,
        offline: entry,
        captures: crawl.captures,
        failures: crawl.failures,
        offline_files,
    };
    record::save(store, &snapshot)?;
    Ok(Taken::Recorded(snapshot))
}
