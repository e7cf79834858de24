//! Reading one note: its frontmatter, its links and the signs that its organization has ended.
//! Pure functions over the note's text.

pub mod ended;

use serde::{Deserialize, Serialize};

pub use ended::Signals;

use crate::frontmatter::{YamlError, locate, parse as parse_yaml};
use crate::links::{LineIndex, Link, body_links, property_links};

/// What vaultkeep knows about a note after reading it once. Derived only from the note's bytes,
/// so it can be cached by content address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteFacts {
    /// Every link, in frontmatter first, then body order.
    pub links: Vec<Link>,
    /// Invalid frontmatter, if any (the body's links are still read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yaml_error: Option<YamlError>,
    /// What the note says about the organization having ended.
    #[serde(default, skip_serializing_if = "Signals::is_empty")]
    pub signals: Signals,
    /// Why the note could not be read as text at all (binary, invalid UTF-8, too large).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// Reads a note's bytes: text is read with [`read_note`]; binary content, invalid UTF-8 and
/// notes over `max_bytes` are not, and say why.
pub fn read_note_bytes(bytes: &[u8], max_bytes: u64) -> NoteFacts {
    let unreadable = |why: String| NoteFacts {
        unreadable: Some(why),
        ..NoteFacts::default()
    };
    if bytes.len() as u64 > max_bytes {
        return too_large(bytes.len() as u64, max_bytes);
    }
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return unreadable(
            "binary content (NUL bytes) in a .md file; recorded, but not read as a note".into(),
        );
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => read_note(text),
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            unreadable(format!(
                "invalid UTF-8 at line {line} (byte {}); recorded, but not read as a note",
                e.valid_up_to()
            ))
        }
    }
}

/// The facts of a note too large to read as text.
pub fn too_large(size: u64, max_bytes: u64) -> NoteFacts {
    NoteFacts {
        unreadable: Some(format!(
            "note is {}, over the {} limit for reading links (`max_note_bytes`); recorded, but not read",
            crate::report::human_bytes(size),
            crate::report::human_bytes(max_bytes)
        )),
        ..NoteFacts::default()
    }
}

/// Reads a note's text.
pub fn read_note(text: &str) -> NoteFacts {
    let lines = LineIndex::new(text);
    let mut facts = NoteFacts::default();
    let body_start = match locate(text) {
        Some(fm) => {
            match parse_yaml(text, &fm) {
                Ok(value) => {
                    facts.links = property_links(text, &fm, &value, &lines);
                    facts.signals = Signals::from_properties(&value);
                }
                Err(e) => facts.yaml_error = Some(e),
            }
            fm.block.end
        }
        None => 0,
    };
    facts.links.extend(body_links(text, body_start, &lines));
    facts.signals.body = Signals::body_says_composted(&text[body_start..]);
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::LinkKind;

    #[test]
    fn invalid_frontmatter_still_yields_body_links() {
        let text = "---\ncreated: {{date}}\n---\n[[Other]] https://x.org\n";
        let facts = read_note(text);
        assert_eq!(facts.yaml_error.as_ref().unwrap().line, 2);
        let kinds: Vec<_> = facts.links.iter().map(|l| l.kind).collect();
        assert_eq!(kinds, vec![LinkKind::Wikilink, LinkKind::BareUrl]);
    }

    #[test]
    fn frontmatter_links_come_before_body_links() {
        let text = "---\nurl: https://a.org\n---\nhttps://b.org\n";
        let targets: Vec<_> = read_note(text)
            .links
            .into_iter()
            .map(|l| l.target)
            .collect();
        assert_eq!(targets, vec!["https://a.org", "https://b.org"]);
    }

    #[test]
    fn binary_invalid_utf8_and_huge_notes_say_why_they_were_not_read() {
        assert!(
            read_note_bytes(b"\x89PNG\r\n\x1a\n\0\0", 100)
                .unreadable
                .unwrap()
                .contains("binary")
        );
        let why = read_note_bytes(b"ok\nbad \xff here", 100)
            .unreadable
            .unwrap();
        assert!(why.contains("invalid UTF-8 at line 2"), "{why}");
        assert!(
            read_note_bytes(&[b'a'; 101], 100)
                .unreadable
                .unwrap()
                .contains("over the 100 B limit")
        );
        assert_eq!(read_note_bytes(b"[[a]]", 100).links.len(), 1);
    }

    #[test]
    fn a_note_without_frontmatter_is_all_body() {
        let facts = read_note("[[a]]\n");
        assert_eq!(facts.links.len(), 1);
        assert_eq!(facts.yaml_error, None);
    }
}
