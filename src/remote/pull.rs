//! `remote pull`: the other devices' new record segments and the snapshots this archive
//! lacks, with every object they name (fetched, checked against its name, made durable)
//! before the records are added; offline copies are rebuilt from the objects.

use std::collections::HashSet;

use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::{Client, Device, Divergence, RemoteError, divergences, keys, segments};
use crate::digest::Digest;
use crate::report::Problem;
use crate::snapshot::record::Snapshot;
use crate::store::{self, Store};

/// What a pull did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PullReport {
    /// The remote.
    pub remote: String,
    /// Other devices and the record lines pulled from each.
    pub devices: Vec<(String, usize)>,
    /// Objects fetched.
    pub objects: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Snapshots added (with offline copies).
    pub snapshots: usize,
    /// Files whose newest versions differ between devices: both are kept.
    pub diverged: Vec<Divergence>,
    /// What could not be pulled; the rest was.
    pub problems: Vec<Problem>,
}

/// Pulls what other devices pushed. The caller holds the archive's lock.
pub async fn pull(
    client: &Client,
    store: &Store,
    me: &Device,
    concurrency: usize,
) -> Result<PullReport, RemoteError> {
    let mut report = PullReport {
        remote: client.name().to_string(),
        ..PullReport::default()
    };
    // New segments of each other device, in order from where this archive stopped.
    let mut segments_in: Vec<(String, Vec<u8>)> = Vec::new();
    for device in client.folders(keys::DEVICES).await? {
        if device == me.id {
            continue;
        }
        let have = store.peer_log(&device).len().unwrap_or(0);
        let (segs, _) = segments(client, &device).await?;
        let mut bytes = Vec::new();
        let mut at = have;
        for (offset, len) in segs {
            if offset + len <= at {
                continue;
            }
            if offset > at {
                report.problems.push(Problem::new(
                    keys::segment(&device, at),
                    "a segment is missing on the remote; later ones wait for it".to_string(),
                ));
                break;
            }
            let got = client.get(&keys::segment(&device, offset)).await?;
            // A segment that overlaps what is here already (never written so, but cheap to
            // tolerate): only its new part.
            bytes.extend_from_slice(&got[(at - offset) as usize..]);
            at = offset + got.len() as u64;
        }
        if !bytes.is_empty() {
            segments_in.push((device, bytes));
        }
    }
    // Snapshots this archive lacks.
    let local: HashSet<String> = store.snapshot_ids().into_iter().collect();
    let mut snapshots_in: Vec<Snapshot> = Vec::new();
    for (key, _) in client.list(keys::SNAPSHOTS).await? {
        let Some(id) = keys::snapshot_id(&key) else {
            continue;
        };
        if local.contains(&id) {
            continue;
        }
        let bytes = client.get(&key).await?;
        match serde_json::from_slice::<Snapshot>(&bytes) {
            Ok(s) if s.id == id => snapshots_in.push(s),
            _ => report.problems.push(Problem::new(
                key,
                "not a snapshot record: skipped".to_string(),
            )),
        }
    }

    // Every object they name that this archive lacks: fetched and checked first.
    let mut wanted: HashSet<Digest> = HashSet::new();
    for (_, lines) in &segments_in {
        wanted.extend(super::push::referenced(lines));
    }
    for s in &snapshots_in {
        wanted.extend(s.captures.iter().flat_map(|c| c.objects()));
    }
    wanted.retain(|d| !store.objects().contains(d));
    let fetched: Vec<(Digest, Result<u64, RemoteError>)> = stream::iter(wanted)
        .map(|d| async move {
            let result = async {
                let bytes = client.get(&keys::object(&d)).await?;
                if Digest::of(&bytes) != d {
                    return Err(RemoteError::Damaged {
                        remote: client.name().to_string(),
                        key: keys::object(&d),
                        detail: "its bytes do not match its name".into(),
                    });
                }
                let store = store.clone();
                let len = bytes.len() as u64;
                tokio::task::spawn_blocking(move || store.objects().put(&d, &bytes))
                    .await
                    .map_err(|e| RemoteError::Unreachable {
                        remote: "this archive".into(),
                        detail: e.to_string(),
                    })?
                    .map_err(|e| {
                        RemoteError::Local(store::Error::io(
                            "write",
                            std::path::Path::new("objects"),
                        )(e))
                    })?;
                Ok(len)
            }
            .await;
            (d, result)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut missing: HashSet<Digest> = HashSet::new();
    for (d, result) in fetched {
        match result {
            Ok(len) => {
                report.objects += 1;
                report.bytes += len;
            }
            Err(e @ RemoteError::Damaged { .. }) => {
                report
                    .problems
                    .push(Problem::new(keys::object(&d), e.to_string()));
                missing.insert(d);
            }
            Err(RemoteError::Unreachable { detail, .. }) if detail.contains("not found") => {
                report.problems.push(Problem::new(
                    keys::object(&d),
                    "named by a record but missing on the remote".to_string(),
                ));
                missing.insert(d);
            }
            Err(e) => return Err(e),
        }
    }
    crate::fsutil::off_executor(|| store.objects().sync())
        .map_err(store::Error::io("sync the objects of", store.root()))?;

    // Then the records: a device's segment only whole, with all its objects here.
    for (device, lines) in segments_in {
        if let Some(d) = super::push::referenced(&lines)
            .iter()
            .find(|d| missing.contains(d))
        {
            report.problems.push(Problem::new(
                format!("records of {device}"),
                format!("not added yet: object {d} could not be fetched"),
            ));
            continue;
        }
        let journal = store.peer_log(&device);
        crate::fsutil::off_executor(|| journal.append_raw(&lines))
            .map_err(store::Error::io("append to", journal.path()))?;
        let count = lines.iter().filter(|b| **b == b'\n').count();
        report.devices.push((device, count));
    }
    for snapshot in snapshots_in {
        if let Some(d) = snapshot.objects().find(|d| missing.contains(d)) {
            report.problems.push(Problem::new(
                format!("snapshot {}", snapshot.id),
                format!("not added yet: object {d} could not be fetched"),
            ));
            continue;
        }
        let id = snapshot.id.clone();
        match crate::fsutil::off_executor(|| crate::snapshot::finish(store, snapshot)) {
            Ok(_) => report.snapshots += 1,
            Err(e) => report.problems.push(Problem::new(
                format!("snapshot {id}"),
                crate::report::chain(&e),
            )),
        }
    }
    report.diverged = divergences(store)?;
    Ok(report)
}
