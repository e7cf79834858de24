//! A snapshot's record: `snapshots/<id>/snapshot.json`, written whole and last, after the
//! objects it points at are durable. Snapshots are never replaced; many of one URL coexist.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::fetch::Hop;
use crate::store::{self, Store};

/// What a capture was fetched as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The root or a page reached by the crawl.
    Page,
    /// A page embedded in a page (`iframe`).
    Frame,
    /// A style sheet.
    Stylesheet,
    /// Anything else a page needs.
    Requisite,
}

/// One HTTP exchange held by the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capture {
    /// The URL asked for.
    pub url: String,
    /// The URL that answered, after redirects.
    pub final_url: String,
    /// Redirects on the way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirects: Vec<Hop>,
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// When it was fetched.
    pub time: Timestamp,
    /// The body's object.
    pub sha256: Digest,
    /// The body's size.
    pub size: u64,
    /// Media type from `Content-Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// What it was fetched as.
    pub role: Role,
    /// Link hops from the root.
    pub depth: u32,
    /// Its file in the offline copy, relative to the snapshot folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<String>,
    /// Other URLs recorded as this same page, not fetched again (`/index.html` for `/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// For a page rendered in the browser: what the browser made of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendered: Option<Rendered>,
}

impl Capture {
    /// Every object the capture refers to: its body, and what the browser made of it.
    pub fn objects(&self) -> impl Iterator<Item = Digest> + '_ {
        let rendered = self
            .rendered
            .iter()
            .flat_map(|r| [r.dom, r.screenshot, r.pdf]);
        std::iter::once(self.sha256).chain(rendered.flatten())
    }
}

/// A page as the browser rendered it (issue 11). The captured response stays as it was; these
/// are objects beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendered {
    /// The page's DOM after its scripts ran, as HTML with the scripts removed: the offline
    /// copy is made from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dom: Option<Digest>,
    /// The address the rendered DOM's relative links resolve against (scripts may change it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// A full-page screenshot (PNG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshot: Option<Digest>,
    /// The page printed as a PDF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdf: Option<Digest>,
    /// The page's width, in CSS pixels.
    pub width: u32,
    /// Its height.
    pub height: u32,
    /// Its title as the browser saw it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// When it was rendered.
    pub time: Timestamp,
}

/// A URL that could not be captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedUrl {
    /// The URL.
    pub url: String,
    /// `no such host`, `offline`, `refused`, `timeout`, `too large`, `http`, `robots`,
    /// `private`, `redirects`, `unsupported`, `limit`, `bad response`, `interrupted`, `store`
    /// or `error`.
    pub reason: String,
    /// The details, for a person.
    pub detail: String,
    /// What it was wanted as.
    pub role: Role,
    /// When it failed.
    pub time: Timestamp,
}

/// A file of the offline copy that vaultkeep derived (rewritten HTML and CSS), kept as an
/// object too, so a copy unchanged since the last snapshot costs no space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineFile {
    /// Relative to the snapshot folder.
    pub path: String,
    /// Its object.
    pub sha256: Digest,
}

/// The record of one snapshot (`archive show --json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// `20261127T194501Z-handbook.ouishare.net-3f2a`: sortable by time, readable in `ls`.
    pub id: String,
    /// The URL it was made for.
    pub root: String,
    /// Link hops followed from the root (0: the page and its requisites).
    pub depth: u32,
    /// Most pages fetched.
    pub max_pages: usize,
    /// When it started.
    pub started: Timestamp,
    /// When it finished.
    pub finished: Timestamp,
    /// Bytes of captured bodies the archive did not hold before.
    pub new_bytes: u64,
    /// Bytes of captured bodies the archive already held.
    pub reused_bytes: u64,
    /// The entry page of the offline copy, relative to the snapshot folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<String>,
    /// Every capture.
    pub captures: Vec<Capture>,
    /// Every URL that could not be captured.
    pub failures: Vec<FailedUrl>,
    /// Derived files of the offline copy.
    #[serde(default)]
    pub offline_files: Vec<OfflineFile>,
    /// Why the snapshot stopped before it was done (a limit, Ctrl-C or SIGTERM, the daemon
    /// stopping, the process killed); absent for a complete one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
    /// URLs over a limit that were counted but not listed in `failures`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub not_listed: u64,
    /// Files of the offline copy that could not be written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<crate::report::Problem>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A snapshot in a few numbers (`archive snapshot --json`, `archive list --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The snapshot's id.
    pub id: String,
    /// Its root URL.
    pub root: String,
    /// Start time.
    pub started: Timestamp,
    /// End time.
    pub finished: Timestamp,
    /// Pages captured (the root and the pages of a crawl, frames included).
    pub pages: usize,
    /// Other captures (style sheets, images, scripts, fonts...).
    pub resources: usize,
    /// URLs that could not be captured.
    pub failures: usize,
    /// New bytes stored.
    pub new_bytes: u64,
    /// Bytes already held.
    pub reused_bytes: u64,
    /// The entry page of the offline copy, as a path on disk; absent if the root failed.
    pub offline: Option<PathBuf>,
    /// Why it stopped before it was done, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
    /// Why the root could not be captured, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_failure: Option<String>,
}

