//! The YAML block between a first-line `---` and the next `---` line, as Obsidian reads it: where
//! it sits in a note, and its parsed value. Pure functions over text, under `links` and `note`.

use std::ops::Range;

/// Where a note's frontmatter sits in its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontmatter {
    /// Byte range of the YAML text between the fences (no fences, may be empty).
    pub yaml: Range<usize>,
    /// Byte range of the whole block: opening fence through the closing fence's line end.
    pub block: Range<usize>,
    /// 1-based line number of the first YAML line (the line after the opening fence).
    pub first_line: usize,
}

/// Invalid YAML, located in the note.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct YamlError {
    /// 1-based line in the note (not in the YAML block).
    pub line: usize,
    /// What the YAML parser said, without its own location.
    pub message: String,
}

const BOM: &str = "\u{feff}";

/// Finds the frontmatter block. A file opened with a byte-order mark still has frontmatter; CRLF
/// line ends are accepted. Without a closing fence there is no frontmatter (as in Obsidian).
pub fn locate(text: &str) -> Option<Frontmatter> {
    let start = if text.starts_with(BOM) { BOM.len() } else { 0 };
    let mut lines = LineSpans::new(text, start);
    let first = lines.next()?;
    if !is_fence(&text[first.clone()]) {
        return None;
    }
    let yaml_start = first.end;
    for line in lines {
        if is_fence(&text[line.clone()]) {
            return Some(Frontmatter {
                yaml: yaml_start..line.start,
                block: start..line.end,
                first_line: 2,
            });
        }
    }
    None
}

/// Parses the YAML of a located block into a value. Invalid YAML is reported with its line in
/// the note, so the user can find it.
pub fn parse(text: &str, fm: &Frontmatter) -> Result<yaml_serde::Value, YamlError> {
    let yaml = &text[fm.yaml.clone()];
    if yaml.trim().is_empty() {
        return Ok(yaml_serde::Value::Null);
    }
    let value = yaml_serde::from_str::<yaml_serde::Value>(yaml).map_err(|e| {
        let line = e.location().map(|l| l.line()).unwrap_or(1).max(1);
        YamlError {
            line: fm.first_line + line - 1,
            message: strip_location(&e.to_string()),
        }
    })?;
    match complex_key(&value, None) {
        None => Ok(value),
        Some(property) => Err(YamlError {
            line: property_line(yaml, &property).map_or(fm.first_line, |l| fm.first_line + l),
            message: format!(
                "property `{property}` holds a mapping used as a key, which Obsidian cannot read \
                 (an unfilled template placeholder such as {{{{date}}}}?)"
            ),
        }),
    }
}

/// The top-level property under which a mapping or list is used as a key. YAML allows it;
/// Obsidian and most YAML readers do not, and it is what `created: {{date}}` parses to.
fn complex_key(value: &yaml_serde::Value, property: Option<&str>) -> Option<String> {
    use yaml_serde::Value;
    match value {
        Value::Mapping(map) => map.iter().find_map(|(k, v)| {
            let name = property
                .map(str::to_string)
                .or_else(|| k.as_str().map(str::to_string));
            match k {
                Value::Mapping(_) | Value::Sequence(_) => Some(name.unwrap_or_default()),
                _ => complex_key(v, name.as_deref()),
            }
        }),
        Value::Sequence(items) => items.iter().find_map(|v| complex_key(v, property)),
        Value::Tagged(t) => complex_key(&t.value, property),
        _ => None,
    }
}

/// 0-based line of `property:` at the start of a line of the YAML text.
fn property_line(yaml: &str, property: &str) -> Option<usize> {
    yaml.lines().position(|l| {
        l.strip_prefix(property)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    })
}

/// The YAML parser appends " at line L column C"; we give the note's own line instead.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn is_fence(line: &str) -> bool {
    line.trim_end_matches(['\n', '\r'])
        .trim_end_matches([' ', '\t'])
        == "---"
}

/// Byte ranges of lines, each including its line end.
struct LineSpans<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> LineSpans<'a> {
    fn new(text: &'a str, pos: usize) -> Self {
        LineSpans { text, pos }
    }
}

impl Iterator for LineSpans<'_> {
    type Item = Range<usize>;
    fn next(&mut self) -> Option<Range<usize>> {
        if self.pos >= self.text.len() {
            return None;
        }
        let start = self.pos;
        let end = match self.text[start..].find('\n') {
            Some(i) => start + i + 1,
            None => self.text.len(),
        };
        self.pos = end;
        Some(start..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontmatter_is_the_block_between_the_first_two_fences() {
        let text = "---\ntitle: A\n---\nbody\n---\n";
        let fm = locate(text).unwrap();
        assert_eq!(&text[fm.yaml.clone()], "title: A\n");
        assert_eq!(&text[fm.block.clone()], "---\ntitle: A\n---\n");
    }

    #[test]
    fn byte_order_mark_and_crlf_are_accepted() {
        let text = "\u{feff}---\r\ntitle: A\r\n---\r\nbody";
        let fm = locate(text).unwrap();
        assert_eq!(&text[fm.yaml.clone()], "title: A\r\n");
        let value = parse(text, &fm).unwrap();
        assert_eq!(value["title"].as_str(), Some("A"));
    }

    #[test]
    fn no_frontmatter_without_a_first_line_fence_or_a_closing_fence() {
        assert_eq!(locate("title: A\n---\n"), None);
        assert_eq!(locate("---\ntitle: A\n"), None);
        assert_eq!(locate(" ---\na: 1\n---\n"), None);
    }

    #[test]
    fn empty_frontmatter_is_null() {
        let text = "---\n---\nbody";
        let fm = locate(text).unwrap();
        assert_eq!(parse(text, &fm).unwrap(), yaml_serde::Value::Null);
    }

    #[test]
    fn invalid_yaml_is_reported_at_its_line_in_the_note() {
        // The Templater placeholder of shared/data/vaults/kepano: `{{date}}` is a flow mapping
        // whose key is itself a mapping, which YAML rejects.
        let text = "---\ncategories:\n  - x\ncreated: {{date}}\n---\n";
        let fm = locate(text).unwrap();
        let err = parse(text, &fm).unwrap_err();
        assert_eq!(err.line, 4, "{err:?}");
        assert!(!err.message.contains("at line"));
    }

    #[test]
    fn closing_fence_may_end_the_file_without_newline() {
        let text = "---\na: 1\n---";
        let fm = locate(text).unwrap();
        assert_eq!(fm.block, 0..text.len());
    }
}
