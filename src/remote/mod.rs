//! One archive for every device: push and pull through S3-compatible object storage
//! (issue 13), the way restic and kopia share a repository, without locks.
//!
//! The remote, under its prefix:
//!
//! | key | what |
//! |---|---|
//! | `objects/ab/ab12…` | the objects, as in the archive: content-addressed, created with a conditional create (`If-None-Match: *`), so uploads are idempotent and never clobber |
//! | `devices/<device>/device.json` | a device that shares the remote: its name |
//! | `devices/<device>/versions/<offset>.jsonl` | that device's version records, as segments of its `versions.jsonl` (the bytes from that offset), each written once and never rewritten: no key is written by two devices |
//! | `snapshots/<id>.json` | snapshot records (ids are unique: time, host, salt) |
//! | `gc/<time>.json` | objects `remote gc` found unnamed, deleted by a run a grace period later |
//!
//! Order, as in the archive: objects first, then the records that reference them. A push or
//! pull killed at any instant leaves nothing half-visible (an object appears under its key
//! only when complete, a segment only after its objects), and the next run completes it.

mod client;
mod gc;
mod pull;
mod push;
mod verify;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

pub use client::{Client, RemoteError};
pub use gc::gc;
pub use pull::pull;
pub use push::push;
pub use verify::verify;

use crate::digest::Digest;
use crate::store::{Doc, Event, Store, VersionRecord};

/// This archive on the remote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Device {
    /// Its id on the remote: its name and a salt (`laptop-3f2a9c`).
    pub id: String,
    /// The name it was given (`[remote] device`, or the host name).
    pub name: String,
}

/// This archive's device, made on first use (`device.json`).
pub fn device(store: &Store, name: Option<&str>) -> Result<Device, crate::store::Error> {
    if let Some(d) = store.read_doc::<Device>(Doc::Device) {
        return Ok(d);
    }
    let name = name
        .map(str::to_string)
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "device".into());
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let salt = uuid::Uuid::new_v4().simple().to_string();
    let device = Device {
        id: format!("{}-{}", safe.trim_matches('-'), &salt[..6]),
        name,
    };
    store.write_doc(Doc::Device, &device)?;
    Ok(device)
}

/// Keys of the remote, relative to its prefix.
pub(crate) mod keys {
    use crate::digest::Digest;

    /// The objects' folder.
    pub const OBJECTS: &str = "objects";
    /// The devices' folder.
    pub const DEVICES: &str = "devices";
    /// The snapshot records' folder.
    pub const SNAPSHOTS: &str = "snapshots";

    /// An object.
    pub fn object(d: &Digest) -> String {
        let hex = d.to_hex();
        format!("{OBJECTS}/{}/{hex}", &hex[..2])
    }

    /// The digest an object key names.
    pub fn digest_of(key: &str) -> Option<Digest> {
        key.rsplit('/').next()?.parse().ok()
    }

    /// A device's description.
    pub fn device(id: &str) -> String {
        format!("{DEVICES}/{id}/device.json")
    }

    /// A device's version segments.
    pub fn segments(id: &str) -> String {
        format!("{DEVICES}/{id}/versions")
    }

    /// The segment of a device's log starting at byte `offset`.
    pub fn segment(id: &str, offset: u64) -> String {
        format!("{}/{offset:016x}.jsonl", segments(id))
    }

    /// The offset a segment key starts at.
    pub fn segment_offset(key: &str) -> Option<u64> {
        let name = key.rsplit('/').next()?.strip_suffix(".jsonl")?;
        u64::from_str_radix(name, 16).ok()
    }

    /// A snapshot record.
    pub fn snapshot(id: &str) -> String {
        format!("{SNAPSHOTS}/{id}.json")
    }

    /// The id a snapshot key names.
    pub fn snapshot_id(key: &str) -> Option<String> {
        key.rsplit('/')
            .next()?
            .strip_suffix(".json")
            .map(str::to_string)
    }
}

/// A device's segments on the remote, in order, and where its pushed log ends.
pub(crate) async fn segments(
    client: &Client,
    device: &str,
) -> Result<(Vec<(u64, u64)>, u64), RemoteError> {
    let mut segs: Vec<(u64, u64)> = client
        .list(&keys::segments(device))
        .await?
        .into_iter()
        .filter_map(|(k, m)| keys::segment_offset(&k).map(|o| (o, m.size)))
        .collect();
    segs.sort();
    let end = segs.iter().map(|(o, len)| o + len).max().unwrap_or(0);
    Ok((segs, end))
}

/// Two devices whose newest versions of a file differ: both are kept, and said.
#[derive(Debug, Clone, Serialize)]
pub struct Divergence {
    /// The vault file.
    pub path: String,
    /// Its newest content here.
    pub here: Digest,
    /// The other device.
    pub device: String,
    /// Its newest content there.
    pub there: Digest,
}

