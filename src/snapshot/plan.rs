//! Which URLs of which notes to snapshot, and how deep: a pure function of what the notes say.

use std::collections::BTreeMap;

use serde::Deserialize;
use url::Url;

use crate::config::{BrowserUse, SnapshotConfig};
use crate::links::Destination;
use crate::note::NoteFacts;

/// What to capture for one root URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Plan {
    /// The root URL.
    pub root: Url,
    /// Link hops to follow under the root's host and path prefix (0: the page alone).
    pub depth: u32,
    /// Most pages to fetch.
    pub max_pages: usize,
    /// Bounds on the whole snapshot.
    pub limits: Limits,
    /// Which pages to render in the browser.
    pub browser: BrowserUse,
    /// A screenshot of every page, rendered or not.
    pub screenshots: bool,
}

impl Plan {
    /// A plan with the config's limits and browser settings.
    pub fn new(root: Url, depth: u32, max_pages: usize, config: &SnapshotConfig) -> Plan {
        Plan {
            root,
            depth,
            max_pages,
            limits: config.into(),
            browser: config.browser,
            screenshots: config.screenshots,
        }
    }
}

/// Bounds on one snapshot, whatever the site holds (issue 8). Beyond them, URLs are recorded
/// as failures with reason `limit` and the snapshot is marked incomplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub struct Limits {
    /// URLs fetched (pages and resources together).
    pub max_resources: usize,
    /// Bytes of bodies received.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_resources: 5000,
            max_bytes: 1 << 30,
        }
    }
}

impl From<&SnapshotConfig> for Limits {
    fn from(c: &SnapshotConfig) -> Limits {
        Limits {
            max_resources: c.max_resources,
            max_bytes: c.max_total_bytes.get(),
        }
    }
}

/// Whether a URL looks like a site's documentation (`handbook.ouishare.net`,
/// `example.org/docs/`), which is crawled rather than captured alone.
pub fn is_docs(config: &SnapshotConfig, url: &Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let first = url.path_segments().and_then(|mut s| s.next()).unwrap_or("");
    host.split('.').chain(std::iter::once(first)).any(|part| {
        config
            .docs_words
            .iter()
            .any(|w| part.eq_ignore_ascii_case(w))
    })
}

/// The plans for the external URLs of some notes, each URL once (at the greatest depth any
/// note asks for). A note's frontmatter `url` and documentation sites are crawled `depth`
/// hops; other URLs are captured alone. `force_depth` (`--depth`) overrides both.
pub fn plans_for_notes<'a>(
    notes: impl IntoIterator<Item = &'a NoteFacts>,
    config: &SnapshotConfig,
    force_depth: Option<u32>,
    max_pages: usize,
) -> Vec<Plan> {
    let mut wanted: BTreeMap<String, (Url, u32)> = BTreeMap::new();
    for facts in notes {
        for link in &facts.links {
            let Destination::External(raw) = link.destination() else {
                continue;
            };
            let Ok(mut url) = Url::parse(raw.trim()) else {
                continue;
            };
            url.set_fragment(None);
            let crawl = link.property.as_deref() == Some("url") || is_docs(config, &url);
            let depth = force_depth.unwrap_or(if crawl { config.depth } else { 0 });
            let entry = wanted.entry(url.to_string()).or_insert((url, depth));
            entry.1 = entry.1.max(depth);
        }
    }
    wanted
        .into_values()
        .map(|(root, depth)| Plan::new(root, depth, max_pages, config))
        .collect()
}

/// What `archive snapshot` was asked to capture: URLs as given, and notes (or with `all`, every
/// note) whose URLs to capture.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// http(s) URLs.
    pub urls: Vec<Url>,
    /// Vault-relative note paths.
    pub notes: Vec<String>,
    /// Every note of the vault.
    pub all: bool,
}

impl Targets {
    /// Sorts the command line's words into URLs and notes.
    pub fn parse(words: &[String], all: bool) -> Targets {
        let mut targets = Targets {
            all,
            ..Targets::default()
        };
        for word in words {
            match Url::parse(word) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => targets.urls.push(url),
                _ => targets
                    .notes
                    .push(word.trim_start_matches("./").to_string()),
            }
        }
        targets
    }

    /// Whether the vault must be read (notes were named, or all of them).
    pub fn need_notes(&self) -> bool {
        self.all || !self.notes.is_empty()
    }
}

