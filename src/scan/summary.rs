//! The scan report: counts, external URLs, unresolved and ambiguous links, composted profiles.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use rayon::prelude::*;

use crate::digest::Digest;
use crate::links::{Destination, FileIndex, LinkKind, Resolution};
use crate::note::NoteFacts;
use crate::report::Problem;
use crate::store::{self, Doc, Store};

/// What `vaultkeep scan` reports (its `--json` output): what the notes say, and what this
/// run recorded.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScanReport {
    /// Notes, assets, links, URLs, unresolved and ambiguous links, composted profiles, and
    /// every problem (files that could not be read included).
    #[serde(flatten)]
    pub summary: Summary,
    /// New version records written by this run.
    pub recorded: usize,
    /// Those records by event (`created`, `modified`, `renamed`, `deleted`).
    pub events: BTreeMap<String, usize>,
    /// Bytes of new objects stored by this run.
    pub new_bytes: u64,
    /// Changes this run found but did not record: a scan beside the running daemon, which
    /// records them itself.
    #[serde(default)]
    pub unrecorded: usize,
    /// Beside the running daemon: how many paths it reported as changed since it last
    /// recorded them, the only ones this run looked at (the daemon vouched for every other
    /// file). Absent when every file was looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon_reported: Option<usize>,
    /// The length of each list (a brief report lists only the first few items).
    pub totals: Totals,
}

/// How many items each list of a report has in full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Distinct external URLs.
    pub urls: usize,
    /// Unresolved links.
    pub unresolved: usize,
    /// Ambiguous links.
    pub ambiguous: usize,
    /// Composted profiles.
    pub composted: usize,
    /// Problems.
    pub problems: usize,
}

/// What the notes say, across the vault: the part of a report that depends only on the
/// vault's files and their content (and on the day, for composting), so it can be cached.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Notes.
    pub notes: usize,
    /// Assets.
    pub assets: usize,
    /// Links by kind.
    pub links: BTreeMap<String, usize>,
    /// Distinct external URLs.
    pub urls: Vec<String>,
    /// Unresolved links.
    pub unresolved: Vec<Unresolved>,
    /// Ambiguous links.
    pub ambiguous: Vec<Ambiguous>,
    /// Composted profiles.
    pub composted: Vec<Composted>,
    /// Notes that could not be read as notes.
    pub problems: Vec<Problem>,
}

/// Items each list keeps in a brief report.
pub(super) const BRIEF_ITEMS: usize = 10;

impl Summary {
    /// The length of each list.
    pub fn totals(&self) -> Totals {
        Totals {
            urls: self.urls.len(),
            unresolved: self.unresolved.len(),
            ambiguous: self.ambiguous.len(),
            composted: self.composted.len(),
            problems: self.problems.len(),
        }
    }

    /// The same with every list cut to its first few items.
    pub fn brief(&self) -> Summary {
        fn first<T: Clone>(v: &[T]) -> Vec<T> {
            v[..v.len().min(BRIEF_ITEMS)].to_vec()
        }
        Summary {
            notes: self.notes,
            assets: self.assets,
            links: self.links.clone(),
            urls: first(&self.urls),
            unresolved: first(&self.unresolved),
            ambiguous: first(&self.ambiguous),
            composted: first(&self.composted),
            problems: first(&self.problems),
        }
    }
}

/// The vault's files (paths and contents) as one number, added up a file at a time in path
/// order as a scan meets them.
#[derive(Default)]
pub(super) struct FilesHash {
    hash: rustc_hash::FxHasher,
    count: usize,
}

impl FilesHash {
    pub(super) fn add(&mut self, file: &super::ScannedFile) {
        use std::hash::Hash;
        file.path.hash(&mut self.hash);
        file.sha256.map(|d| *d.as_bytes()).hash(&mut self.hash);
        self.count += 1;
    }

    /// Files added.
    pub(super) fn count(&self) -> usize {
        self.count
    }
}

/// What a cached summary was computed from: the version log's length (every content change
/// appends to it), the files listed, the day, this program's version and its reading options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Key {
    program: String,
    max_note_bytes: u64,
    log_end: u64,
    files: usize,
    files_hash: u64,
    today: String,
}

