//! vaultkeep's own frontmatter properties, set by editing text: the YAML is never
//! re-serialized, so every other key, quote, comment, blank line and line end stays as it was.

use crate::frontmatter::{locate, parse as parse_yaml};

/// Why a note's properties cannot be edited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// Its YAML is invalid: an edit could make it worse, so it is left alone.
    #[error("its frontmatter is not valid YAML (line {line}: {message}); left alone")]
    InvalidYaml {
        /// Line of the error.
        line: usize,
        /// The YAML parser's message.
        message: String,
    },
}

/// Sets each `(key, values)` as a top-level list property (`key:` then `  - "value"` lines),
/// or removes the key when `values` is empty. A key already present is replaced where it is;
/// a new key goes at the end of the frontmatter; a note without frontmatter gets one.
pub fn set_properties(text: &str, props: &[(&str, Vec<String>)]) -> Result<String, EditError> {
    let nl = newline(text);
    let blocks: Vec<(&str, Option<String>)> = props
        .iter()
        .map(|(k, v)| (*k, (!v.is_empty()).then(|| render(k, v, nl))))
        .collect();
    set_blocks(text, &blocks)
}

/// Sets `key` to one double-quoted value (`key: "value"`), in place if the key is there (a
/// list or an empty value included), else at the end of the frontmatter.
pub fn set_scalar(text: &str, key: &str, value: &str) -> Result<String, EditError> {
    let block = format!("{key}: {}{}", quote(value), newline(text));
    set_blocks(text, &[(key, Some(block))])
}

fn newline(text: &str) -> &'static str {
    if text.contains("\r\n") { "\r\n" } else { "\n" }
}

/// Puts each key's rendered block (`None`: removes the key) into the frontmatter.
fn set_blocks(text: &str, props: &[(&str, Option<String>)]) -> Result<String, EditError> {
    let nl = newline(text);
    let Some(fm) = locate(text) else {
        let block: String = props.iter().filter_map(|(_, b)| b.clone()).collect();
        if block.is_empty() {
            return Ok(text.to_string());
        }
        let bom = if text.starts_with('\u{feff}') {
            "\u{feff}".len()
        } else {
            0
        };
        return Ok(format!(
            "{}---{nl}{block}---{nl}{}",
            &text[..bom],
            &text[bom..]
        ));
    };
    if let Err(e) = parse_yaml(text, &fm) {
        return Err(EditError::InvalidYaml {
            line: e.line,
            message: e.message,
        });
    }
    let yaml = &text[fm.yaml.clone()];
    let mut lines: Vec<String> = yaml.split_inclusive('\n').map(String::from).collect();
    let mut appended = String::new();
    for (key, new) in props {
        match (key_block(&lines, key), new) {
            (Some(block), new) => {
                let new = new.clone().unwrap_or_default();
                let old: String = lines[block.clone()].concat();
                if old != new {
                    // The block's lines give way to the new rendering, as one entry.
                    lines.splice(block, std::iter::once(new));
                }
            }
            (None, Some(new)) => appended.push_str(new),
            (None, None) => {}
        }
    }
    let mut new_yaml: String = lines.concat();
    if !appended.is_empty() {
        if !new_yaml.is_empty() && !new_yaml.ends_with('\n') {
            new_yaml.push_str(nl);
        }
        new_yaml.push_str(&appended);
    }
    Ok(format!(
        "{}{}{}",
        &text[..fm.yaml.start],
        new_yaml,
        &text[fm.yaml.end..]
    ))
}

/// The lines of a top-level key: its own line and the indented or `- ` lines after it.
fn key_block(lines: &[String], key: &str) -> Option<std::ops::Range<usize>> {
    let start = lines.iter().position(|l| {
        l.strip_prefix(key).is_some_and(|rest| {
            rest.starts_with(':')
                && (rest.len() == 1 || rest[1..].starts_with([' ', '\t', '\r', '\n']))
        })
    })?;
    let mut end = start + 1;
    while end < lines.len() {
        let l = &lines[end];
        let continued = l.starts_with([' ', '\t']) || l.starts_with("- ") || l.trim_end() == "-";
        if !continued {
            break;
        }
        end += 1;
    }
    Some(start..end)
}