/// A named note the vault does not hold.
#[derive(Debug, thiserror::Error)]
#[error("{0} is neither an http(s) URL nor a note of the vault")]
pub struct NotANote(pub String);

/// The plans for `targets`: each URL as given (crawled `depth` hops, default 0), then the URLs
/// of the named notes (see [`plans_for_notes`]), each root once. `notes` finds a note's facts
/// by path; `every` lists all of them (for `all`).
#[allow(clippy::too_many_arguments)]
pub fn plans_for_targets<'a>(
    targets: &Targets,
    notes: impl Fn(&str) -> Option<&'a NoteFacts>,
    every: impl Iterator<Item = &'a NoteFacts>,
    config: &SnapshotConfig,
    depth: Option<u32>,
    max_pages: usize,
    limits: Limits,
) -> Result<Vec<Plan>, NotANote> {
    let mut plans: Vec<Plan> = targets
        .urls
        .iter()
        .map(|url| Plan {
            limits,
            ..Plan::new(url.clone(), depth.unwrap_or(0), max_pages, config)
        })
        .collect();
    let mut chosen: Vec<&NoteFacts> = Vec::new();
    if targets.all {
        chosen.extend(every);
    }
    for note in &targets.notes {
        chosen.push(notes(note).ok_or_else(|| NotANote(note.clone()))?);
    }
    for mut plan in plans_for_notes(chosen, config, depth, max_pages) {
        plan.limits = limits;
        if !plans.iter().any(|p| p.root == plan.root) {
            plans.push(plan);
        }
    }
    Ok(plans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::read_note;

    #[test]
    fn a_profiles_url_and_its_handbook_are_crawled_other_links_captured_alone() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/vault/ecosystem/cohere/profiles/Ouishare.md"
        ))
        .unwrap();
        let facts = read_note(&text);
        let plans = plans_for_notes([&facts], &SnapshotConfig::default(), None, 500);
        let got: Vec<(String, u32)> = plans
            .iter()
            .map(|p| (p.root.to_string(), p.depth))
            .collect();
        assert_eq!(
            got,
            vec![
                ("https://handbook.ouishare.net/".to_string(), 3),
                ("https://www.ouishare.net/".to_string(), 3),
                ("https://www.ouishare.net/mission".to_string(), 0),
            ]
        );
        let forced = plans_for_notes([&facts], &SnapshotConfig::default(), Some(1), 500);
        assert!(forced.iter().all(|p| p.depth == 1));
    }

    #[test]
    fn targets_are_urls_or_notes_and_each_root_is_planned_once() {
        let words = [
            "https://x.org/a",
            "notes/n.md",
            "./other.md",
            "mailto:x@y.z",
        ]
        .map(String::from)
        .to_vec();
        let t = Targets::parse(&words, false);
        assert_eq!(t.urls.len(), 1);
        assert_eq!(t.notes, vec!["notes/n.md", "other.md", "mailto:x@y.z"]);
        let n = read_note("https://x.org/a https://y.org/");
        let lookup = |p: &str| (p == "notes/n.md").then_some(&n);
        let limits = Limits::default();
        let config = SnapshotConfig::default();
        let only = Targets::parse(&words[..2], false);
        let plans =
            plans_for_targets(&only, lookup, std::iter::empty(), &config, None, 9, limits).unwrap();
        let roots: Vec<String> = plans.iter().map(|p| p.root.to_string()).collect();
        assert_eq!(roots, vec!["https://x.org/a", "https://y.org/"]);
        let missing = plans_for_targets(&t, lookup, std::iter::empty(), &config, None, 9, limits);
        assert_eq!(missing.unwrap_err().0, "other.md");
    }

    #[test]
    fn docs_sites_are_known_by_host_or_first_path_segment() {
        let c = SnapshotConfig::default();
        for yes in [
            "https://handbook.ouishare.net/",
            "https://x.org/docs/a",
            "https://wiki.x.org/",
        ] {
            assert!(is_docs(&c, &Url::parse(yes).unwrap()), "{yes}");
        }
        for no in [
            "https://www.ouishare.net/mission",
            "https://x.org/blog/docs-are-nice",
        ] {
            assert!(!is_docs(&c, &Url::parse(no).unwrap()), "{no}");
        }
    }
}
