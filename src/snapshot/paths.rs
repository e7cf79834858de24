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

/// Longest file or folder name kept as is (bytes); longer ones are cut and hashed. File systems
/// allow 255; the margin leaves room for a `_2` and an extension.
const MAX_NAME: usize = 150;

/// Longest offline path (bytes, relative to the offline folder). Longer ones fold into
/// `<host>/_long/<hash>_<name>`, so the absolute path stays well under the 4096 bytes of
/// PATH_MAX wherever the archive lives, and a URL of 5,000 folders costs one file (issue 8).
const MAX_PATH: usize = 1024;

/// Names Windows reserves (a copy of the archive may travel there).
const RESERVED: [&str; 22] = [
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// The offline path of `url`, as segments, for a body of media type `media`.
pub fn offline_path(url: &Url, media: Option<&str>) -> Vec<String> {
    let mut host = url.host_str().unwrap_or("no-host").to_string();
    if let Some(port) = url.port() {
        host.push_str(&format!("_{port}"));
    }
    let mut segments = vec![shorten(&sanitize(&host))];
    let raw: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
    let (dirs, last) = match raw.split_last() {
        Some((last, dirs)) => (dirs, *last),
        None => (&[][..], ""),
    };
    segments.extend(dirs.iter().map(|s| shorten(&sanitize(&decode(s)))));
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
    let length: usize = segments.iter().map(|s| s.len() + 1).sum();
    if length > MAX_PATH {
        let hash = &Digest::of(url.as_str().as_bytes()).to_hex()[..16];
        let name = segments.pop().unwrap_or_default();
        return vec![
            segments.swap_remove(0),
            "_long".into(),
            shorten(&format!("{hash}_{name}")),
        ];
    }
    segments
}

/// The offline paths handed out so far, as a tree keyed by (folder, name), so that placing a
/// path costs its own length whatever came before (issue 8: linear in the input). Names are
/// compared without case, so the copy also works on case-insensitive file systems.
#[derive(Debug, Default)]
pub struct Layout {
    /// (parent, lowercase name) → (node, name as placed, the file's bytes or `None` for a folder)
    nodes: std::collections::HashMap<(u32, String), (u32, String, Option<Digest>)>,
    next: u32,
}

/// Where a wanted path stands in a [`Layout`].
enum Fit {
    /// Nothing in the way.
    Free,
    /// The same bytes are already there, under these names.
    Shared(Vec<String>),
    /// A file sits where folder `i` of the path should be.
    FileInTheWay(usize),
    /// The name is taken by other bytes or by a folder.
    Taken,
}

impl Layout {
    /// Places a file holding `digest` at `wanted`, or where that clashes at a variant (a
    /// numbered name, a renamed folder), and returns where it went. The same bytes wanted at
    /// the same place share one file (`/` and `/index.html` of a static site).
    pub fn place(&mut self, wanted: Vec<String>, digest: &Digest) -> Vec<String> {
        let mut path = wanted;
        let mut n = 2;
        for attempt in 0..64 {
            match self.fit(&path, digest) {
                Fit::Free => {
                    self.insert(&path, digest);
                    return path;
                }
                Fit::Shared(names) => return names,
                Fit::FileInTheWay(i) => path[i].push('_'),
                Fit::Taken => {
                    path = numbered(&path, n);
                    n += 1;
                }
            }
            if attempt == 48 {
                // Something hostile: give up on readable names.
                let host = path.first().cloned().unwrap_or_else(|| "_".into());
                let last = path.last().cloned().unwrap_or_default();
                let hash = &digest.to_hex()[..12];
                path = vec![
                    host,
                    "_clash".into(),
                    shorten(&format!("{hash}_{attempt}_{last}")),
                ];
            }
        }
        // Unreachable in practice: 64 clashes in a row.
        let unique = format!("{}_{}", digest.to_hex(), self.next);
        let path = vec!["_clash".to_string(), unique];
        self.insert(&path, digest);
        path
    }

    fn fit(&self, path: &[String], digest: &Digest) -> Fit {
        let mut parent = 0;
        let mut names = Vec::with_capacity(path.len());
        for (i, segment) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            match self.nodes.get(&(parent, segment.to_lowercase())) {
                None => return Fit::Free,
                Some((_, name, Some(d))) if last => {
                    if d != digest {
                        return Fit::Taken;
                    }
                    names.push(name.clone());
                    return Fit::Shared(names);
                }
                Some((_, _, Some(_))) => return Fit::FileInTheWay(i),
                Some(_) if last => return Fit::Taken,
                Some((id, name, None)) => {
                    names.push(name.clone());
                    parent = *id;
                }
            }
        }
        Fit::Taken
    }

    fn insert(&mut self, path: &[String], digest: &Digest) {
        let mut parent = 0;
        for (i, segment) in path.iter().enumerate() {
            let file = (i + 1 == path.len()).then_some(*digest);
            let next = &mut self.next;
            let (id, _, _) = self
                .nodes
                .entry((parent, segment.to_lowercase()))
                .or_insert_with(|| {
                    *next += 1;
                    (*next, segment.clone(), file)
                });
            parent = *id;
        }
    }
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

/// A file name from a URL segment: no separators, no NUL or control characters, no `.`/`..`,
/// no name Windows reserves (`con`, `aux.png`...).
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
    let stem = s.split('.').next().unwrap_or("").to_ascii_lowercase();
    match s.as_str() {
        "" | "." | ".." => "_".to_string(),
        _ if RESERVED.contains(&stem.as_str()) => format!("_{s}"),
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
        // mime_guess's first pick for this is `.aaf`; a browser knows `.bin` for what it is.
        "application/octet-stream" => "bin",
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
    fn every_long_segment_is_cut_and_a_deep_path_folds_into_one_file() {
        let long_dir = format!("https://x.org/{}/file.png", "L".repeat(300));
        let p = offline_path(&Url::parse(&long_dir).unwrap(), Some("image/png"));
        assert!(p.iter().all(|s| s.len() <= MAX_NAME), "{p:?}");
        let accents = format!("https://x.org/{}/file.png", "%C3%A9".repeat(150));
        let p = offline_path(&Url::parse(&accents).unwrap(), Some("image/png"));
        assert!(p.iter().all(|s| s.len() <= MAX_NAME), "{p:?}");
        let deep = format!("https://x.org/{}x.png", "d/".repeat(5000));
        let p = offline_path(&Url::parse(&deep).unwrap(), Some("image/png"));
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!((p[0].as_str(), p[1].as_str()), ("x.org", "_long"));
        assert!(p[2].ends_with("_x.png"));
    }

    #[test]
    fn dangerous_names_become_harmless() {
        assert_eq!(path("https://x.org/a/%2e%2e/b", None), "x.org/b.bin");
        assert_eq!(
            path("https://x.org/%2e%2e%2f%2e%2e%2fetc", None),
            "x.org/.._.._etc"
        );
        assert_eq!(
            path("https://x.org/con", Some("text/html")),
            "x.org/_con.html"
        );
        assert_eq!(
            path("https://x.org/aux.png", Some("image/png")),
            "x.org/_aux.png"
        );
        assert_eq!(
            path("https://x.org/a%00b%0d%0a.png", None),
            "x.org/a_b__.png"
        );
    }

    #[test]
    fn unknown_types_are_bin() {
        assert_eq!(
            path("https://x.org/blob", Some("application/octet-stream")),
            "x.org/blob.bin"
        );
    }

    fn segs(p: &str) -> Vec<String> {
        p.split('/').map(String::from).collect()
    }

    #[test]
    fn the_layout_numbers_clashes_shares_identical_files_and_never_puts_a_file_in_a_folders_way() {
        let mut l = Layout::default();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        assert_eq!(l.place(segs("h/x.png"), &a), segs("h/x.png"));
        assert_eq!(
            l.place(segs("h/x.png"), &a),
            segs("h/x.png"),
            "same bytes share"
        );
        assert_eq!(
            l.place(segs("h/X.PNG"), &b),
            segs("h/X_2.PNG"),
            "case-insensitive"
        );
        // A folder is wanted where a file is: the folder gets another name.
        assert_eq!(l.place(segs("h/x.png/y.png"), &b), segs("h/x.png_/y.png"));
        // A file is wanted where a folder is: the file is numbered.
        assert_eq!(l.place(segs("h/x.png_"), &b), segs("h/x_2.png_"));
    }

    #[test]
    fn placing_many_deep_paths_costs_their_length() {
        let mut l = Layout::default();
        let deep: Vec<String> = std::iter::once("h".to_string())
            .chain((0..20_000).map(|_| "d".to_string()))
            .collect();
        let d = Digest::of(b"x");
        assert_eq!(l.place(deep.clone(), &d).len(), deep.len());
        assert_eq!(l.nodes.len(), deep.len());
    }

    #[test]
    fn long_names_are_cut_with_a_hash() {
        let long = "x".repeat(300);
        let p = path(&format!("https://x.org/{long}.png"), Some("image/png"));
        let name = p.rsplit('/').next().unwrap();
        assert!(name.len() <= MAX_NAME && name.ends_with(".png"), "{name}");
    }
}
