//! Where a captured URL lives in a snapshot's offline copy, and how one copied file refers to
//! another, so that a browser opening the copy from the file system finds everything.
//!
//! `https://handbook.ouishare.net/guides/Café?x=1` becomes
//! `handbook.ouishare.net/guides/Café_1a2b3c4d.html`: one folder per host, path segments
//! percent-decoded, the query folded into a short hash (a `?` would end a file URL's path), and
//! an extension a browser recognises added when the name has none.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use url::Url;

use crate::digest::Digest;

/// Longest file name kept as is; longer ones are cut and hashed.
const MAX_NAME: usize = 150;

/// The offline path of `url`, as segments, for a body of media type `media`.
pub fn offline_path(url: &Url, media: Option<&str>) -> Vec<String> {
    let mut host = url.host_str().unwrap_or("no-host").to_string();
    if let Some(port) = url.port() {
        host.push_str(&format!("_{port}"));
    }
    let mut segments = vec![sanitize(&host)];
    let raw: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
    let (dirs, last) = match raw.split_last() {
        Some((last, dirs)) => (dirs, *last),
        None => (&[][..], ""),
    };
    segments.extend(dirs.iter().map(|s| sanitize(&decode(s))));
    let mut name = if last.is_empty() {
        "index".to_string()
    } else {
        sanitize(&decode(last))
    };
    let (stem, ext) = split_ext(&name);
    let (mut stem, mut ext) = (stem.to_string(), ext.map(str::to_string));
    if last.is_empty() {
        ext = None;
    }
    if let Some(q) = url.query() {
        stem.push('_');
        stem.push_str(&Digest::of(q.as_bytes()).to_hex()[..8]);
    }
    let wanted = media.and_then(extension_for);
    ext = match (ext, wanted) {
        // A page must end in .html to open as one; keep .htm/.xhtml/.shtml as they are.
        (Some(e), Some("html"))
            if !matches!(e.to_ascii_lowercase().as_str(), "html" | "htm" | "xhtml") =>
        {
            stem = format!("{stem}.{e}");
            Some("html".to_string())
        }
        (Some(e), Some("css")) if !e.eq_ignore_ascii_case("css") => {
            stem = format!("{stem}.{e}");
            Some("css".to_string())
        }
        (Some(e), _) => Some(e),
        (None, w) => Some(
            w.unwrap_or(if last.is_empty() { "html" } else { "bin" })
                .to_string(),
        ),
    };
    name = match ext {
        Some(e) => format!("{stem}.{e}"),
        None => stem,
    };
    segments.push(shorten(&name));
    segments
}

/// Adds `_2`, `_3`... before the extension, for two URLs that map to one file.
pub fn numbered(segments: &[String], n: usize) -> Vec<String> {
    let mut out = segments.to_vec();
    if let Some(last) = out.last_mut() {
        let (stem, ext) = split_ext(last);
        *last = match ext {
            Some(e) => format!("{stem}_{n}.{e}"),
            None => format!("{stem}_{n}"),
        };
    }
    out
}

/// A relative URL from the file `from` to the file `to` (both offline paths), percent-encoded
/// so a browser reads it back as exactly those names.
pub fn relative_href(from: &[String], to: &[String]) -> String {
    let from_dirs = &from[..from.len().saturating_sub(1)];
    let common = from_dirs
        .iter()
        .zip(to.iter())
        .take_while(|(a, b)| a == b)
        .count();
    let mut parts: Vec<String> =
        std::iter::repeat_n("..".to_string(), from_dirs.len() - common).collect();
    parts.extend(
        to[common..]
            .iter()
            .map(|s| utf8_percent_encode(s, SEGMENT).to_string()),
    );
    let href = parts.join("/");
    // `a:b.html` would read as a URL scheme; `./` keeps it a path.
    if !href.starts_with("..") && href.split('/').next().is_some_and(|s| s.contains(':')) {
        format!("./{href}")
    } else {
        href
    }
}

/// Characters a path segment of a URL must escape: those that end or change a path, and the
/// brackets and parentheses that would end a Markdown link around it.
pub(crate) const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']')
    .add(b'(')
    .add(b')');

