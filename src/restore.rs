//! Dead links come back from the local archive: each note that references a dead URL with a
//! local copy gets a link to the copy beside the original, which stays.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;

use crate::annotate::properties::{EditError, set_properties};
use crate::annotate::suffix::{archived_suffix, insert_after};
use crate::annotate::{NoteEdit, Outcome, commit, read_text};
use crate::compost;
use crate::copies::{Copies, CopyLink, key};
use crate::linkcheck::{self, Reference, Rule};
use crate::links::{Destination, LinkKind};
use crate::note::read_note;
use crate::scan::VaultView;
use crate::store::{self, Store};

/// Suffix of the sibling property that holds copies of a frontmatter URL (`url` →
/// `url_archived`).
pub const SIBLING: &str = "_archived";

/// How a note refers to the copy of a dead URL.
#[derive(Debug, Clone)]
pub struct Replacement {
    /// Capture date (`2026-11-27`).
    pub date: String,
    /// The link to the copy.
    pub link: CopyLink,
}

/// `text` with every dead link pointed at its copy: ` ([archived DATE](LINK))` after a link in
/// the body, a `<property>_archived` property beside a frontmatter URL. Links in code are not
/// links, and vaultkeep's own properties are left out. Returns the URLs restored.
pub fn restore_text(
    text: &str,
    dead: &HashMap<String, Replacement>,
) -> Result<(String, Vec<String>), EditError> {
    let facts = read_note(text);
    let mut inserts = Vec::new();
    let mut siblings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut restored = Vec::new();
    for link in &facts.links {
        let Destination::External(url) = link.destination() else {
            continue;
        };
        let Some(rep) = dead.get(&key(url)) else {
            continue;
        };
        match link.kind {
            LinkKind::BareUrl | LinkKind::Autolink | LinkKind::Markdown | LinkKind::Image => {
                inserts.push((
                    link.range.end,
                    archived_suffix(&rep.date, &rep.link.as_href()),
                ));
            }
            LinkKind::Frontmatter => {
                let top = link
                    .property
                    .as_deref()
                    .unwrap_or("")
                    .split('.')
                    .next()
                    .unwrap_or("");
                if top.is_empty() || is_ours(top) {
                    continue;
                }
                let values = siblings.entry(format!("{top}{SIBLING}")).or_default();
                let value = rep.link.as_property();
                if !values.contains(&value) {
                    values.push(value);
                }
            }
            LinkKind::Wikilink | LinkKind::Embed => continue,
        }
        restored.push(key(url));
    }
    let mut out = insert_after(text, &inserts);
    if !siblings.is_empty() {
        let props: Vec<(&str, Vec<String>)> = siblings
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        out = set_properties(&out, &props)?;
    }
    restored.sort();
    restored.dedup();
    Ok((out, restored))
}

/// vaultkeep's own properties, never treated as the user's links.
fn is_ours(property: &str) -> bool {
    [
        compost::URLS,
        compost::DATES,
        compost::COPIES,
        compost::MISSING,
    ]
    .contains(&property)
        || property.ends_with(SIBLING)
}

/// One note's restoration.
#[derive(Debug, Clone, Serialize)]
pub struct NoteRestore {
    /// The note.
    pub note: String,
    /// The dead URLs it now also points at the copy of.
    pub urls: Vec<String>,
    /// What became of the edit.
    #[serde(flatten)]
    pub result: Outcome,
}

/// A dead URL with no local copy.
#[derive(Debug, Clone, Serialize)]
pub struct Uncopied {
    /// The URL.
    pub url: String,
    /// Where it is referenced.
    pub references: Vec<Reference>,
}

/// The result of `vaultkeep links restore`.
#[derive(Debug, Default, Serialize)]
pub struct RestoreReport {
    /// The rule URLs were judged dead by.
    pub rule: Option<Rule>,
    /// Dead URLs in the vault.
    pub dead: usize,
    /// Notes edited (or, in a dry run, to edit).
    pub notes: Vec<NoteRestore>,
    /// Dead URLs without a local copy: nothing to point at.
    pub without_copy: Vec<Uncopied>,
}

impl RestoreReport {
    /// Whether anything was left undone.
    pub fn failed(&self) -> bool {
        !self.without_copy.is_empty() || self.notes.iter().any(|n| n.result.failed())
    }
}

