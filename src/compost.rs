//! Composted organizations keep their preserved copies: every external URL of a composted
//! profile gets a snapshot (its `url` site and documentation crawled), and the profile gets
//! properties that point at the copies.

use std::collections::BTreeMap;
use std::path::Path;

use futures::stream::{self, StreamExt};
use jiff::civil::Date;
use serde::Serialize;

use crate::annotate::properties::{set_properties, set_scalar};
use crate::annotate::{NoteEdit, Outcome, commit, read_text};
use crate::config::SnapshotConfig;
use crate::copies::{Copies, CopyLink, key};
use crate::note::read_note;
use crate::profiles;
use crate::report::Problem;
use crate::scan::VaultView;
use crate::snapshot::plan::plans_for_notes;
use crate::snapshot::{self, NoProgress, Plan, Postpone, Taken};
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
    /// Its last look, saved in the vault (`archived_screenshot`), when a browser made one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_look: Option<String>,
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
    /// Whether the network was down: profiles whose URLs could not be tried were left alone.
    pub offline: bool,
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
    /// What snapshots are taken with; `None` for a dry run, which takes none.
    pub tools: Option<snapshot::Tools<'a>>,
    /// What snapshots of a note capture.
    pub snapshot: &'a SnapshotConfig,
    /// The day composting is judged on.
    pub today: Date,
    /// Held while recording a note before it is edited, when other work (the daemon's scans)
    /// appends to the same archive.
    pub gate: Option<&'a std::sync::Mutex<()>>,
    /// Stops its snapshots early (recorded as incomplete).
    pub stop: crate::snapshot::Stop,
}

impl Compost<'_> {
    /// Records a vault file's bytes before they are replaced (one writer at a time beside a
    /// daemon's scans).
    fn keep_replaced(&self, path: &str, bytes: &[u8]) -> Result<(), String> {
        let _one = self
            .gate
            .map(|g| g.lock().unwrap_or_else(|e| e.into_inner()));
        crate::history::keep(self.store, path, bytes)
            .map(drop)
            .map_err(|e| crate::report::chain(&e))
    }

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
        let mut offline: BTreeMap<String, String> = BTreeMap::new();
        if let Some(tools) = self.tools {
            let store = self.store;
            let take_all = |plans: Vec<Plan>| {
                stream::iter(plans)
                    .map(|plan| async move {
                        let taken = snapshot::take(
                            tools,
                            store,
                            &plan,
                            &NoProgress,
                            Postpone::UnlessNetworkKnownUp,
                            &self.stop,
                        )
                        .await;
                        (plan, taken)
                    })
                    .buffer_unordered(4)
                    .collect::<Vec<_>>()
            };
            let mut taken = take_all(needed.into_values().collect()).await;
            // A root that failed before any server had answered looked like an offline
            // network; if other servers answered since, the network works: try those again,
            // and this time a failure is the URL's own.
            let doubted: Vec<Plan> = taken
                .iter()
                .filter(|(_, t)| matches!(t, Ok(Taken::Offline(_))))
                .map(|(p, _)| p.clone())
                .collect();
            if !doubted.is_empty() && tools.fetcher.network_known_up() {
                taken.retain(|(_, t)| !matches!(t, Ok(Taken::Offline(_))));
                taken.extend(take_all(doubted).await);
            }
            for (plan, taken) in taken {
                let snap = match taken? {
                    Taken::Recorded(snap) => snap,
                    Taken::Offline(why) => {
                        offline.insert(key(plan.root.as_str()), why);
                        continue;
                    }
                    Taken::Stopped(why) => {
                        failures.insert(key(plan.root.as_str()), why);
                        continue;
                    }
                };
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
        report.offline = !offline.is_empty();
        let looks = self.last_looks(&composted, &copies).await;
        // Reading and editing notes is blocking work: off the executor.
        report.profiles = crate::fsutil::off_executor(|| {
            composted
                .into_iter()
                .map(|(note, reason, _)| {
                    let look = looks.get(note).map(String::as_str);
                    self.mark(note, reason, &copies, &failures, &offline, look)
                })
                .collect()
        });
        Ok(report)
    }

    /// With a browser: each composted organization's last look, from the snapshot of its
    /// `url` (once: a profile with `archived_screenshot` has one).
    async fn last_looks(
        &self,
        composted: &[(&str, String, &crate::note::NoteFacts)],
        copies: &Copies,
    ) -> BTreeMap<String, String> {
        let mut looks = BTreeMap::new();
        let Some(browser) = self
            .tools
            .and_then(|t| t.browser)
            .filter(|b| b.executable().is_some())
        else {
            return looks;
        };
        let keep = |path: &str, bytes: &[u8]| self.keep_replaced(path, bytes);
        for (note, _, facts) in composted {
            let Some(url) = profiles::homepage(facts) else {
                continue;
            };
            let already = facts
                .links
                .iter()
                .any(|l| l.property.as_deref() == Some(profiles::LAST_LOOK));
            let Some(copy) = copies.get(url.as_str()).filter(|_| !already) else {
                continue;
            };
            let Ok(snapshot) = snapshot::record::load(self.store, &copy.snapshot) else {
                continue;
            };
            match profiles::last_look(
                browser, self.store, self.vault, note, &url, &snapshot, &keep,
            )
            .await
            {
                Ok(picture) => {
                    looks.insert(note.to_string(), picture);
                }
                Err(e) => tracing::warn!(%note, "no last look saved: {e}"),
            }
        }
        looks
    }

    /// Marks one profile, reading it afresh (its frontmatter is edited as it is now).
    fn mark(
        &self,
        note: &str,
        reason: String,
        copies: &Copies,
        failures: &BTreeMap<String, String>,
        offline: &BTreeMap<String, String>,
        last_look: Option<&str>,
    ) -> ProfileReport {
        let mut out = ProfileReport {
            note: note.to_string(),
            reason,
            preserved: Vec::new(),
            missing: Vec::new(),
            last_look: last_look.map(str::to_string),
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
        let plans = plans_for_notes([&facts], self.snapshot, None, 1);
        // Offline is not dead: a URL that could not be tried is not marked missing, and the
        // profile waits for a run that can reach the network (issue 9).
        if let Some(why) = plans
            .iter()
            .find_map(|p| offline.get(&key(p.root.as_str())))
        {
            out.result = Outcome::skipped(format!(
                "postponed: the network is down ({why}); run again when online"
            ));
            return out;
        }
        for plan in plans {
            let url = plan.root.to_string();
            match copies.get(&url) {
                Some(copy) => out.preserved.push(Preserved {
                    url: url.clone(),
                    captured: crate::localtime::date(copy.captured),
                    snapshot: copy.snapshot.clone(),
                    copy: CopyLink::to(&copy.entry, self.vault).as_property(),
                }),
                None => {
                    let why = failures.get(&key(&url)).cloned().unwrap_or_else(|| {
                        if self.tools.is_none() {
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
        let after = match set_properties(text, &props).and_then(|after| match last_look {
            Some(picture) => set_scalar(&after, profiles::LAST_LOOK, &format!("[[{picture}]]")),
            None => Ok(after),
        }) {
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
        let keep = |path: &str, bytes: &[u8]| self.keep_replaced(path, bytes);
        out.result = commit(self.vault, &edit, self.tools.is_none(), &keep);
        out
    }
}
