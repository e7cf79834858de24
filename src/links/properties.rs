//! Links in frontmatter values: URLs, wikilink strings (`"[[../assets/x.png]]"`) and vault
//! paths (`/assets/x.png`), wherever they sit in lists and maps.

use yaml_serde::Value;

use super::{LineIndex, Link, LinkKind, is_web_url, parse_wikilink};
use crate::frontmatter::Frontmatter;

/// Every link in the parsed frontmatter `value` of `text`. Each is placed at the first
/// occurrence of its text after the previous one, which is where YAML keeps it unless the
/// value was written with escapes; then it is placed at the frontmatter's first line.
pub fn property_links(text: &str, fm: &Frontmatter, value: &Value, lines: &LineIndex) -> Vec<Link> {
    let mut walker = Walker {
        text,
        fm,
        lines,
        cursor: fm.yaml.start,
        links: Vec::new(),
    };
    if let Value::Mapping(map) = value {
        for (key, v) in map {
            let name = key_name(key);
            walker.value(&name, v);
        }
    }
    walker.links
}

struct Walker<'a> {
    text: &'a str,
    fm: &'a Frontmatter,
    lines: &'a LineIndex,
    cursor: usize,
    links: Vec<Link>,
}

impl Walker<'_> {
    fn value(&mut self, property: &str, v: &Value) {
        match v {
            Value::String(s) => self.string(property, s),
            Value::Sequence(items) => items.iter().for_each(|i| self.value(property, i)),
            Value::Mapping(map) => {
                for (k, v) in map {
                    self.value(&format!("{property}.{}", key_name(k)), v);
                }
            }
            Value::Tagged(t) => self.value(property, &t.value),
            _ => {}
        }
    }

    fn string(&mut self, property: &str, s: &str) {
        let trimmed = s.trim();
        if trimmed.contains("[[") {
            let base = self.locate(trimmed);
            let mut from = 0;
            while let Some(open) = trimmed[from..].find("[[").map(|i| from + i) {
                let Some(close) = trimmed[open..].find("]]").map(|i| open + i + 2) else {
                    break;
                };
                let start = if open > 0 && trimmed.as_bytes()[open - 1] == b'!' {
                    open - 1
                } else {
                    open
                };
                let raw = &trimmed[start..close];
                if let Some(parts) = parse_wikilink(raw) {
                    self.push(Link {
                        kind: LinkKind::Frontmatter,
                        raw: raw.to_string(),
                        target: parts.target,
                        subpath: parts.subpath,
                        alias: parts.alias,
                        size: parts.size,
                        property: Some(property.to_string()),
                        line: 0,
                        range: base.map_or(0..0, |b| b + start..b + close),
                    });
                }
                from = close;
            }
        } else if (is_web_url(trimmed) || is_vault_path(trimmed))
            && !trimmed.contains(char::is_whitespace)
        {
            let range = self.locate(trimmed).map_or(0..0, |b| b..b + trimmed.len());
            self.push(Link {
                kind: LinkKind::Frontmatter,
                raw: trimmed.to_string(),
                target: trimmed.to_string(),
                subpath: None,
                alias: None,
                size: None,
                property: Some(property.to_string()),
                line: 0,
                range,
            });
        }
    }

    /// The byte offset of `needle` in the YAML text, searching forward from the last find.
    fn locate(&mut self, needle: &str) -> Option<usize> {
        let yaml_end = self.fm.yaml.end;
        let found = self.text[self.cursor..yaml_end]
            .find(needle)
            .map(|i| self.cursor + i)
            .or_else(|| {
                self.text[self.fm.yaml.clone()]
                    .find(needle)
                    .map(|i| self.fm.yaml.start + i)
            });
        if let Some(at) = found {
            self.cursor = self.cursor.max(at + needle.len());
        }
        found
    }

    fn push(&mut self, mut link: Link) {
        if link.range.is_empty() {
            link.range = self.fm.yaml.start..self.fm.yaml.start;
            link.line = self.fm.first_line;
        } else {
            link.line = self.lines.line(link.range.start);
        }
        self.links.push(link);
    }
}

fn key_name(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// `/assets/x.png`: rooted, with a file extension in its last segment.
fn is_vault_path(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('/') else {
        return false;
    };
    let last = rest.rsplit('/').next().unwrap_or("");
    !rest.is_empty()
        && !rest.starts_with('/')
        && last.rfind('.').is_some_and(|i| i > 0 && i + 1 < last.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontmatter::{locate, parse as parse_yaml};

    fn links(text: &str) -> Vec<Link> {
        let fm = locate(text).unwrap();
        let value = parse_yaml(text, &fm).unwrap();
        property_links(text, &fm, &value, &LineIndex::new(text))
    }

    #[test]
    fn quoted_wikilinks_urls_and_vault_paths_are_links() {
        let text = "---\ntitle: X\nurl: https://www.ouishare.net\nimage: \"[[../../../assets/home.png]]\"\nlogo: /assets/logo.png\n---\n";
        let got: Vec<_> = links(text)
            .into_iter()
            .map(|l| (l.property.unwrap(), l.target, l.line))
            .collect();
        assert_eq!(
            got,
            vec![
                ("url".into(), "https://www.ouishare.net".into(), 3),
                ("image".into(), "../../../assets/home.png".into(), 4),
                ("logo".into(), "/assets/logo.png".into(), 5),
            ]
        );
    }

    #[test]
    fn values_in_lists_and_maps_are_found() {
        let text = "---\ncategories:\n  - \"[[People]]\"\n  - \"[[Authors]]\"\nlogo:\n  url: https://caia.global/l.jpg\n  cached_new: /img/l.jpg\n---\n";
        let got: Vec<_> = links(text)
            .into_iter()
            .map(|l| (l.property.unwrap(), l.target))
            .collect();
        assert_eq!(
            got,
            vec![
                ("categories".into(), "People".into()),
                ("categories".into(), "Authors".into()),
                ("logo.url".into(), "https://caia.global/l.jpg".into()),
                ("logo.cached_new".into(), "/img/l.jpg".into()),
            ]
        );
    }

    #[test]
    fn stray_spaces_are_trimmed_and_ranges_point_at_the_value() {
        let text = "---\nurl: \"  https://x.org/ \"\n---\n";
        let l = &links(text)[0];
        assert_eq!(l.target, "https://x.org/");
        assert_eq!(&text[l.range.clone()], "https://x.org/");
    }

    #[test]
    fn plain_words_numbers_and_slashes_are_not_links() {
        let text =
            "---\nend: present\nsize: 21-50\nx: 1074\nsplit: a/b\nroot: /\ndir: /assets/\n---\n";
        assert!(links(text).is_empty());
    }

    #[test]
    fn two_wikilinks_in_one_value() {
        let text = "---\nrelated: \"[[A]] and ![[B.png|200]]\"\n---\n";
        let got: Vec<_> = links(text).into_iter().map(|l| (l.raw, l.size)).collect();
        assert_eq!(
            got,
            vec![
                ("[[A]]".into(), None),
                ("![[B.png|200]]".into(), Some("200".into()))
            ]
        );
    }
}