/// Points every note's dead links at their local copies (or, with `dry_run`, shows how).
/// `rule` is the one `links check` judged with (its recorded verdict), unless the user gave
/// another.
pub fn restore(
    vault: &Path,
    store: &Store,
    view: &VaultView,
    rule: Rule,
    dry_run: bool,
) -> Result<RestoreReport, store::Error> {
    let copies = Copies::load(store);
    let mut report = RestoreReport {
        rule: Some(rule),
        ..RestoreReport::default()
    };
    let mut dead: HashMap<String, Replacement> = HashMap::new();
    let urls = linkcheck::external_urls(view);
    let gone = linkcheck::dead_urls(store, urls.keys().cloned(), rule)?;
    for (url, refs) in urls {
        if !gone.contains(&url) {
            continue;
        }
        report.dead += 1;
        match copies.get(&url) {
            Some(copy) => {
                dead.insert(
                    url,
                    Replacement {
                        date: crate::localtime::date(copy.captured).to_string(),
                        link: CopyLink::to(&copy.entry, vault),
                    },
                );
            }
            None => report.without_copy.push(Uncopied {
                url,
                references: refs,
            }),
        }
    }
    if dead.is_empty() {
        return Ok(report);
    }
    for (note, facts) in view.notes() {
        let mentions = facts.links.iter().any(
            |l| matches!(l.destination(), Destination::External(u) if dead.contains_key(&key(u))),
        );
        if mentions {
            report
                .notes
                .push(restore_note(vault, store, note, &dead, dry_run));
        }
    }
    Ok(report)
}

fn restore_note(
    vault: &Path,
    store: &Store,
    note: &str,
    dead: &HashMap<String, Replacement>,
    dry_run: bool,
) -> NoteRestore {
    let mut out = NoteRestore {
        note: note.to_string(),
        urls: Vec::new(),
        result: Outcome::default(),
    };
    let (before, text) = match read_text(vault, note) {
        Ok(read) => read,
        Err(skipped) => {
            out.result = skipped;
            return out;
        }
    };
    let (after, urls) = match restore_text(&text, dead) {
        Ok(r) => r,
        Err(e) => {
            out.result = Outcome::skipped(e.to_string());
            return out;
        }
    };
    out.urls = urls;
    let edit = NoteEdit {
        path: note.to_string(),
        before,
        after: after.into_bytes(),
    };
    let keep = |path: &str, bytes: &[u8]| {
        crate::history::keep(store, path, bytes)
            .map(drop)
            .map_err(|e| crate::report::chain(&e))
    };
    out.result = commit(vault, &edit, dry_run, &keep);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead() -> HashMap<String, Replacement> {
        HashMap::from([(
            "https://x.org/".to_string(),
            Replacement {
                date: "2026-11-27".into(),
                link: CopyLink::File("file:///a/x.org/index.html".into()),
            },
        )])
    }

    #[test]
    fn bare_markdown_and_auto_links_get_a_suffix_and_the_original_stays() {
        let text = "Site: https://x.org/\n[the site](https://x.org/) and <https://x.org/>.\n";
        let (out, urls) = restore_text(text, &dead()).unwrap();
        let s = " ([archived 2026-11-27](file:///a/x.org/index.html))";
        assert_eq!(
            out,
            format!(
                "Site: https://x.org/{s}\n[the site](https://x.org/){s} and <https://x.org/>{s}.\n"
            )
        );
        assert_eq!(urls, vec!["https://x.org/"]);
    }

    #[test]
    fn links_in_code_and_other_urls_are_untouched() {
        let text = "`https://x.org/` and https://alive.org/\n\n```\nhttps://x.org/\n```\n";
        let (out, urls) = restore_text(text, &dead()).unwrap();
        assert_eq!(out, text);
        assert!(urls.is_empty());
    }

    #[test]
    fn a_frontmatter_url_gets_a_sibling_property() {
        let text = "---\ntitle: X\nurl: https://x.org\n---\nbody\n";
        let (out, _) = restore_text(text, &dead()).unwrap();
        assert_eq!(
            out,
            "---\ntitle: X\nurl: https://x.org\nurl_archived:\n  - \"file:///a/x.org/index.html\"\n---\nbody\n"
        );
    }

    #[test]
    fn restoring_twice_changes_nothing_more() {
        let text = "---\nurl: https://x.org/\n---\nhttps://x.org/ and [a](https://x.org/)\n";
        let (once, _) = restore_text(text, &dead()).unwrap();
        let (twice, _) = restore_text(&once, &dead()).unwrap();
        assert_eq!(once, twice);
    }

    #[test]
    fn vaultkeeps_own_properties_are_not_the_users_links() {
        let text = "---\narchived_urls:\n  - \"https://x.org/\"\n---\n";
        let (out, _) = restore_text(text, &dead()).unwrap();
        assert_eq!(out, text);
    }
}
