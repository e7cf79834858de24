//! `remote verify`: every object on the remote hashes to its name, and every record there
//! (each device's segments, each snapshot) names only objects the remote holds.

use std::collections::HashSet;

use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::{Client, RemoteError, keys, segments};
use crate::digest::Digest;
use crate::report::Problem;
use crate::snapshot::record::Snapshot;

/// What `remote verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// The remote.
    pub remote: String,
    /// Objects read and hashed.
    pub objects: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Devices and their record lines.
    pub devices: Vec<(String, usize)>,
    /// Snapshot records read.
    pub snapshots: usize,
    /// Damage: objects that do not hash to their names, records naming missing objects,
    /// unreadable records, holes between segments.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether anything is damaged.
    pub fn damaged(&self) -> bool {
        !self.problems.is_empty()
    }
}

/// Reads the whole remote.
pub async fn verify(client: &Client, concurrency: usize) -> Result<VerifyReport, RemoteError> {
    let mut report = VerifyReport {
        remote: client.name().to_string(),
        ..VerifyReport::default()
    };
    let listed = client.list(keys::OBJECTS).await?;
    let mut held: HashSet<Digest> = HashSet::new();
    let checks: Vec<(String, Result<u64, RemoteError>)> = stream::iter(listed)
        .map(|(key, _)| async move {
            let result = async {
                let want = keys::digest_of(&key).ok_or_else(|| RemoteError::Damaged {
                    remote: client.name().to_string(),
                    key: key.clone(),
                    detail: "not named by a sha256".into(),
                })?;
                let bytes = client.get(&key).await?;
                if Digest::of(&bytes) != want {
                    return Err(RemoteError::Damaged {
                        remote: client.name().to_string(),
                        key: key.clone(),
                        detail: "its bytes do not match its name".into(),
                    });
                }
                Ok(bytes.len() as u64)
            }
            .await;
            (key, result)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for (key, result) in checks {
        match result {
            Ok(len) => {
                report.objects += 1;
                report.bytes += len;
                if let Some(d) = keys::digest_of(&key) {
                    held.insert(d);
                }
            }
            Err(RemoteError::Damaged { detail, .. }) => {
                report.problems.push(Problem::new(key, detail));
            }
            Err(e) => return Err(e),
        }
    }
    for device in client.folders(keys::DEVICES).await? {
        let (segs, _) = segments(client, &device).await?;
        let mut at = 0;
        let mut lines = 0;
        for (offset, len) in segs {
            let key = keys::segment(&device, offset);
            if offset != at {
                report.problems.push(Problem::new(
                    &key,
                    format!("starts at byte {offset}; the segments before end at {at}"),
                ));
            }
            at = offset + len;
            let bytes = client.get(&key).await?;
            for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
                if line.is_empty() {
                    continue;
                }
                lines += 1;
                match serde_json::from_slice::<crate::store::VersionRecord>(line) {
                    Ok(r) if held.contains(&r.sha256) => {}
                    Ok(r) => report.problems.push(Problem::new(
                        format!("{key}:{}", n + 1),
                        format!("names object {} that the remote does not hold", r.sha256),
                    )),
                    Err(e) => report.problems.push(Problem::new(
                        format!("{key}:{}", n + 1),
                        format!("not a version record: {e}"),
                    )),
                }
            }
        }
        report.devices.push((device, lines));
    }
    for (key, _) in client.list(keys::SNAPSHOTS).await? {
        let bytes = client.get(&key).await?;
        match serde_json::from_slice::<Snapshot>(&bytes) {
            Ok(s) => {
                report.snapshots += 1;
                for c in &s.captures {
                    for d in c.objects() {
                        if !held.contains(&d) {
                            report.problems.push(Problem::new(
                                &key,
                                format!("{} names object {d} that the remote does not hold", c.url),
                            ));
                        }
                    }
                }
            }
            Err(e) => report
                .problems
                .push(Problem::new(&key, format!("not a snapshot record: {e}"))),
        }
    }
    Ok(report)
}
