//! Checking an offline copy from its files alone: every relative reference of its pages and
//! style sheets points at a file that is there. Found naively, independently of vaultkeep.

use std::fs;
use std::path::Path;

use super::files_under;
use super::server::percent_decode;

/// Values of URL attributes and CSS `url()` in a text, found naively (independently of
/// vaultkeep's parsers).
pub fn references(text: &str) -> Vec<String> {
    let text = &without_comments(text)
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let mut out = Vec::new();
    for attr in [
        "href=\"",
        "src=\"",
        "poster=\"",
        "data-src=\"",
        "srcset=\"",
        "data-srcset=\"",
    ] {
        for (i, _) in text.match_indices(attr) {
            let preceded = text[..i].chars().last().is_none_or(|c| c.is_whitespace());
            if !preceded {
                continue;
            }
            let rest = &text[i + attr.len()..];
            let value = &rest[..rest.find('"').unwrap_or(0)];
            if attr.contains("srcset") {
                out.extend(
                    value
                        .split(',')
                        .filter_map(|c| c.split_whitespace().next())
                        .map(String::from),
                );
            } else {
                out.push(value.to_string());
            }
        }
    }
    for (i, _) in text.match_indices("url(") {
        let rest = &text[i + 4..];
        let value = rest[..rest.find(')').unwrap_or(0)]
            .trim()
            .trim_matches(['"', '\'']);
        out.push(value.to_string());
    }
    out
}

/// The text with `<!-- ... -->` comments removed (what is inside is not markup).
pub fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        rest = match rest[start..].find("-->") {
            Some(end) => &rest[start + end + 3..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

pub fn is_relative(r: &str) -> bool {
    !(r.is_empty()
        || r.starts_with('#')
        || r.contains("://")
        || r.starts_with("//")
        || r.starts_with("mailto:")
        || r.starts_with("data:")
        || r.starts_with("javascript:"))
}

/// Every relative reference of every HTML and CSS file under `dir` that points at no file.
pub fn dangling(dir: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    for p in files_under(dir) {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "html" | "htm" | "css") {
            continue;
        }
        let text = String::from_utf8_lossy(&fs::read(&p).unwrap()).into_owned();
        for r in references(&text).into_iter().filter(|r| is_relative(r)) {
            let clean = r.split('#').next().unwrap();
            let target = p.parent().unwrap().join(percent_decode(clean));
            if !target.is_file() {
                bad.push(format!("{} -> {r}", p.strip_prefix(dir).unwrap().display()));
            }
        }
    }
    bad
}
