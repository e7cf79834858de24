//! Local copies of web pages: which snapshot holds a URL, and the link a note uses to open it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use percent_encoding::utf8_percent_encode;
use url::Url;

use crate::snapshot::paths::SEGMENT;
use crate::snapshot::record::{self, Role, Snapshot};
use crate::store::Store;

/// The newest offline copy of one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// The snapshot holding it.
    pub snapshot: String,
    /// When the page was captured.
    pub captured: Timestamp,
    /// Its file in the offline copy, on disk.
    pub entry: PathBuf,
}

/// The newest copy of every captured page, by URL (without fragment).
#[derive(Debug, Default)]
pub struct Copies {
    by_url: HashMap<String, Copy>,
}

impl Copies {
    /// Reads every snapshot record of the archive.
    pub fn load(store: &Store) -> Copies {
        let mut copies = Copies::default();
        for snap in record::load_all(store).into_iter().flatten() {
            copies.add(store, &snap);
        }
        copies
    }

    /// Adds the pages of one snapshot (a newer copy of a URL replaces an older one here; both
    /// stay in the archive).
    pub fn add(&mut self, store: &Store, snap: &Snapshot) {
        let dir = store.snapshot_dir(&snap.id);
        for c in &snap.captures {
            if !matches!(c.role, Role::Page | Role::Frame) {
                continue;
            }
            let Some(offline) = &c.offline else { continue };
            let copy = Copy {
                snapshot: snap.id.clone(),
                captured: c.time,
                entry: dir.join(offline),
            };
            for url in [&c.url, &c.final_url] {
                let key = key(url);
                match self.by_url.get(&key) {
                    Some(old) if old.captured >= copy.captured => {}
                    _ => {
                        self.by_url.insert(key, copy.clone());
                    }
                }
            }
        }
    }

    /// The newest copy of a URL, if any.
    pub fn get(&self, url: &str) -> Option<&Copy> {
        self.by_url.get(&key(url))
    }
}

/// A URL as copies are looked up: parsed (so `https://x.org` is `https://x.org/`), without
/// fragment.
pub fn key(url: &str) -> String {
    match Url::parse(url.trim()) {
        Ok(mut u) => {
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => url.trim().to_string(),
    }
}

/// How a note links to a copy so that Obsidian opens it: a vault path when the copy is inside
/// the vault (Obsidian opens an `.html` file there in the browser), else a `file:///` URL
/// (Obsidian hands it to the system's default application; it does not follow relative links
/// that leave the vault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyLink {
    /// A `file:///` URL, percent-encoded.
    File(String),
    /// A path from the vault root.
    Vault(String),
}

impl CopyLink {
    /// The link for a copy at `entry`, seen from `vault`.
    pub fn to(entry: &Path, vault: &Path) -> CopyLink {
        let entry = std::fs::canonicalize(entry).unwrap_or_else(|_| absolute(entry));
        let vault = std::fs::canonicalize(vault).unwrap_or_else(|_| absolute(vault));
        match entry.strip_prefix(&vault) {
            Ok(rel) => CopyLink::Vault(rel.to_string_lossy().replace('\\', "/")),
            Err(_) => CopyLink::File(file_url(&entry)),
        }
    }

    /// As a frontmatter value: the URL, or a wikilink to the vault path.
    pub fn as_property(&self) -> String {
        match self {
            CopyLink::File(url) => url.clone(),
            CopyLink::Vault(path) => format!("[[{path}]]"),
        }
    }

    /// As the target of a Markdown link in a note's body.
    pub fn as_href(&self) -> String {
        match self {
            CopyLink::File(url) => url.clone(),
            CopyLink::Vault(path) => path
                .split('/')
                .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
                .collect::<Vec<_>>()
                .join("/"),
        }
    }
}

/// `file:///abs/path` for an absolute path, as the URL standard encodes it (any bytes,
/// UTF-8 or not), with brackets and parentheses encoded too: they would end a Markdown link
/// around it.
pub fn file_url(path: &Path) -> String {
    match url::Url::from_file_path(path) {
        Ok(u) => u
            .as_str()
            .replace('(', "%28")
            .replace(')', "%29")
            .replace('[', "%5B")
            .replace(']', "%5D"),
        // Not absolute: made so by the caller; kept readable rather than dropped.
        Err(()) => format!("file://{}", path.display()),
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::env::current_dir()
        .map(|d| d.join(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_are_absolute_and_percent_encoded() {
        assert_eq!(
            file_url(Path::new("/home/me/my archive/a (1).html")),
            "file:///home/me/my%20archive/a%20%281%29.html"
        );
        assert_eq!(
            file_url(Path::new("/notes/café [x].html")),
            "file:///notes/caf%C3%A9%20%5Bx%5D.html"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_path_that_is_not_utf8_keeps_its_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let path = Path::new(std::ffi::OsStr::from_bytes(b"/a/caf\xe9.html"));
        let url = file_url(path);
        assert_eq!(url, "file:///a/caf%E9.html");
        let back = url::Url::parse(&url).unwrap().to_file_path().unwrap();
        assert_eq!(back, path);
    }

    #[test]
    fn a_copy_inside_the_vault_gets_a_vault_path_outside_a_file_url() {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault");
        std::fs::create_dir_all(vault.join("_archive/x")).unwrap();
        std::fs::write(vault.join("_archive/x/index.html"), "x").unwrap();
        std::fs::write(dir.path().join("out.html"), "x").unwrap();
        let inside = CopyLink::to(&vault.join("_archive/x/index.html"), &vault);
        assert_eq!(inside, CopyLink::Vault("_archive/x/index.html".into()));
        assert_eq!(inside.as_property(), "[[_archive/x/index.html]]");
        let outside = CopyLink::to(&dir.path().join("out.html"), &vault);
        assert!(
            matches!(&outside, CopyLink::File(u) if u.starts_with("file:///") && u.ends_with("/out.html"))
        );
    }

    #[test]
    fn urls_are_looked_up_without_fragment_and_with_a_root_slash() {
        assert_eq!(key("https://www.ouishare.net"), "https://www.ouishare.net/");
        assert_eq!(key("https://x.org/a#b"), "https://x.org/a");
    }
}
