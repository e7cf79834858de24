//! Objects one by one, packed or loose: `archive objects` lists them, `archive cat` prints
//! one, `archive unpack` turns packs back into one file per object. Whatever `ls objects/`
//! and `sha256sum` showed before packs existed, these show now.

use std::fs;

use serde::Serialize;

use crate::digest::Digest;
use crate::store::{self, ObjectEntry, Store};

/// One object of the archive.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// Its name: the sha256 of its bytes.
    pub sha256: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Where its bytes are, relative to the archive: its own file, or a pack and the offset
    /// of its bytes (`objects/packs/<name>.pack@<offset>`).
    #[serde(rename = "where")]
    pub at: String,
}

/// Every object, sorted by name; an object stored twice (loose and packed) is listed twice.
pub fn list(store: &Store) -> Result<Vec<Listed>, store::Error> {
    let entries = store
        .objects()
        .entries()
        .map_err(store::Error::io("list the objects of", store.root()))?;
    let mut out: Vec<Listed> = entries
        .into_iter()
        .filter_map(|e| match e {
            ObjectEntry::Object(sha256, path) => Some(Listed {
                sha256,
                size: fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                at: super::shown(store, &path),
            }),
            ObjectEntry::Packed(sha256, at) => Some(Listed {
                sha256,
                size: at.len,
                at: format!("{}@{}", super::shown(store, &at.pack), at.offset),
            }),
            _ => None,
        })
        .collect();
    out.sort_by(|a, b| a.sha256.cmp(&b.sha256).then_with(|| a.at.cmp(&b.at)));
    Ok(out)
}

/// The object named by `name` (its full sha256 in hex, or a unique beginning of at least 8
/// digits), checked against its name.
pub fn cat(store: &Store, name: &str) -> Result<(Digest, Vec<u8>), CatError> {
    let digest = match name.parse::<Digest>() {
        Ok(d) => d,
        Err(_) => {
            let prefix = name.to_ascii_lowercase();
            if prefix.len() < 8 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(CatError::BadName(name.to_string()));
            }
            // Names only: no stat of every object, as listing them with sizes would take.
            let found: std::collections::BTreeSet<Digest> = store
                .objects()
                .entries()
                .map_err(store::Error::io("list the objects of", store.root()))?
                .into_iter()
                .filter_map(|e| match e {
                    ObjectEntry::Object(d, _) | ObjectEntry::Packed(d, _) => Some(d),
                    _ => None,
                })
                .filter(|d| d.to_hex().starts_with(&prefix))
                .collect();
            let mut names = found.iter();
            match (names.next(), names.next()) {
                (Some(one), None) => *one,
                (None, _) => return Err(CatError::Missing(name.to_string())),
                _ => return Err(CatError::Ambiguous(name.to_string(), found.len())),
            }
        }
    };
    let objects = store.objects();
    match objects.read(&digest) {
        Ok(bytes) => Ok((digest, bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(CatError::Missing(digest.to_hex()))
        }
        Err(e) => Err(store::Error::io("read", &objects.path(&digest))(e).into()),
    }
}

/// Why `archive cat` printed nothing.
#[derive(Debug, thiserror::Error)]
pub enum CatError {
    /// Not a sha256 or a beginning of one.
    #[error("{0:?} is not an object name: give its sha256 (64 hex digits) or at least its first 8")]
    BadName(String),
    /// No such object.
    #[error("the archive holds no object {0} (`vaultkeep archive objects` lists them)")]
    Missing(String),
    /// Several objects begin so.
    #[error("{1} objects begin with {0}: give more digits")]
    Ambiguous(String, usize),
    /// The archive could not be read, or the object is damaged.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// What `archive unpack` did.
#[derive(Debug, Default, Serialize)]
pub struct UnpackReport {
    /// Objects written as files of their own.
    pub objects: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Packs removed.
    pub packs: usize,
}

/// Writes every packed object as a file of its own, makes them durable, then removes the
/// packs. The caller holds the archive's lock. A damaged packed object stops it before any
/// pack is removed.
pub fn unpack(store: &Store) -> Result<UnpackReport, store::Error> {
    let objects = store.objects();
    let entries = objects
        .entries()
        .map_err(store::Error::io("list the objects of", store.root()))?;
    let mut report = UnpackReport::default();
    let mut packs = std::collections::BTreeSet::new();
    for entry in entries {
        let (digest, at) = match entry {
            ObjectEntry::Packed(d, at) => (d, at),
            ObjectEntry::Unfinished(path) => {
                packs.insert(path);
                continue;
            }
            _ => continue,
        };
        packs.insert(at.pack.to_path_buf());
        let bytes = at
            .read(&digest)
            .map_err(store::Error::io("read", &at.pack))?;
        if objects
            .put(&digest, &bytes)
            .map_err(store::Error::io("write", &objects.path(&digest)))?
        {
            report.objects += 1;
            report.bytes += at.len;
        }
    }
    objects
        .sync()
        .map_err(store::Error::io("sync the objects of", store.root()))?;
    for pack in packs {
        objects
            .remove_pack(&pack)
            .map_err(store::Error::io("remove", &pack))?;
        report.packs += 1;
    }
    let totals = store.count_objects()?;
    store.write_doc(store::Doc::Totals, &totals)?;
    Ok(report)
}