impl Key {
    pub(super) fn new(
        log_end: u64,
        files: FilesHash,
        today: jiff::civil::Date,
        max_note_bytes: u64,
    ) -> Key {
        use std::hash::Hasher;
        Key {
            program: env!("CARGO_PKG_VERSION").to_string(),
            max_note_bytes,
            log_end,
            files: files.count,
            files_hash: files.hash.finish(),
            today: today.to_string(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Cached<T> {
    key: Key,
    summary: T,
}

#[derive(Serialize, Deserialize)]
struct BriefCache {
    totals: Totals,
    summary: Summary,
}

fn load<T: serde::de::DeserializeOwned>(store: &Store, doc: Doc, key: &Key) -> Option<T> {
    let cached: Cached<T> = store.read_doc(doc)?;
    (cached.key == *key).then_some(cached.summary)
}

pub(super) fn load_full(store: &Store, key: &Key) -> Option<Summary> {
    load(store, Doc::Summary, key)
}

pub(super) fn load_brief(store: &Store, key: &Key) -> Option<(Summary, Totals)> {
    load::<BriefCache>(store, Doc::SummaryBrief, key).map(|b| (b.summary, b.totals))
}

/// Saves the full summary, and the brief one made from it; a failure only costs time.
pub(super) fn save_full(store: &Store, key: &Key, summary: &Summary) {
    save(store, Doc::Summary, key, summary);
    save_brief(store, key, &summary.brief(), summary.totals());
}

/// Saves the brief summary.
pub(super) fn save_brief(store: &Store, key: &Key, summary: &Summary, totals: Totals) {
    let brief = BriefCache {
        totals,
        summary: summary.clone(),
    };
    save(store, Doc::SummaryBrief, key, &brief);
}

fn save<T: Serialize>(store: &Store, doc: Doc, key: &Key, summary: &T) {
    let cached = Cached {
        key: key.clone(),
        summary,
    };
    if let Err(e) = store.write_doc(doc, &cached) {
        tracing::warn!("cannot save the scan summary: {}", crate::report::chain(&e));
    }
}

/// An internal link that resolves to no file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unresolved {
    /// The note holding it.
    pub note: String,
    /// The target as written.
    pub target: String,
    /// Its line in the note.
    pub line: usize,
    /// `not found`, or `outside the vault` (never followed).
    pub reason: String,
}

/// A link whose name several files share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ambiguous {
    /// The note holding it.
    pub note: String,
    /// The target as written.
    pub target: String,
    /// Its line in the note.
    pub line: usize,
    /// The file Obsidian opens (nearest the vault root).
    pub resolved: String,
    /// Every file of that name.
    pub candidates: Vec<String>,
}

/// A profile whose organization has ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Composted {
    /// The profile note.
    pub note: String,
    /// The rule that says so.
    pub reason: String,
}

/// How many notes and assets a vault holds.
pub(super) struct Counts {
    pub notes: usize,
    pub assets: usize,
}

/// Reads what the notes say, across the vault: `notes` are the notes' positions in `index`
/// with their content addresses, and `facts` gives each note's facts by content.
/// Notes are read in parallel blocks; the lists keep the notes' order, and at most `limit`
/// items each (the totals count them all), so a brief summary holds little however large
/// the vault.
pub(super) fn summarize(
    counts: Counts,
    notes: &[(u32, Digest)],
    index: &FileIndex,
    facts: impl Fn(&Digest) -> Result<NoteFacts, store::Error> + Sync,
    today: jiff::civil::Date,
    limit: Option<usize>,
) -> Result<(Summary, Totals), store::Error> {
    let mut all = Tally::new(limit);
    all.summary.notes = counts.notes;
    all.summary.assets = counts.assets;
    // A few blocks per thread at a time, added up as they come: the parts held stay few.
    let group = 512 * 4 * rayon::current_num_threads();
    for notes in notes.chunks(group) {
        let parts = notes
            .par_chunks(512)
            .map(|block| {
                let mut part = Tally::new(limit);
                let mut memo = HashMap::new();
                for (note, digest) in block {
                    let note = index.path(*note as usize);
                    part.note(index, note, &facts(digest)?, today, &mut memo);
                }
                Ok(part)
            })
            .collect::<Result<Vec<Tally>, store::Error>>()?;
        for part in parts {
            all.add(part);
        }
    }
    Ok(all.finish())
}

/// A summary being counted: lists cut at `limit`, every item counted.
struct Tally {
    summary: Summary,
    totals: Totals,
    urls: BTreeSet<String>,
    limit: usize,
}

fn keep<T>(list: &mut Vec<T>, count: &mut usize, limit: usize, item: T) {
    *count += 1;
    if list.len() < limit {
        list.push(item);
    }
}

impl Tally {
    fn new(limit: Option<usize>) -> Tally {
        Tally {
            summary: Summary {
                links: LinkKind::ALL
                    .iter()
                    .map(|k| (k.name().to_string(), 0))
                    .collect(),
                ..Summary::default()
            },
            totals: Totals::default(),
            urls: BTreeSet::new(),
            limit: limit.unwrap_or(usize::MAX),
        }
    }

