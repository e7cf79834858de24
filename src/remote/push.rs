//! `remote push`: the objects the remote lacks, then this device's new records (one new
//! segment of its log), then its snapshot records, each after the objects it references.

use std::path::PathBuf;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::{Client, Device, RemoteError, keys, segments};
use crate::digest::Digest;
use crate::report::Problem;
use crate::store::{self, ObjectEntry, PackedAt, Store};

/// What a push did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushReport {
    /// The remote.
    pub remote: String,
    /// This device.
    pub device: String,
    /// Objects uploaded.
    pub objects: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Objects the remote had already.
    pub objects_present: usize,
    /// Record lines pushed.
    pub records: usize,
    /// Snapshot records pushed.
    pub snapshots: usize,
    /// What could not be pushed (a damaged local object); the rest was.
    pub problems: Vec<Problem>,
}

/// Where a local object's bytes are.
#[derive(Debug, Clone)]
pub(crate) enum Local {
    /// Its own file.
    Loose(PathBuf),
    /// Inside a pack.
    Packed(PackedAt),
}

impl Local {
    /// The object's size.
    pub(crate) fn size(&self) -> u64 {
        match self {
            Local::Loose(path) => std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            Local::Packed(at) => at.len,
        }
    }
}

/// The archive's objects, each once (loose before packed).
pub(crate) fn local_objects(store: &Store) -> Result<Vec<(Digest, Local)>, store::Error> {
    let entries = store
        .objects()
        .entries()
        .map_err(store::Error::io("list the objects of", store.root()))?;
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<(Digest, Local)> = entries
        .into_iter()
        .filter_map(|e| match e {
            ObjectEntry::Object(d, path) => Some((d, Local::Loose(path))),
            ObjectEntry::Packed(d, at) => Some((d, Local::Packed(at))),
            _ => None,
        })
        .collect();
    out.sort_by_key(|(_, at)| matches!(at, Local::Packed(_)));
    out.retain(|(d, _)| seen.insert(*d));
    Ok(out)
}

/// Pushes what the remote lacks. The caller holds the archive's lock.
pub async fn push(
    client: &Client,
    store: &Store,
    me: &Device,
    concurrency: usize,
) -> Result<PushReport, RemoteError> {
    let mut report = PushReport {
        remote: client.name().to_string(),
        device: me.id.clone(),
        ..PushReport::default()
    };
    // What to send is fixed first: records and snapshots as they are now. Their objects are
    // on disk already (objects are written before the records that name them), so they are
    // among the objects listed next.
    let (pushed, pushed_end) = segments(client, &me.id).await?;
    let log = store.versions();
    let (lines, end) = log
        .read_lines_raw(pushed_end)
        .map_err(store::Error::io("read", log.path()))?;
    let local_len = log.len().map_err(store::Error::io("read", log.path()))?;
    if local_len < pushed_end {
        return Err(RemoteError::Damaged {
            remote: client.name().to_string(),
            key: keys::segments(&me.id),
            detail: format!(
                "the remote holds {pushed_end} bytes of this device's records, the archive only {local_len}: was the archive restored from an older copy? Give it a new device (delete device.json) and push again"
            ),
        });
    }
    let snapshot_ids: Vec<String> = store
        .snapshot_ids()
        .into_iter()
        .filter(|id| store.has_snapshot_record(id))
        .collect();

    let mut remote_objects = super::remote_objects(client).await?;
    let missing: Vec<(Digest, Local)> = local_objects(store)?
        .into_iter()
        .filter(|(d, _)| !remote_objects.contains(d))
        .collect();
    report.objects_present = remote_objects.len();
    let results: Vec<_> = stream::iter(missing)
        .map(|(digest, at)| async move {
            let size = at.size();
            let sent = match at {
                Local::Loose(path) => {
                    client
                        .upload_object(&keys::object(&digest), path, size, digest)
                        .await
                }
                // Packed objects are small: read whole, checked against their name.
                Local::Packed(at) => {
                    let pack = at.pack.clone();
                    match crate::fsutil::off_executor(|| at.read(&digest)) {
                        Ok(bytes) => {
                            client
                                .create(&keys::object(&digest), Bytes::from(bytes))
                                .await
                        }
                        Err(e) => Err(RemoteError::Damaged {
                            remote: "this archive".into(),
                            key: format!("{} (object {digest})", pack.display()),
                            detail: format!("{e}; run `vaultkeep archive verify`"),
                        }),
                    }
                }
            };
            if sent.is_ok() {
                crate::failpoint::pause_at("remote:object-uploaded");
            }
            (digest, size, sent)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    crate::failpoint::pause_at("remote:objects-uploaded");
    for (digest, size, sent) in results {
        match sent {
            Ok(created) => {
                remote_objects.insert(digest);
                if created {
                    report.objects += 1;
                    report.bytes += size;
                } else {
                    report.objects_present += 1;
                }
            }
            Err(RemoteError::Damaged { key, detail, .. }) => {
                report.problems.push(Problem::new(key, detail));
            }
            Err(e) => return Err(e),
        }
    }

    // This device's new records: one segment, after every object it names is there.
    if !lines.is_empty() {
        let named = referenced(&lines);
        if let Some(d) = named.iter().find(|d| !remote_objects.contains(d)) {
            return Err(RemoteError::Damaged {
                remote: "this archive".into(),
                key: store.objects().path(d).display().to_string(),
                detail: "a recorded object is missing or damaged, so its records were not pushed; run `vaultkeep archive verify`".into(),
            });
        }
        let created = client
            .create(
                &keys::segment(&me.id, pushed_end),
                Bytes::from(lines.clone()),
            )
            .await?;
        if created {
            report.records = lines.iter().filter(|b| **b == b'\n').count();
        }
        tracing::debug!(segments = pushed.len() + 1, end, "records pushed");
    }
    if pushed.is_empty() {
        let about = serde_json::to_vec(me).unwrap_or_default();
        client
            .create(&keys::device(&me.id), Bytes::from(about))
            .await?;
    }

    // Snapshot records the remote lacks, each once its objects are there.
    let remote_snapshots = super::remote_snapshots(client).await?;
    for id in snapshot_ids {
        if remote_snapshots.contains(&id) {
            continue;
        }
        let record: crate::snapshot::record::Snapshot = match store.read_snapshot(&id) {
            Ok(r) => r,
            Err((path, message)) => {
                report
                    .problems
                    .push(Problem::new(path.display().to_string(), message));
                continue;
            }
        };
        if let Some(d) = record.objects().find(|d| !remote_objects.contains(d)) {
            report.problems.push(Problem::new(
                format!("snapshot {id}"),
                format!("not pushed: its object {d} is missing or damaged here"),
            ));
            continue;
        }
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        if client
            .create(&keys::snapshot(&id), Bytes::from(bytes))
            .await?
        {
            report.snapshots += 1;
        }
    }
    Ok(report)
}

/// The objects the version records in `lines` name.
pub(crate) fn referenced(lines: &[u8]) -> Vec<Digest> {
    lines
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice::<store::VersionRecord>(l).ok())
        .map(|r| r.sha256)
        .collect()
}
