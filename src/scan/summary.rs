//! The scan report: counts, external URLs, unresolved and ambiguous links, composted profiles.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::VaultView;
use rayon::prelude::*;

use crate::links::{Destination, LinkKind, Resolution};
use crate::note::NoteFacts;
use crate::report::Problem;
use crate::store::{Doc, Store};

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
const BRIEF_ITEMS: usize = 10;

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
        files: &[super::ScannedFile],
        today: jiff::civil::Date,
        max_note_bytes: u64,
    ) -> Key {
        use std::hash::{Hash, Hasher};
        let mut h = rustc_hash::FxHasher::default();
        for f in files {
            f.path.hash(&mut h);
            f.sha256.map(|d| *d.as_bytes()).hash(&mut h);
        }
        Key {
            program: env!("CARGO_PKG_VERSION").to_string(),
            max_note_bytes,
            log_end,
            files: files.len(),
            files_hash: h.finish(),
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

/// Saves the summary, full and brief; a failure only costs time next run.
pub(super) fn save(store: &Store, key: &Key, summary: &Summary) {
    let brief = BriefCache {
        totals: summary.totals(),
        summary: summary.brief(),
    };
    let result = store
        .write_doc(
            Doc::Summary,
            &Cached {
                key: key.clone(),
                summary,
            },
        )
        .and_then(|()| {
            store.write_doc(
                Doc::SummaryBrief,
                &Cached {
                    key: key.clone(),
                    summary: &brief,
                },
            )
        });
    if let Err(e) = result {
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

/// Reads what the notes say, across the vault. Notes are read in parallel; the lists keep
/// the notes' order.
pub fn summarize(view: &VaultView, today: jiff::civil::Date) -> Summary {
    let mut summary = Summary {
        links: LinkKind::ALL
            .iter()
            .map(|k| (k.name().to_string(), 0))
            .collect(),
        ..Summary::default()
    };
    for file in &view.files {
        match file.kind {
            crate::vault::FileKind::Note => summary.notes += 1,
            crate::vault::FileKind::Asset => summary.assets += 1,
        }
    }
    let notes: Vec<(&str, &NoteFacts)> = view.notes().collect();
    let parts: Vec<Summary> = notes
        .par_iter()
        .map_init(HashMap::new, |memo, (note, facts)| {
            summarize_note(view, note, facts, today, memo)
        })
        .collect();
    let mut urls = BTreeSet::new();
    for part in parts {
        for (kind, n) in part.links {
            *summary.links.entry(kind).or_default() += n;
        }
        urls.extend(part.urls);
        summary.unresolved.extend(part.unresolved);
        summary.ambiguous.extend(part.ambiguous);
        summary.composted.extend(part.composted);
        summary.problems.extend(part.problems);
    }
    summary.urls = urls.into_iter().collect();
    summary
}

/// Resolutions already made, by the note's folder and the target: notes of one folder often
/// link the same names.
type Memo<'a> = HashMap<(&'a str, &'a str), Resolution>;

fn summarize_note<'a>(
    view: &VaultView,
    note: &'a str,
    facts: &'a NoteFacts,
    today: jiff::civil::Date,
    memo: &mut Memo<'a>,
) -> Summary {
    let mut out = Summary::default();
    if let Some(why) = &facts.unreadable {
        out.problems.push(Problem::new(note, why.clone()));
    }
    if let Some(e) = &facts.yaml_error {
        out.problems.push(Problem::new(
            note,
            format!(
                "invalid YAML frontmatter at line {}: {}; its links in the body are still read",
                e.line, e.message
            ),
        ));
    }
    if let Some(reason) = facts.signals.judge(note, today) {
        out.composted.push(Composted {
            note: note.to_string(),
            reason,
        });
    }
    let dir = note.rsplit_once('/').map_or("", |(d, _)| d);
    for link in &facts.links {
        *out.links.entry(link.kind.name().to_string()).or_default() += 1;
        match link.destination() {
            Destination::External(url) => out.urls.push(url.to_string()),
            Destination::Internal(target) => {
                let resolution = memo
                    .entry((dir, target))
                    .or_insert_with(|| view.index.resolve(note, target));
                match resolution {
                    Resolution::Missing | Resolution::OutsideVault => {
                        out.unresolved.push(Unresolved {
                            note: note.to_string(),
                            target: target.to_string(),
                            line: link.line,
                            reason: if *resolution == Resolution::OutsideVault {
                                "outside the vault"
                            } else {
                                "not found"
                            }
                            .to_string(),
                        })
                    }
                    Resolution::Ambiguous { path, candidates } => out.ambiguous.push(Ambiguous {
                        note: note.to_string(),
                        target: target.to_string(),
                        line: link.line,
                        resolved: path.clone(),
                        candidates: candidates.clone(),
                    }),
                    Resolution::Found { .. } | Resolution::SameNote => {}
                }
            }
            Destination::SameNote | Destination::Other => {}
        }
    }
    out
}