impl Snapshot {
    /// Every object the record refers to: bodies, renderings, derived offline files.
    pub fn objects(&self) -> impl Iterator<Item = Digest> + '_ {
        self.captures
            .iter()
            .flat_map(Capture::objects)
            .chain(self.offline_files.iter().map(|f| f.sha256))
    }

    /// Whether the root itself was captured.
    pub fn root_captured(&self) -> bool {
        self.offline.is_some()
    }

    /// The numbers, with the offline entry page under `dir` (the snapshot's folder).
    pub fn summary(&self, dir: &Path) -> Summary {
        let pages = self
            .captures
            .iter()
            .filter(|c| matches!(c.role, Role::Page | Role::Frame))
            .count();
        Summary {
            id: self.id.clone(),
            root: self.root.clone(),
            started: self.started,
            finished: self.finished,
            pages,
            resources: self.captures.len() - pages,
            failures: self.failures.len() + self.not_listed as usize,
            new_bytes: self.new_bytes,
            reused_bytes: self.reused_bytes,
            offline: self.offline.as_ref().map(|o| dir.join(o)),
            incomplete: self.incomplete.clone(),
            root_failure: self.root_failure().map(|f| f.detail.clone()),
        }
    }

    /// The failure of the root itself, if it failed.
    pub fn root_failure(&self) -> Option<&FailedUrl> {
        if self.root_captured() {
            return None;
        }
        let root = url::Url::parse(&self.root).ok();
        self.failures.iter().find(|f| {
            f.url == self.root
                || url::Url::parse(&f.url)
                    .ok()
                    .is_some_and(|u| Some(u) == root)
        })
    }
}

/// Writes a snapshot's record (durably: the offline copy and objects are already in place).
/// Compact JSON for big crawls (a hundred thousand failures), readable for the others.
pub fn save(store: &Store, snapshot: &Snapshot) -> Result<(), store::Error> {
    let big = snapshot.captures.len() + snapshot.failures.len() > 2000;
    store.write_snapshot(&snapshot.id, snapshot, big)
}

/// Every recorded snapshot, newest first. A folder without a record (an interrupted
/// snapshot) is skipped; an unreadable record is returned as an error string with its path.
pub fn load_all(store: &Store) -> Vec<Result<Snapshot, (PathBuf, String)>> {
    let mut ids: Vec<String> = store
        .snapshot_ids()
        .into_iter()
        .filter(|id| store.has_snapshot_record(id))
        .collect();
    ids.sort_by(|a, b| b.cmp(a));
    let mut all: Vec<_> = ids.iter().map(|id| load(store, id)).collect();
    // Ids sort by the second they started; within one second, by when they started.
    all.sort_by(|a, b| match (a, b) {
        (Ok(a), Ok(b)) => b.started.cmp(&a.started).then_with(|| b.id.cmp(&a.id)),
        _ => std::cmp::Ordering::Equal,
    });
    all
}

/// One snapshot's record.
pub fn load(store: &Store, id: &str) -> Result<Snapshot, (PathBuf, String)> {
    store.read_snapshot(id)
}

/// The snapshot whose id is `id` or starts with it, if exactly one does.
pub fn find(store: &Store, id: &str) -> Result<String, String> {
    let mut matches: Vec<String> = store
        .snapshot_ids()
        .into_iter()
        .filter(|name| name.starts_with(id) && store.has_snapshot_record(name))
        .collect();
    if matches.iter().any(|m| m == id) {
        return Ok(id.to_string());
    }
    match matches.len() {
        0 => Err(format!("no snapshot {id} in {}", store.root().display())),
        1 => Ok(matches.remove(0)),
        n => Err(format!(
            "{n} snapshots start with {id}; give more of the id"
        )),
    }
}

/// A new snapshot id for `root` at `time`.
pub fn new_id(root: &url::Url, time: Timestamp) -> String {
    let stamp = time.strftime("%Y%m%dT%H%M%SZ").to_string();
    let host: String = root
        .host_str()
        .unwrap_or("x")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let salt =
        Digest::of(format!("{root} {} {}", time.as_nanosecond(), std::process::id()).as_bytes());
    format!("{stamp}-{host}-{}", &salt.to_hex()[..4])
}