    fn add(&mut self, part: Tally) {
        let (s, t, limit) = (&mut self.summary, &mut self.totals, self.limit);
        for (kind, n) in part.summary.links {
            *s.links.entry(kind).or_default() += n;
        }
        self.urls.extend(part.urls);
        fn append<T>(list: &mut Vec<T>, more: Vec<T>, limit: usize) {
            let room = limit.saturating_sub(list.len());
            list.extend(more.into_iter().take(room));
        }
        append(&mut s.unresolved, part.summary.unresolved, limit);
        append(&mut s.ambiguous, part.summary.ambiguous, limit);
        append(&mut s.composted, part.summary.composted, limit);
        append(&mut s.problems, part.summary.problems, limit);
        t.unresolved += part.totals.unresolved;
        t.ambiguous += part.totals.ambiguous;
        t.composted += part.totals.composted;
        t.problems += part.totals.problems;
    }

    fn finish(mut self) -> (Summary, Totals) {
        self.totals.urls = self.urls.len();
        self.summary.urls = self.urls.into_iter().take(self.limit).collect();
        (self.summary, self.totals)
    }

    fn problem(&mut self, note: &str, message: String) {
        let item = Problem::new(note, message);
        keep(
            &mut self.summary.problems,
            &mut self.totals.problems,
            self.limit,
            item,
        );
    }

    /// Counts one note.
    fn note<'a>(
        &mut self,
        index: &FileIndex,
        note: &'a str,
        facts: &NoteFacts,
        today: jiff::civil::Date,
        memo: &mut Memo<'a>,
    ) {
        let limit = self.limit;
        if let Some(why) = &facts.unreadable {
            self.problem(note, why.clone());
        }
        if let Some(e) = &facts.yaml_error {
            self.problem(
                note,
                format!(
                    "invalid YAML frontmatter at line {}: {}; its links in the body are still read",
                    e.line, e.message
                ),
            );
        }
        if let Some(reason) = facts.signals.judge(note, today) {
            let item = Composted {
                note: note.to_string(),
                reason,
            };
            keep(
                &mut self.summary.composted,
                &mut self.totals.composted,
                limit,
                item,
            );
        }
        let dir = note.rsplit_once('/').map_or("", |(d, _)| d);
        let (s, t) = (&mut self.summary, &mut self.totals);
        for link in &facts.links {
            *s.links.entry(link.kind.name().to_string()).or_default() += 1;
            match link.destination() {
                Destination::External(url) => {
                    if !self.urls.contains(url) {
                        self.urls.insert(url.to_string());
                    }
                }
                Destination::Internal(target) => {
                    let resolution = memo
                        .entry((dir, target.to_string()))
                        .or_insert_with(|| index.resolve(note, target));
                    match resolution {
                        Resolution::Missing | Resolution::OutsideVault => {
                            let reason = if *resolution == Resolution::OutsideVault {
                                "outside the vault"
                            } else {
                                "not found"
                            };
                            let item = Unresolved {
                                note: note.to_string(),
                                target: target.to_string(),
                                line: link.line,
                                reason: reason.to_string(),
                            };
                            keep(&mut s.unresolved, &mut t.unresolved, limit, item);
                        }
                        Resolution::Ambiguous { path, candidates } => {
                            let item = Ambiguous {
                                note: note.to_string(),
                                target: target.to_string(),
                                line: link.line,
                                resolved: path.clone(),
                                candidates: candidates.clone(),
                            };
                            keep(&mut s.ambiguous, &mut t.ambiguous, limit, item);
                        }
                        Resolution::Found { .. } | Resolution::SameNote => {}
                    }
                }
                Destination::SameNote | Destination::Other => {}
            }
        }
    }
}

/// Resolutions already made, by the note's folder and the target: notes of one folder often
/// link the same names.
type Memo<'a> = HashMap<(&'a str, String), Resolution>;
