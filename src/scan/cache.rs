//! What each note says, cached by content address in `cache/notes.json`, so an unchanged note
//! is not parsed again. Derived data: a missing or unreadable cache only costs time.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::fsutil::write_derived;
use crate::note::NoteFacts;

/// Bumped whenever [`NoteFacts`] or the way notes are read changes, so old caches are dropped.
pub(super) const FORMAT: u32 = 2;

#[derive(Deserialize)]
struct CacheFile {
    format: u32,
    notes: HashMap<Digest, NoteFacts>,
}

#[derive(Serialize)]
struct CacheRef<'a> {
    format: u32,
    notes: &'a HashMap<Digest, NoteFacts>,
}

pub(super) fn path(cache_dir: &Path) -> PathBuf {
    cache_dir.join("notes.json")
}

pub(super) fn load(cache_dir: &Path) -> HashMap<Digest, NoteFacts> {
    let Ok(bytes) = fs::read(path(cache_dir)) else {
        return HashMap::new();
    };
    match serde_json::from_slice::<CacheFile>(&bytes) {
        Ok(c) if c.format == FORMAT => c.notes,
        _ => HashMap::new(),
    }
}

pub(super) fn save(cache_dir: &Path, notes: &HashMap<Digest, NoteFacts>) -> std::io::Result<()> {
    fs::create_dir_all(cache_dir)?;
    let bytes = serde_json::to_vec(&CacheRef {
        format: FORMAT,
        notes,
    })
    .map_err(std::io::Error::other)?;
    write_derived(&path(cache_dir), &bytes)
}
