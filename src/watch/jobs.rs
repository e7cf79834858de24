//! The daemon's background jobs, as `links check` and `compost` do them, each returning a
//! line for the log and whether the network was down.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::config::{LinksConfig, SnapshotConfig};
use crate::fetch::Fetcher;
use crate::linkcheck;
use crate::report::chain;
use crate::scan::{self, ScanOptions};
use crate::snapshot::Stop;
use crate::store::Store;

use super::schedule::Job;

/// A finished job.
#[derive(Debug)]
pub struct Done {
    /// Which job.
    pub job: Job,
    /// What to log.
    pub text: String,
    /// Whether the network was down (the job judged and marked nothing).
    pub offline: bool,
    /// Whether it failed and should be tried again later (a push or pull).
    pub failed: bool,
}

/// Checks `urls` and records the results and the verdict.
pub async fn check_links(
    fetcher: &Fetcher,
    store: &Store,
    urls: &[String],
    links: &LinksConfig,
) -> Done {
    let (text, offline) = match linkcheck::check_and_record(
        fetcher,
        store,
        urls,
        links.into(),
        false,
        links.concurrency,
    )
    .await
    {
        Ok(checked) if checked.offline => (
            format!(
                "checked {} links while the network was down: recorded as offline, nothing judged",
                checked.results.len()
            ),
            true,
        ),
        Ok(checked) => {
            let failed = checked.results.iter().filter(|r| !r.ok).count();
            (
                format!("checked {} links ({failed} failed)", checked.results.len()),
                false,
            )
        }
        Err(e) => (
            format!(
                "checked links, but cannot record the results: {}",
                chain(&e)
            ),
            false,
        ),
    };
    Done {
        job: Job::CheckLinks,
        text,
        offline,
        failed: false,
    }
}

/// Composting, as `vaultkeep compost` does it, after a scan (under `gate`, one scan at a
/// time). Its edits come back as file events and are recorded by the next scan; being
/// idempotent, they cause no further edits.
pub async fn compost(
    tools: crate::snapshot::Tools<'_>,
    store: &Store,
    vault: &Path,
    snapshot: &SnapshotConfig,
    options: &ScanOptions,
    gate: Arc<Mutex<()>>,
    stop: Stop,
) -> Done {
    let done = |text: String, offline: bool| Done {
        job: Job::Compost,
        text,
        offline,
        failed: false,
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
        Ok(Err(e)) => return done(format!("composting skipped: {}", chain(&e)), false),
        Err(e) => return done(format!("composting skipped: {}", chain(&e)), false),
    };
    let job = crate::compost::Compost {
        vault,
        store,
        tools: Some(tools),
        snapshot,
        today: options.today,
        gate: Some(&gate),
        stop,
    };
    match job.run(&view).await {
        Ok(r) => {
            let written = r.profiles.iter().filter(|p| p.result.written()).count();
            done(
                format!(
                    "composting: {} profiles, {written} marked, {} snapshots taken",
                    r.profiles.len(),
                    r.snapshots_taken
                ),
                r.offline,
            )
        }
        Err(e) => done(format!("composting failed: {}", chain(&e)), false),
    }
}

/// The remote the daemon shares the archive through.
#[derive(Clone)]
pub struct Sharing {
    /// The client.
    pub client: crate::remote::Client,
    /// This archive on it.
    pub device: crate::remote::Device,
    /// Requests at once.
    pub concurrency: usize,
}

/// Pushes what was recorded since the last push. A failure loses nothing: it is all in the
/// archive, and the next push sends it.
pub async fn push(sharing: &Sharing, store: &Store) -> Done {
    let result =
        crate::remote::push(&sharing.client, store, &sharing.device, sharing.concurrency).await;
    let (text, failed) = match result {
        Ok(r) if r.problems.is_empty() => (
            format!(
                "pushed to {}: {} objects, {} records, {} snapshots",
                r.remote, r.objects, r.records, r.snapshots
            ),
            false,
        ),
        Ok(r) => (
            format!(
                "pushed to {} with problems: {}",
                r.remote,
                r.problems
                    .iter()
                    .map(|p| format!("{}: {}", p.path, p.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            false,
        ),
        Err(e) => (format!("push failed, tried again in a minute: {e}"), true),
    };
    Done {
        job: Job::Push,
        text,
        offline: false,
        failed,
    }
}

/// Pulls what other devices recorded.
pub async fn pull(sharing: &Sharing, store: &Store) -> Done {
    let result =
        crate::remote::pull(&sharing.client, store, &sharing.device, sharing.concurrency).await;
    let (text, failed) = match result {
        Ok(r) => {
            let records: usize = r.devices.iter().map(|(_, n)| n).sum();
            let mut text = format!(
                "pulled from {}: {records} records, {} objects, {} snapshots",
                r.remote, r.objects, r.snapshots
            );
            if !r.diverged.is_empty() {
                text.push_str(&format!(
                    "; {} files differ between devices (both versions kept), e.g. {}",
                    r.diverged.len(),
                    r.diverged[0].path
                ));
            }
            (text, false)
        }
        Err(e) => (format!("pull failed, tried again in a minute: {e}"), true),
    };
    Done {
        job: Job::Pull,
        text,
        offline: false,
        failed,
    }
}