/// Files two devices both changed, each to content the other never recorded: both versions
/// are kept; this says so. (A device that only lags behind, its newest version one this
/// device recorded too, has not diverged.)
pub fn divergences(store: &Store) -> Result<Vec<Divergence>, crate::store::Error> {
    /// Per path: every content it had, and its newest while it lives; folded a record at a
    /// time (a device's log holds every version it ever recorded).
    type Files = HashMap<String, (HashSet<Digest>, Option<Digest>)>;
    fn read(journal: &crate::store::Journal) -> Result<Files, crate::store::Error> {
        let mut files: Files = HashMap::new();
        journal
            .visit(
                0,
                0,
                |_| true,
                |_, r: VersionRecord| {
                    if let (Event::Renamed, Some(from)) = (r.event, &r.from)
                        && let Some(f) = files.get_mut(from)
                    {
                        f.1 = None;
                    }
                    let f = files.entry(r.path).or_default();
                    f.0.insert(r.sha256);
                    f.1 = (r.event != Event::Deleted).then_some(r.sha256);
                },
            )
            .map_err(crate::store::Error::io("read", journal.path()))?;
        Ok(files)
    }
    let mine = read(&store.versions())?;
    let mut out = Vec::new();
    for device in store.peers() {
        let theirs = read(&store.peer_log(&device))?;
        let theirs: BTreeMap<String, _> = theirs.into_iter().collect();
        for (path, (their_all, their_newest)) in theirs {
            let Some((my_all, Some(here))) = mine.get(&path) else {
                continue;
            };
            let Some(there) = their_newest else {
                continue;
            };
            if !their_all.contains(here) && !my_all.contains(&there) {
                out.push(Divergence {
                    path,
                    here: *here,
                    device: device.clone(),
                    there,
                });
            }
        }
    }
    Ok(out)
}

/// What is ahead and behind on each side.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The remote.
    pub remote: String,
    /// This device.
    pub device: String,
    /// Objects here the remote lacks.
    pub objects_to_push: usize,
    /// Their bytes.
    pub bytes_to_push: u64,
    /// Bytes of this device's records not pushed yet.
    pub record_bytes_to_push: u64,
    /// Snapshots here the remote lacks.
    pub snapshots_to_push: usize,
    /// Other devices, with the bytes of their records not pulled yet.
    pub devices: Vec<PeerStatus>,
    /// Snapshots on the remote this archive lacks.
    pub snapshots_to_pull: usize,
    /// Files whose newest versions differ between devices.
    pub diverged: Vec<Divergence>,
}

/// Another device, seen from here.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    /// Its id.
    pub device: String,
    /// Bytes of its records on the remote.
    pub record_bytes: u64,
    /// Of those, not pulled yet.
    pub record_bytes_to_pull: u64,
}

/// The objects the remote holds.
pub(crate) async fn remote_objects(client: &Client) -> Result<HashSet<Digest>, RemoteError> {
    Ok(client
        .list(keys::OBJECTS)
        .await?
        .into_iter()
        .filter_map(|(k, _)| keys::digest_of(&k))
        .collect())
}

/// The snapshots whose records the remote holds.
pub(crate) async fn remote_snapshots(client: &Client) -> Result<HashSet<String>, RemoteError> {
    Ok(client
        .list(keys::SNAPSHOTS)
        .await?
        .into_iter()
        .filter_map(|(k, _)| keys::snapshot_id(&k))
        .collect())
}

/// Compares the archive with the remote.
pub async fn status(
    client: &Client,
    store: &Store,
    me: &Device,
) -> Result<StatusReport, RemoteError> {
    let remote_objects = remote_objects(client).await?;
    let mut objects_to_push = 0;
    let mut bytes_to_push = 0;
    for (d, at) in push::local_objects(store)? {
        if !remote_objects.contains(&d) {
            objects_to_push += 1;
            bytes_to_push += at.size();
        }
    }
    let (_, pushed) = segments(client, &me.id).await?;
    let own = store
        .versions()
        .len()
        .map_err(crate::store::Error::io("read", store.versions().path()))?;
    let remote_snapshots = remote_snapshots(client).await?;
    let local_snapshots: HashSet<String> = store
        .snapshot_ids()
        .into_iter()
        .filter(|id| store.has_snapshot_record(id))
        .collect();
    let mut devices = Vec::new();
    for id in client.folders(keys::DEVICES).await? {
        if id == me.id {
            continue;
        }
        let (_, end) = segments(client, &id).await?;
        let have = store.peer_log(&id).len().unwrap_or(0);
        devices.push(PeerStatus {
            device: id,
            record_bytes: end,
            record_bytes_to_pull: end.saturating_sub(have),
        });
    }
    Ok(StatusReport {
        remote: client.name().to_string(),
        device: me.id.clone(),
        objects_to_push,
        bytes_to_push,
        record_bytes_to_push: own.saturating_sub(pushed),
        snapshots_to_push: local_snapshots.difference(&remote_snapshots).count(),
        devices,
        snapshots_to_pull: remote_snapshots.difference(&local_snapshots).count(),
        diverged: divergences(store)?,
    })
}
