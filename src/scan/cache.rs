//! What each note says, cached by content address (the archive's note cache), so an unchanged
//! note is not parsed again. Derived data: a missing or unreadable cache only costs time.
//! The cache belongs to one program version and one set of reading options: another version,
//! or another `max_note_bytes`, reads the notes afresh.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::note::NoteFacts;
use crate::store::{self, Doc, Store};

/// What the cached facts depend on besides the notes' bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Made {
    version: String,
    max_note_bytes: u64,
}

impl Made {
    fn now(max_note_bytes: u64) -> Made {
        Made {
            version: env!("CARGO_PKG_VERSION").to_string(),
            max_note_bytes,
        }
    }
}

#[derive(Deserialize)]
struct CacheFile {
    made: Made,
    notes: HashMap<Digest, NoteFacts>,
}

#[derive(Serialize)]
struct CacheRef<'a> {
    made: Made,
    notes: &'a HashMap<Digest, NoteFacts>,
}

/// The cached facts, if they were made by this version with these options.
pub(super) fn load(store: &Store, max_note_bytes: u64) -> HashMap<Digest, NoteFacts> {
    match store.read_doc::<CacheFile>(Doc::NoteCache) {
        Some(c) if c.made == Made::now(max_note_bytes) => c.notes,
        _ => HashMap::new(),
    }
}

/// Saves the facts.
pub(super) fn save(
    store: &Store,
    max_note_bytes: u64,
    notes: &HashMap<Digest, NoteFacts>,
) -> Result<(), store::Error> {
    store.write_doc(
        Doc::NoteCache,
        &CacheRef {
            made: Made::now(max_note_bytes),
            notes,
        },
    )
}
