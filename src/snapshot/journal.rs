//! A snapshot's journal, `snapshots/<id>/journal.jsonl`, written while it runs: a start line,
//! then its captures and failures as they land, each batch after the objects it names are
//! durable. The record (`snapshot.json`) is written at the end and the journal removed. After a
//! `kill -9` the journal is what remains: the next writer finishes the record from it, marked
//! incomplete, so nothing captured is lost (issue 8).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::record::{Capture, FailedUrl};
use crate::store::{self, Journal, Store};

/// What a snapshot set out to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Start {
    /// Its id.
    pub id: String,
    /// The root URL.
    pub root: String,
    /// Crawl depth.
    pub depth: u32,
    /// Most pages.
    pub max_pages: usize,
    /// When it started.
    pub started: Timestamp,
}

/// One line of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    /// The first line.
    Start(Start),
    /// A capture whose object is durable.
    Capture(Box<Capture>),
    /// A URL that failed.
    Failure(FailedUrl),
}

/// An open journal.
pub struct SnapshotJournal {
    journal: Journal,
}

impl SnapshotJournal {
    /// Creates the snapshot's folder and its journal with the start line.
    pub fn create(store: &Store, start: Start) -> Result<SnapshotJournal, store::Error> {
        let dir = store.snapshot_dir(&start.id);
        std::fs::create_dir_all(&dir).map_err(store::Error::io("create", &dir))?;
        let journal = store.snapshot_journal(&start.id);
        journal
            .append(&[Line::Start(start)])
            .map_err(store::Error::io("write", journal.path()))?;
        Ok(SnapshotJournal { journal })
    }

    /// Appends lines (made durable with one fsync). The objects they name must be durable.
    pub fn append(&self, lines: &[Line]) -> Result<(), store::Error> {
        self.journal
            .append(lines)
            .map(drop)
            .map_err(store::Error::io("append to", self.journal.path()))
    }

    /// Removes the journal once the record is written.
    pub fn remove(self) {
        let _ = std::fs::remove_file(self.journal.path());
    }
}

/// What a journal left by an interrupted snapshot holds.
#[derive(Debug)]
pub struct Left {
    /// Its start line.
    pub start: Start,
    /// Its captures.
    pub captures: Vec<Capture>,
    /// Its failures.
    pub failures: Vec<FailedUrl>,
}

/// The journals of snapshots that have no record: interrupted before they finished.
pub fn left(store: &Store) -> Vec<Left> {
    let mut out = Vec::new();
    for id in store.snapshot_ids() {
        if store.has_snapshot_record(&id) {
            continue;
        }
        let journal = store.snapshot_journal(&id);
        if !journal.path().is_file() {
            continue;
        }
        let Ok(read) = journal.read::<Line>() else {
            continue;
        };
        let mut start = None;
        let (mut captures, mut failures) = (Vec::new(), Vec::new());
        for (_, line) in read.records {
            match line {
                Line::Start(s) => start = Some(s),
                Line::Capture(c) => captures.push(*c),
                Line::Failure(f) => failures.push(f),
            }
        }
        if let Some(start) = start {
            out.push(Left {
                start,
                captures,
                failures,
            });
        }
    }
    out
}

/// Removes the journal of snapshot `id` (once its record is written).
pub fn remove(store: &Store, id: &str) {
    let _ = std::fs::remove_file(store.snapshot_journal(id).path());
}
