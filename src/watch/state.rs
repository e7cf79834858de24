//! What the daemon has to remember across restarts (its snapshot queue) and what it tells
//! `vaultkeep status` (`daemon.json`): both whole files, replaced atomically.

use std::collections::VecDeque;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::store::{self, Doc, Store};

/// A snapshot waiting to be taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// The root URL.
    pub url: String,
    /// Crawl depth.
    pub depth: u32,
    /// Most pages.
    pub max_pages: usize,
    /// When it was queued.
    pub queued: Timestamp,
    /// `new` (no snapshot yet) or `stale` (the newest is too old).
    pub why: String,
}

/// The snapshot queue, `archive/queue.json`: survives restarts and `kill -9` (an entry leaves
/// only once its snapshot is recorded).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Queue {
    /// Waiting, oldest first.
    pub items: VecDeque<Queued>,
}

impl Queue {
    /// The saved queue, or an empty one.
    pub fn load(store: &Store) -> Queue {
        store.read_doc(Doc::Queue).unwrap_or_default()
    }

    /// Saves the queue (durably: it is the daemon's promise to take these snapshots).
    pub fn save(&self, store: &Store) -> Result<(), store::Error> {
        store.write_doc(Doc::Queue, self)
    }

    /// Queues a URL unless it is already waiting.
    pub fn push(&mut self, item: Queued) -> bool {
        if self.items.iter().any(|q| q.url == item.url) {
            return false;
        }
        self.items.push_back(item);
        true
    }

    /// Removes a URL.
    pub fn remove(&mut self, url: &str) {
        self.items.retain(|q| q.url != url);
    }
}

/// One line of the daemon's recent history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Line {
    /// When.
    pub time: Timestamp,
    /// What.
    pub text: String,
}

/// What the daemon last said about itself: `archive/daemon.json`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct DaemonState {
    /// Its process id.
    pub pid: u32,
    /// When it started.
    pub since: Option<Timestamp>,
    /// When this file was written.
    pub updated: Option<Timestamp>,
    /// Scans run since it started.
    pub scans: u64,
    /// Versions recorded since it started.
    pub recorded: u64,
    /// Snapshots taken since it started.
    pub snapshots: u64,
    /// Recent events, newest last.
    pub last_events: VecDeque<Line>,
    /// Recent errors, newest last.
    pub last_errors: VecDeque<Line>,
    /// When the links were last checked.
    pub links_checked: Option<Timestamp>,
    /// When the composted profiles were last marked.
    pub composted: Option<Timestamp>,
    /// Whether the network seems down: snapshots, link checks and composting wait.
    #[serde(default)]
    pub offline: bool,
}

/// Lines kept in each list.
const KEEP: usize = 20;

impl DaemonState {
    /// The last saved state, or an empty one.
    pub fn load(store: &Store) -> DaemonState {
        store.read_doc(Doc::Daemon).unwrap_or_default()
    }

    /// Saves the state (derived: no fsync).
    pub fn save(&mut self, store: &Store) {
        self.updated = Some(Timestamp::now());
        if let Err(e) = store.write_doc(Doc::Daemon, self) {
            tracing::warn!(
                "cannot save the daemon's state: {}",
                crate::report::chain(&e)
            );
        }
    }

    /// Remembers an event.
    pub fn event(&mut self, text: impl Into<String>) {
        let text = text.into();
        tracing::info!("{text}");
        push(&mut self.last_events, text);
    }

    /// Remembers an error.
    pub fn error(&mut self, text: impl Into<String>) {
        let text = text.into();
        tracing::error!("{text}");
        push(&mut self.last_errors, text);
    }
}

fn push(list: &mut VecDeque<Line>, text: String) {
    list.push_back(Line {
        time: Timestamp::now(),
        text,
    });
    while list.len() > KEEP {
        list.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_survives_a_restart_and_holds_each_url_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _lock) = Store::open_for_writing(dir.path(), "test").unwrap();
        let mut q = Queue::default();
        let item = |url: &str| Queued {
            url: url.into(),
            depth: 0,
            max_pages: 1,
            queued: Timestamp::UNIX_EPOCH,
            why: "new".into(),
        };
        assert!(q.push(item("https://a.org/")));
        assert!(!q.push(item("https://a.org/")));
        q.push(item("https://b.org/"));
        q.save(&store).unwrap();
        let mut back = Queue::load(&store);
        assert_eq!(back.items.len(), 2);
        back.remove("https://a.org/");
        assert_eq!(back.items[0].url, "https://b.org/");
    }
}
