//! Which URLs of which notes to snapshot, and how deep: a pure function of what the notes say.

use std::collections::BTreeMap;

use serde::Deserialize;
use url::Url;

use crate::config::SnapshotConfig;
use crate::links::Destination;
use crate::note::NoteFacts;

/// What to capture for one root URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The root URL.
    pub root: Url,
    /// Link hops to follow under the root's host and path prefix (0: the page alone).
    pub depth: u32,
    /// Most pages to fetch.
    pub max_pages: usize,
    /// Bounds on the whole snapshot.
    pub limits: Limits,
}

/// Bounds on one snapshot, whatever the site holds (issue 8). Beyond them, URLs are recorded
/// as failures with reason `limit` and the snapshot is marked incomplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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
        .map(|(root, depth)| Plan {
            root,
            depth,
            max_pages,
            limits: config.into(),
        })
        .collect()
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
