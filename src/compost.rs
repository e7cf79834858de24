//! Composted organizations keep their preserved copies: every external URL of a composted
//! profile gets a snapshot (its `url` site and documentation crawled), and the profile gets
//! properties that point at the copies.

use std::collections::BTreeMap;
use std::path::Path;

use futures::stream::{self, StreamExt};
use jiff::civil::Date;
use serde::Serialize;

use crate::annotate::properties::set_properties;
use crate::annotate::{NoteEdit, Outcome, commit, read_text};
use crate::copies::{Copies, CopyLink, key};
use crate::fetch::Fetcher;
use crate::note::read_note;
use crate::report::Problem;
use crate::scan::VaultView;
use crate::snapshot::plan::{SnapshotConfig, plans_for_notes};
use crate::snapshot::{self, NoProgress, Plan};
use crate::store::{self, Store};

/// The original URL of each preserved copy.
pub const URLS: &str = "archived_urls";
/// The capture date of each copy (same order).
pub const DATES: &str = "archived_dates";
/// The link that opens each copy (same order).
pub const COPIES: &str = "archived_copies";
/// URLs of the profile that could not be preserved.
pub const MISSING: &str = "archive_missing";

/// What happened to one composted profile.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileReport {
    /// The profile note.
    pub note: String,
    /// Why it counts as composted.
    pub reason: String,
    /// Its preserved copies.
    pub preserved: Vec<Preserved>,
    /// Its URLs without a copy, and why.
    pub missing: Vec<Problem>,
    /// What became of the edit.
    #[serde(flatten)]
    pub result: Outcome,
}

/// One preserved copy.
#[derive(Debug, Clone, Serialize)]
pub struct Preserved {
    /// The original URL.
    pub url: String,
    /// The capture date.
    pub captured: Date,
    /// The snapshot holding it.
    pub snapshot: String,
    /// The link written into the profile.
    pub copy: String,
}

/// The result of `vaultkeep compost`.
#[derive(Debug, Default, Serialize)]
pub struct CompostReport {
    /// Every composted profile.
    pub profiles: Vec<ProfileReport>,
    /// Snapshots taken by this run.
    pub snapshots_taken: usize,
}

impl CompostReport {
    /// Whether anything failed (a URL without a copy, a profile left alone).
    pub fn failed(&self) -> bool {
        self.profiles
            .iter()
            .any(|p| !p.missing.is_empty() || p.result.failed())
    }
}

/// Settings of a compost run.
pub struct Compost<'a> {
    /// The vault folder.
    pub vault: &'a Path,
    /// The archive.
    pub store: &'a Store,
    /// The fetcher; `None` for a dry run, which takes no snapshots.
    pub fetcher: Option<&'a Fetcher>,
    /// What snapshots of a note capture.
    pub snapshot: &'a SnapshotConfig,
    /// The day composting is judged on.
    pub today: Date,
}

impl Compost<'_> {
    /// Preserves and marks every composted profile of `view`.
    pub async fn run(&self, view: &VaultView) -> Result<CompostReport, store::Error> {
        let composted: Vec<(&str, String, &crate::note::NoteFacts)> = view
            .notes()
            .filter_map(|(note, facts)| {
                facts
                    .signals
                    .judge(note, self.today)
                    .map(|r| (note, r, facts))
            })
            .collect();
        let mut copies = Copies::load(self.store);
        let mut report = CompostReport::default();
        // Every URL of every composted profile that has no copy yet, each once.
        let mut needed: BTreeMap<String, Plan> = BTreeMap::new();
        let facts = composted.iter().map(|(_, _, f)| *f);
        for plan in plans_for_notes(facts, self.snapshot, None, self.snapshot.max_pages) {
            if copies.get(plan.root.as_str()).is_none() {
                needed.entry(key(plan.root.as_str())).or_insert(plan);
            }
        }
        let mut failures: BTreeMap<String, String> = BTreeMap::new();
        if let Some(fetcher) = self.fetcher {
            let store = self.store;
            let taken: Vec<_> = stream::iter(needed.into_values())
                .map(|plan| async move { snapshot::take(fetcher, store, &plan, &NoProgress).await })
                .buffer_unordered(4)
                .collect()
                .await;
            for snap in taken {
                let snap = snap?;
                report.snapshots_taken += 1;
                if let Some(f) = snap
                    .failures
                    .iter()
                    .find(|f| key(&f.url) == key(&snap.root))
                {
                    failures.insert(key(&snap.root), f.detail.clone());
                }
                copies.add(self.store, &snap);
            }
        }
        for (note, reason, _) in composted {
            report
                .profiles
                .push(self.mark(note, reason, &copies, &failures));
        }
        Ok(report)
    }

    /// Marks one profile, reading it afresh (its frontmatter is edited as it is now).
    fn mark(
        &self,
        note: &str,
        reason: String,
        copies: &Copies,
        failures: &BTreeMap<String, String>,
    ) -> ProfileReport {
        let mut out = ProfileReport {
            note: note.to_string(),
            reason,
            preserved: Vec::new(),
            missing: Vec::new(),
            result: Outcome::default(),
        };
        let (before, text) = match read_text(self.vault, note) {
            Ok(read) => read,
            Err(skipped) => {
                out.result = skipped;
                return out;
            }
        };
        let text = text.as_str();
        let facts = read_note(text);
        for plan in plans_for_notes([&facts], self.snapshot, None, 1) {
            let url = plan.root.to_string();
            match copies.get(&url) {
                Some(copy) => out.preserved.push(Preserved {
                    url: url.clone(),
                    captured: copy
                        .captured
                        .to_zoned_datetime(jiff::tz::TimeZone::system())
                        .date(),
                    snapshot: copy.snapshot.clone(),
                    copy: CopyLink::to(&copy.entry, self.vault).as_property(),
                }),
                None => {
                    let why = failures.get(&key(&url)).cloned().unwrap_or_else(|| {
                        if self.fetcher.is_none() {
                            "no copy yet (a run without --dry-run captures it)".into()
                        } else {
                            "not captured".into()
                        }
                    });
                    out.missing.push(Problem::new(url, why));
                }
            }
        }
        let props = [
            (URLS, out.preserved.iter().map(|p| p.url.clone()).collect()),
            (
                DATES,
                out.preserved
                    .iter()
                    .map(|p| p.captured.to_string())
                    .collect(),
            ),
            (
                COPIES,
                out.preserved.iter().map(|p| p.copy.clone()).collect(),
            ),
            (
                MISSING,
                out.missing
                    .iter()
                    .map(|p| p.path.clone())
                    .collect::<Vec<_>>(),
            ),
        ];
        let after = match set_properties(text, &props) {
            Ok(a) => a,
            Err(e) => {
                out.result = Outcome::skipped(e.to_string());
                return out;
            }
        };
        let edit = NoteEdit {
            path: note.to_string(),
            before,
            after: after.into_bytes(),
        };
        out.result = commit(self.vault, &edit, self.fetcher.is_none());
        out
    }
}