fn decode(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

/// A file name from a URL segment: no separators, no NUL, no `.`/`..`.
fn sanitize(segment: &str) -> String {
    let s: String = segment
        .chars()
        .map(|c| {
            if matches!(c, '/' | '\\' | '\0') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    match s.as_str() {
        "" | "." | ".." => "_".to_string(),
        _ => s,
    }
}

fn shorten(name: &str) -> String {
    if name.len() <= MAX_NAME {
        return name.to_string();
    }
    let (stem, ext) = split_ext(name);
    let mut cut = MAX_NAME - 20;
    while !stem.is_char_boundary(cut.min(stem.len())) {
        cut -= 1;
    }
    let hash = &Digest::of(name.as_bytes()).to_hex()[..8];
    let ext = ext
        .filter(|e| e.len() <= 10)
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    format!("{}_{hash}{ext}", &stem[..cut.min(stem.len())])
}

/// `("name", Some("ext"))`; a leading dot is not an extension.
fn split_ext(name: &str) -> (&str, Option<&str>) {
    match name.rfind('.') {
        Some(i) if i > 0 && i + 1 < name.len() && !name[i + 1..].contains(' ') => {
            (&name[..i], Some(&name[i + 1..]))
        }
        _ => (name, None),
    }
}

/// The extension a browser opening a file expects for a media type.
fn extension_for(media: &str) -> Option<&'static str> {
    Some(match media {
        "text/html" | "application/xhtml+xml" => "html",
        "text/css" => "css",
        "text/javascript" | "application/javascript" | "application/x-javascript" => "js",
        "application/json" | "application/manifest+json" => "json",
        "image/svg+xml" => "svg",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/avif" => "avif",
        "image/x-icon" | "image/vnd.microsoft.icon" => "ico",
        "font/woff2" => "woff2",
        "font/woff" | "application/font-woff" => "woff",
        "font/ttf" | "application/x-font-ttf" => "ttf",
        "font/otf" => "otf",
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        other => {
            return mime_guess::get_mime_extensions_str(other).and_then(|e| e.first().copied());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(url: &str, media: Option<&str>) -> String {
        offline_path(&Url::parse(url).unwrap(), media).join("/")
    }

    #[test]
    fn directory_urls_become_index_pages() {
        assert_eq!(
            path("https://handbook.ouishare.net/", Some("text/html")),
            "handbook.ouishare.net/index.html"
        );
        assert_eq!(
            path("https://x.org/a/", Some("text/html")),
            "x.org/a/index.html"
        );
        assert_eq!(path("https://x.org", Some("text/html")), "x.org/index.html");
    }

    #[test]
    fn pages_without_html_extension_get_one() {
        assert_eq!(
            path("https://x.org/about", Some("text/html")),
            "x.org/about.html"
        );
        assert_eq!(
            path("https://x.org/page.php", Some("text/html")),
            "x.org/page.php.html"
        );
        assert_eq!(
            path("https://x.org/page.htm", Some("text/html")),
            "x.org/page.htm"
        );
        assert_eq!(
            path("http://127.0.0.1:8080/a.html", Some("text/html")),
            "127.0.0.1_8080/a.html"
        );
    }

    #[test]
    fn queries_fold_into_a_hash_and_keep_the_extension() {
        let p = path(
            "https://x.org/f/fontawesome-webfont.woff2?v=4.7.0",
            Some("font/woff2"),
        );
        assert!(
            p.starts_with("x.org/f/fontawesome-webfont_") && p.ends_with(".woff2"),
            "{p}"
        );
        assert_ne!(
            p,
            path(
                "https://x.org/f/fontawesome-webfont.woff2?v=4.6.0",
                Some("font/woff2")
            )
        );
        assert!(!p.contains('?'));
    }

    #[test]
    fn percent_encoded_and_non_ascii_paths_become_real_names() {
        assert_eq!(
            path("https://x.org/guides/Board%20-%20Member", Some("text/html")),
            "x.org/guides/Board - Member.html"
        );
        assert_eq!(
            path("https://x.org/caf%C3%A9/na%2Fme.png", Some("image/png")),
            "x.org/café/na_me.png"
        );
    }

    #[test]
    fn files_without_extension_get_one_from_their_type() {
        assert_eq!(
            path("https://x.org/logo", Some("image/png")),
            "x.org/logo.png"
        );
        assert_eq!(path("https://x.org/blob", None), "x.org/blob.bin");
    }

    #[test]
    fn relative_hrefs_climb_and_escape() {
        let from: Vec<String> = ["x.org", "a", "b", "page.html"].map(String::from).to_vec();
        let to: Vec<String> = ["x.org", "a", "c d", "café #1.png"]
            .map(String::from)
            .to_vec();
        assert_eq!(relative_href(&from, &to), "../c%20d/caf%C3%A9%20%231.png");
        let other: Vec<String> = ["cdn.org", "s.css"].map(String::from).to_vec();
        assert_eq!(relative_href(&from, &other), "../../../cdn.org/s.css");
        let colon: Vec<String> = ["x.org", "a", "b", "a:b.html"].map(String::from).to_vec();
        assert_eq!(relative_href(&from, &colon), "./a:b.html");
    }

    #[test]
    fn long_names_are_cut_with_a_hash() {
        let long = "x".repeat(300);
        let p = path(&format!("https://x.org/{long}.png"), Some("image/png"));
        let name = p.rsplit('/').next().unwrap();
        assert!(name.len() <= MAX_NAME && name.ends_with(".png"), "{name}");
    }
}
