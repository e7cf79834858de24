//! Links in notes: what they are, where they are, and where they point.
//!
//! Extraction ([`body_links`], [`property_links`]) and resolution ([`FileIndex`]) are pure functions over text and a
//! list of vault paths, so they are tested without a file system.

mod extract;
mod properties;
mod resolve;
mod wikilink;

use std::ops::Range;

use serde::{Deserialize, Serialize};

pub use extract::body_links;
pub use properties::property_links;
pub use resolve::{FileIndex, Resolution};
pub use wikilink::parse_wikilink;

/// The syntax a link was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// `[[target#heading|alias]]`
    Wikilink,
    /// `![[target|alias]]`
    Embed,
    /// `[text](target)`
    Markdown,
    /// `![alt](target)`
    Image,
    /// `<https://...>`
    Autolink,
    /// a URL in running text
    BareUrl,
    /// a frontmatter value that is a URL, a wikilink string or a vault path
    Frontmatter,
}

impl LinkKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [LinkKind; 7] = [
        LinkKind::Wikilink,
        LinkKind::Embed,
        LinkKind::Markdown,
        LinkKind::Image,
        LinkKind::Autolink,
        LinkKind::BareUrl,
        LinkKind::Frontmatter,
    ];

    /// The name used in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            LinkKind::Wikilink => "wikilink",
            LinkKind::Embed => "embed",
            LinkKind::Markdown => "markdown",
            LinkKind::Image => "image",
            LinkKind::Autolink => "autolink",
            LinkKind::BareUrl => "bare_url",
            LinkKind::Frontmatter => "frontmatter",
        }
    }
}

/// One link as written in a note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The syntax it was written in.
    pub kind: LinkKind,
    /// The exact source text (for a frontmatter value: the value, trimmed).
    pub raw: String,
    /// The path or URL, without `#heading`, `#^block`, `|alias` or `|size`. URLs keep their
    /// fragment. Not percent-decoded.
    pub target: String,
    /// `heading` or `^block` after the `#` of an internal link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
    /// Display text after `|` (or the alt text of a Markdown link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// `300` or `300x200` after the `|` of an image embed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// The frontmatter property holding it, for frontmatter links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// 1-based line in the note.
    pub line: usize,
    /// Byte range in the note.
    pub range: Range<usize>,
}

/// Where a link points, once its syntax is set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination<'a> {
    /// An `http` or `https` URL: something to snapshot and check.
    External(&'a str),
    /// A file of the vault, to be resolved (still percent-encoded as written).
    Internal(&'a str),
    /// A heading or block of the same note (`[[#Heading]]`).
    SameNote,
    /// Another scheme (`mailto:`, `obsidian:`, `file:`...): neither vault file nor web page.
    Other,
}

impl Link {
    /// Classifies the target.
    pub fn destination(&self) -> Destination<'_> {
        let t = self.target.as_str();
        if t.is_empty() {
            return Destination::SameNote;
        }
        if is_web_url(t) {
            return Destination::External(t);
        }
        // Wikilink targets are file names: `[[Note: part]]` is not a URL scheme.
        let is_wiki = matches!(self.kind, LinkKind::Wikilink | LinkKind::Embed)
            || (self.kind == LinkKind::Frontmatter && self.raw.contains("[["));
        if !is_wiki && has_scheme(t) {
            return Destination::Other;
        }
        Destination::Internal(t)
    }
}

/// `http://` or `https://`, in any letter case.
pub fn is_web_url(s: &str) -> bool {
    let lower = |n: usize| s.get(..n).map(|p| p.to_ascii_lowercase());
    lower(7).as_deref() == Some("http://") || lower(8).as_deref() == Some("https://")
}

/// `scheme:` as RFC 3986 spells it; two letters at least, so `C:\` is a path.
fn has_scheme(s: &str) -> bool {
    let Some(colon) = s.find(':') else {
        return false;
    };
    let scheme = &s[..colon];
    scheme.len() >= 2
        && scheme.as_bytes()[0].is_ascii_alphabetic()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Byte offsets to 1-based line numbers.
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(memchr_newlines(text.as_bytes()).map(|i| i + 1));
        LineIndex { starts }
    }

    pub fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset)
    }
}

fn memchr_newlines(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(kind: LinkKind, target: &str) -> Link {
        Link {
            kind,
            raw: target.into(),
            target: target.into(),
            subpath: None,
            alias: None,
            size: None,
            property: None,
            line: 1,
            range: 0..1,
        }
    }

    #[test]
    fn web_urls_are_external_in_any_syntax() {
        for kind in LinkKind::ALL {
            let l = link(kind, "HTTPS://Example.org/x");
            assert_eq!(
                l.destination(),
                Destination::External("HTTPS://Example.org/x")
            );
        }
    }

    #[test]
    fn other_schemes_are_neither_files_nor_pages() {
        assert_eq!(
            link(LinkKind::Markdown, "mailto:a@b.c").destination(),
            Destination::Other
        );
        assert_eq!(
            link(LinkKind::Markdown, "file:///tmp/x.html").destination(),
            Destination::Other
        );
        assert_eq!(
            link(LinkKind::Markdown, "C:/notes/x.md").destination(),
            Destination::Internal("C:/notes/x.md")
        );
    }

    #[test]
    fn a_colon_in_a_wikilink_is_part_of_a_file_name() {
        assert_eq!(
            link(LinkKind::Wikilink, "Note: part").destination(),
            Destination::Internal("Note: part")
        );
    }

    #[test]
    fn line_index_counts_from_one() {
        let idx = LineIndex::new("a\nb\n\nc");
        assert_eq!(idx.line(0), 1);
        assert_eq!(idx.line(1), 1);
        assert_eq!(idx.line(2), 2);
        assert_eq!(idx.line(4), 3);
        assert_eq!(idx.line(5), 4);
    }
}
