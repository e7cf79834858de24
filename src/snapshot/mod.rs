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

/// Captures `plan` and records it as a new snapshot.
pub async fn take(
    fetcher: &Fetcher,
    store: &Store,
    plan: &Plan,
    progress: &dyn Progress,
) -> Result<Snapshot, store::Error> {
    let started = Timestamp::now();
    let id = record::new_id(&plan.root, started);
    let dir = record::snapshots_dir(store).join(&id);
    let mut crawl = crawl::crawl(fetcher, store, plan, progress).await?;
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
    Ok(snapshot)
}
