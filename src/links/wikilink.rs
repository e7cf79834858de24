//! The parts of a wikilink: `[[path#heading|alias]]`, `![[image.png|300x200]]`, `[[a\|b]]`.

/// A wikilink taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WikiParts {
    /// Whether it is an embed (`![[...]]`).
    pub embed: bool,
    /// The file part, trimmed (empty for `[[#Heading]]`).
    pub target: String,
    /// After the first `#`: a heading (`H1#H2`) or a block (`^id`).
    pub subpath: Option<String>,
    /// Display text after `|`.
    pub alias: Option<String>,
    /// `300` or `300x200` after the `|` of an embed: a size, not an alias.
    pub size: Option<String>,
}

/// Parses `[[...]]` or `![[...]]` source text. In tables the pipe is escaped (`\|`): the
/// backslash belongs to the escape, not to the target.
pub fn parse_wikilink(raw: &str) -> Option<WikiParts> {
    let (embed, rest) = match raw.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, raw),
    };
    let inner = rest.strip_prefix("[[")?.strip_suffix("]]")?;
    let (link, display) = match inner.find('|') {
        Some(i) => {
            let before = &inner[..i];
            (
                before.strip_suffix('\\').unwrap_or(before),
                Some(&inner[i + 1..]),
            )
        }
        None => (inner, None),
    };
    let (target, subpath) = match link.find('#') {
        Some(i) => (&link[..i], Some(link[i + 1..].trim().to_string())),
        None => (link, None),
    };
    let display = display.map(str::trim).filter(|d| !d.is_empty());
    let (alias, size) = match display {
        Some(d) if embed && is_size(d) => (None, Some(d.to_string())),
        Some(d) => (Some(d.to_string()), None),
        None => (None, None),
    };
    Some(WikiParts {
        embed,
        target: target.trim().to_string(),
        subpath: subpath.filter(|s| !s.is_empty()),
        alias,
        size,
    })
}

/// `300` or `300x200`.
fn is_size(s: &str) -> bool {
    let mut parts = s.splitn(2, 'x');
    let digits =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let w = parts.next();
    let h = parts.next();
    digits(w) && (h.is_none() || digits(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(raw: &str) -> WikiParts {
        parse_wikilink(raw).unwrap()
    }

    #[test]
    fn wikilink_alias_is_not_part_of_the_path() {
        let p = parts("[[Some Note|shown text]]");
        assert_eq!(p.target, "Some Note");
        assert_eq!(p.alias.as_deref(), Some("shown text"));
    }

    #[test]
    fn heading_and_block_are_subpaths() {
        let p = parts("[[Note#Part#Sub|x]]");
        assert_eq!(
            (p.target.as_str(), p.subpath.as_deref()),
            ("Note", Some("Part#Sub"))
        );
        let p = parts("[[2023-01-01#^37066d]]");
        assert_eq!(p.subpath.as_deref(), Some("^37066d"));
    }

    #[test]
    fn a_link_to_a_heading_of_the_same_note_has_no_target() {
        let p = parts("[[#Heading]]");
        assert_eq!(p.target, "");
        assert_eq!(p.subpath.as_deref(), Some("Heading"));
    }

    #[test]
    fn image_embed_pipe_is_a_size() {
        assert_eq!(parts("![[pic.png|300]]").size.as_deref(), Some("300"));
        assert_eq!(
            parts("![[pic.png|300x200]]").size.as_deref(),
            Some("300x200")
        );
        let p = parts("![[../../../assets/report.pdf|report]]");
        assert_eq!(p.target, "../../../assets/report.pdf");
        assert_eq!((p.alias.as_deref(), p.size), (Some("report"), None));
        // On a plain link a number is an alias.
        assert_eq!(parts("[[Note|300]]").alias.as_deref(), Some("300"));
    }

    #[test]
    fn escaped_pipe_in_a_table_separates_the_alias() {
        let p = parts(r"[[Tab\|alias]]");
        assert_eq!(
            (p.target.as_str(), p.alias.as_deref()),
            ("Tab", Some("alias"))
        );
        let p = parts(r"![[pic.png\|100]]");
        assert_eq!(
            (p.target.as_str(), p.size.as_deref()),
            ("pic.png", Some("100"))
        );
    }

    #[test]
    fn stray_spaces_are_trimmed() {
        let p = parts("[[ Note |  alias ]]");
        assert_eq!(
            (p.target.as_str(), p.alias.as_deref()),
            ("Note", Some("alias"))
        );
    }

    #[test]
    fn not_a_wikilink() {
        assert_eq!(parse_wikilink("[Note]"), None);
        assert_eq!(parse_wikilink("[[Note]"), None);
    }
}
