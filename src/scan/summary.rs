//! The scan report: counts, external URLs, unresolved and ambiguous links, composted profiles.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::VaultView;
use crate::links::{Destination, LinkKind, Resolution};
use crate::report::Problem;

/// What `vaultkeep scan` reports (its `--json` output).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScanReport {
    /// Notes in the vault.
    pub notes: usize,
    /// Assets in the vault.
    pub assets: usize,
    /// Links by kind (`wikilink`, `embed`, `markdown`, `image`, `autolink`, `bare_url`, `frontmatter`).
    pub links: BTreeMap<String, usize>,
    /// Distinct external URLs, sorted.
    pub urls: Vec<String>,
    /// Internal links that lead nowhere.
    pub unresolved: Vec<Unresolved>,
    /// Links by name that several files answer to.
    pub ambiguous: Vec<Ambiguous>,
    /// Profiles whose organization has ended.
    pub composted: Vec<Composted>,
    /// New version records written by this run.
    pub recorded: usize,
    /// Those records by event (`created`, `modified`, `renamed`, `deleted`).
    pub events: BTreeMap<String, usize>,
    /// Bytes of new objects stored by this run.
    pub new_bytes: u64,
    /// Files that could not be read or understood.
    pub problems: Vec<Problem>,
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

pub(super) fn summarize(view: &VaultView, today: jiff::civil::Date) -> ScanReport {
    let mut report = ScanReport {
        links: LinkKind::ALL
            .iter()
            .map(|k| (k.name().to_string(), 0))
            .collect(),
        ..ScanReport::default()
    };
    let mut urls = BTreeSet::new();
    for file in &view.files {
        match file.kind {
            crate::vault::FileKind::Note => report.notes += 1,
            crate::vault::FileKind::Asset => report.assets += 1,
        }
    }
    for (note, facts) in view.notes() {
        if let Some(why) = &facts.unreadable {
            report.problems.push(Problem::new(note, why.clone()));
        }
        if let Some(e) = &facts.yaml_error {
            report.problems.push(Problem::new(
                note,
                format!(
                    "invalid YAML frontmatter at line {}: {}; its links in the body are still read",
                    e.line, e.message
                ),
            ));
        }
        if let Some(reason) = facts.signals.judge(note, today) {
            report.composted.push(Composted {
                note: note.to_string(),
                reason,
            });
        }
        for link in &facts.links {
            *report
                .links
                .entry(link.kind.name().to_string())
                .or_default() += 1;
            match link.destination() {
                Destination::External(url) => {
                    urls.insert(url.to_string());
                }
                Destination::Internal(target) => match view.index.resolve(note, target) {
                    resolution @ (Resolution::Missing | Resolution::OutsideVault) => {
                        let outside = resolution == Resolution::OutsideVault;
                        report.unresolved.push(Unresolved {
                            note: note.to_string(),
                            target: target.to_string(),
                            line: link.line,
                            reason: if outside {
                                "outside the vault"
                            } else {
                                "not found"
                            }
                            .to_string(),
                        });
                    }
                    Resolution::Ambiguous { path, candidates } => {
                        report.ambiguous.push(Ambiguous {
                            note: note.to_string(),
                            target: target.to_string(),
                            line: link.line,
                            resolved: path,
                            candidates,
                        })
                    }
                    Resolution::Found { .. } | Resolution::SameNote => {}
                },
                Destination::SameNote | Destination::Other => {}
            }
        }
    }
    report.urls = urls.into_iter().collect();
    report
}