fn render(key: &str, values: &[String], nl: &str) -> String {
    let mut out = format!("{key}:{nl}");
    for v in values {
        out.push_str("  - ");
        out.push_str(&quote(v));
        out.push_str(nl);
    }
    out
}

/// A YAML double-quoted scalar.
pub fn quote(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    for c in value.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str, key: &str, values: &[&str]) -> String {
        set_properties(
            text,
            &[(key, values.iter().map(|v| v.to_string()).collect())],
        )
        .unwrap()
    }

    #[test]
    fn a_new_property_is_added_at_the_end_and_nothing_else_changes() {
        let text =
            "---\ntitle: \"Ouishare\"   # keep\nend: \"2023\"\nsize:\n  - 21-50\n---\nbody\n";
        let out = set(text, "archived_urls", &["https://www.ouishare.net/"]);
        assert_eq!(
            out,
            "---\ntitle: \"Ouishare\"   # keep\nend: \"2023\"\nsize:\n  - 21-50\narchived_urls:\n  - \"https://www.ouishare.net/\"\n---\nbody\n"
        );
    }

    #[test]
    fn a_scalar_fills_an_empty_key_in_place_or_is_added_at_the_end() {
        let empty = "---\nurl: https://x.org/\nimage:\nend: 2023\n---\nbody\n";
        let out = set_scalar(empty, "image", "[[assets/x-homepage.png]]").unwrap();
        assert_eq!(
            out,
            "---\nurl: https://x.org/\nimage: \"[[assets/x-homepage.png]]\"\nend: 2023\n---\nbody\n"
        );
        let crlf = "---\r\ntitle: X\r\n---\r\n";
        assert_eq!(
            set_scalar(crlf, "archived_screenshot", "[[a.png]]").unwrap(),
            "---\r\ntitle: X\r\narchived_screenshot: \"[[a.png]]\"\r\n---\r\n"
        );
    }

    #[test]
    fn an_existing_property_is_replaced_in_place_without_duplicates() {
        let text = "---\na: 1\narchived_urls:\n  - \"old\"\n  - \"older\"\nz: 2\n---\n";
        let out = set(text, "archived_urls", &["new"]);
        assert_eq!(out, "---\na: 1\narchived_urls:\n  - \"new\"\nz: 2\n---\n");
        assert_eq!(set(&out, "archived_urls", &["new"]), out, "idempotent");
    }

    #[test]
    fn crlf_notes_get_crlf_lines_and_no_final_newline_is_kept() {
        let text = "---\r\na: 1\r\n---\r\nbody";
        assert_eq!(
            set(text, "k", &["v"]),
            "---\r\na: 1\r\nk:\r\n  - \"v\"\r\n---\r\nbody"
        );
    }

    #[test]
    fn a_note_without_frontmatter_gets_one() {
        assert_eq!(
            set("Ouishare was composted.\n", "k", &["v"]),
            "---\nk:\n  - \"v\"\n---\nOuishare was composted.\n"
        );
    }

    #[test]
    fn an_empty_list_removes_the_property() {
        let text = "---\na: 1\nk:\n  - \"v\"\n---\n";
        assert_eq!(set(text, "k", &[]), "---\na: 1\n---\n");
    }

    #[test]
    fn invalid_yaml_is_left_alone() {
        let text = "---\ncreated: {{date}}\n---\n";
        assert!(matches!(
            set_properties(text, &[("k", vec!["v".into()])]),
            Err(EditError::InvalidYaml { .. })
        ));
    }

    #[test]
    fn a_key_that_only_starts_the_same_is_not_ours() {
        let text = "---\narchived_urls_note: x\n---\n";
        assert_eq!(
            set(text, "archived_urls", &["v"]),
            "---\narchived_urls_note: x\narchived_urls:\n  - \"v\"\n---\n"
        );
    }

    #[test]
    fn values_are_quoted_for_yaml() {
        assert_eq!(quote(r#"[[a "b"\c]]"#), r#""[[a \"b\"\\c]]""#);
        let text = set("---\n---\n", "k", &["[[_archive/x.html]]"]);
        let fm = locate(&text).unwrap();
        let value = parse_yaml(&text, &fm).unwrap();
        assert_eq!(value["k"][0].as_str(), Some("[[_archive/x.html]]"));
    }
}
