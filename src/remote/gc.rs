//! `remote gc`: mark and sweep with a grace period, as kopia and rustic do. An object no
//! record names is first marked (`gc/<time>.json`); a later run, at least the grace period
//! after the mark, deletes it if still nothing names it and it is older than the grace
//! period. A device that found an object already there and is about to name it in a record
//! pushes that record long before then, so no object another device is about to reference
//! is deleted.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use serde::Serialize;

use super::{Client, RemoteError, keys, segments};
use crate::digest::Digest;
use crate::snapshot::record::Snapshot;

/// The marks' folder.
const MARKS: &str = "gc";

/// What `remote gc` did (or, dry, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// The remote.
    pub remote: String,
    /// Objects on the remote.
    pub objects: usize,
    /// Objects some record names.
    pub referenced: usize,
    /// Objects deleted: marked at least a grace period ago and still unnamed.
    pub deleted: usize,
    /// Their bytes.
    pub deleted_bytes: u64,
    /// Unnamed objects marked now, deleted by a run at least a grace period from now.
    pub marked: usize,
    /// Unnamed objects younger than the grace period: left alone.
    pub young: usize,
}

/// Every object the remote's records name.
async fn referenced(client: &Client) -> Result<HashSet<Digest>, RemoteError> {
    let mut named = HashSet::new();
    for device in client.folders(keys::DEVICES).await? {
        let (segs, _) = segments(client, &device).await?;
        for (offset, _) in segs {
            let bytes = client.get(&keys::segment(&device, offset)).await?;
            named.extend(super::push::referenced(&bytes));
        }
    }
    for (key, _) in client.list(keys::SNAPSHOTS).await? {
        let bytes = client.get(&key).await?;
        match serde_json::from_slice::<Snapshot>(&bytes) {
            Ok(s) => named.extend(s.objects()),
            // An unreadable record may name anything: nothing is deleted.
            Err(e) => {
                return Err(RemoteError::Damaged {
                    remote: client.name().to_string(),
                    key,
                    detail: format!(
                        "not a snapshot record ({e}); gc deletes nothing until it is fixed"
                    ),
                });
            }
        }
    }
    Ok(named)
}

/// Marks and sweeps. With `dry_run`, deletes and marks nothing, and says what it would do.
pub async fn gc(client: &Client, grace: Duration, dry_run: bool) -> Result<GcReport, RemoteError> {
    let now = Timestamp::now();
    let mut report = GcReport {
        remote: client.name().to_string(),
        ..GcReport::default()
    };
    let listed: HashMap<Digest, (u64, Timestamp)> = client
        .list(keys::OBJECTS)
        .await?
        .into_iter()
        .filter_map(|(k, m)| {
            let d = keys::digest_of(&k)?;
            let t = Timestamp::from_second(m.last_modified.timestamp()).ok()?;
            Some((d, (m.size, t)))
        })
        .collect();
    report.objects = listed.len();
    let named = referenced(client).await?;
    report.referenced = listed.keys().filter(|d| named.contains(d)).count();
    let old = |t: Timestamp| now.duration_since(t).unsigned_abs() >= grace;

    // Sweep what earlier runs marked, a grace period ago or more.
    let mut still_marked: HashSet<Digest> = HashSet::new();
    for (key, meta) in client.list(MARKS).await? {
        let Ok(marked_at) = Timestamp::from_second(meta.last_modified.timestamp()) else {
            continue;
        };
        let bytes = client.get(&key).await?;
        let digests: Vec<Digest> = serde_json::from_slice(&bytes).unwrap_or_default();
        if !old(marked_at) {
            still_marked.extend(digests);
            continue;
        }
        for d in digests {
            let Some(&(size, modified)) = listed.get(&d) else {
                continue;
            };
            if named.contains(&d) || !old(modified) {
                continue;
            }
            if !dry_run {
                client.delete(&keys::object(&d)).await?;
            }
            report.deleted += 1;
            report.deleted_bytes += size;
        }
        if !dry_run {
            client.delete(&key).await?;
        }
    }
    // Mark what nothing names now.
    let mut mark: Vec<Digest> = Vec::new();
    for (d, &(_, modified)) in &listed {
        if named.contains(d) || still_marked.contains(d) {
            continue;
        }
        if old(modified) {
            mark.push(*d);
        } else {
            report.young += 1;
        }
    }
    mark.sort();
    report.marked = mark.len();
    if !dry_run && !mark.is_empty() {
        let key = format!(
            "{MARKS}/{}-{}.json",
            now.as_second(),
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        let body = serde_json::to_vec(&mark).unwrap_or_default();
        client.create(&key, Bytes::from(body)).await?;
    }
    Ok(report)
}
