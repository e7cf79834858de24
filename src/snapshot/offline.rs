//! The offline copy of a snapshot: every captured file under `offline/<host>/<path>`, pages and
//! style sheets rewritten so they refer to each other by relative paths, everything else
//! hard-linked to its object (the archive keeps one copy of the bytes).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

use url::Url;

use super::crawl::{is_html, without_fragment};
use super::css::rewrite_css;
use super::html::{process_html, resolve};
use super::paths::{numbered, offline_path, relative_href};
use super::record::{Capture, OfflineFile, Role};
use crate::digest::Digest;
use crate::store::{self, Store};

/// Folder of the offline copy inside a snapshot's folder.
pub const OFFLINE: &str = "offline";

/// Writes the offline copy of `captures` into `dir` (the snapshot's folder), setting each
/// capture's `offline` path. Returns the derived files (rewritten pages and style sheets).
pub fn build(
    store: &Store,
    dir: &Path,
    captures: &mut [Capture],
) -> Result<Vec<OfflineFile>, store::Error> {
    let paths = assign_paths(captures);
    let mut by_url: HashMap<String, usize> = HashMap::new();
    for (i, c) in captures.iter().enumerate() {
        by_url.entry(c.final_url.clone()).or_insert(i);
        by_url.entry(c.url.clone()).or_insert(i);
    }
    let mut derived = Vec::new();
    for (i, capture) in captures.iter().enumerate() {
        let from = &paths[i];
        let link = |url: &Url| -> String {
            let key = without_fragment(url);
            match by_url.get(&key) {
                Some(&j) => {
                    let mut href = relative_href(from, &paths[j]);
                    if let Some(f) = url.fragment() {
                        href.push('#');
                        href.push_str(f);
                    }
                    href
                }
                None => url.to_string(),
            }
        };
        let base = Url::parse(&capture.final_url).map_err(|e| invalid(&capture.final_url, e))?;
        let rewritten = if matches!(capture.role, Role::Page | Role::Frame)
            || capture.media_type.as_deref() == Some("text/html")
        {
            let bytes = object(store, &capture.sha256)?;
            is_html(capture.media_type.as_deref(), &bytes).then(|| {
                process_html(
                    &bytes,
                    crate::fetch::charset(&capture.headers).as_deref(),
                    &base,
                    &mut |r| Some(link(&r.url)),
                )
            })
        } else if capture.role == Role::Stylesheet
            || capture.media_type.as_deref() == Some("text/css")
        {
            let bytes = object(store, &capture.sha256)?;
            let css = String::from_utf8_lossy(&bytes);
            Some(
                rewrite_css(&css, |r| {
                    Some(resolve(&r.url, &base).map_or_else(|| r.url.clone(), |u| link(&u)))
                })
                .into_bytes(),
            )
        } else {
            None
        };
        let rel = format!("{OFFLINE}/{}", from.join("/"));
        let digest = match rewritten {
            Some(bytes) => {
                let d = Digest::of(&bytes);
                store.objects().put(&d, &bytes).map_err(store::Error::io(
                    "store the offline copy of",
                    Path::new(&capture.url),
                ))?;
                derived.push(OfflineFile {
                    path: rel.clone(),
                    sha256: d,
                });
                d
            }
            None => capture.sha256,
        };
        place(store, &digest, &dir.join(&rel))?;
    }
    for (capture, path) in captures.iter_mut().zip(&paths) {
        capture.offline = Some(format!("{OFFLINE}/{}", path.join("/")));
    }
    Ok(derived)
}

/// An offline path for each capture. Two URLs with the same bytes at the same path (`/` and
/// `/index.html`) share one file; otherwise, where two URLs map to one file, or a file would
/// need to be a folder too, later ones are numbered.
fn assign_paths(captures: &[Capture]) -> Vec<Vec<String>> {
    let mut order: Vec<usize> = (0..captures.len()).collect();
    order.sort_by(|a, b| captures[*a].final_url.cmp(&captures[*b].final_url));
    let mut files: HashMap<Vec<String>, Digest> = HashMap::new();
    let mut dirs: HashSet<Vec<String>> = HashSet::new();
    let mut out = vec![Vec::new(); captures.len()];
    for i in order {
        let c = &captures[i];
        let base = Url::parse(&c.final_url)
            .map(|u| offline_path(&u, c.media_type.as_deref()))
            .unwrap_or_else(|_| vec!["invalid".to_string(), format!("{i}.bin")]);
        if files.get(&base) == Some(&c.sha256) {
            out[i] = base;
            continue;
        }
        let clashes = |p: &Vec<String>| {
            files.contains_key(p)
                || dirs.contains(p)
                || (1..p.len()).any(|n| files.contains_key(&p[..n]))
        };
        let mut path = base.clone();
        let mut n = 2;
        while clashes(&path) {
            path = numbered(&base, n);
            n += 1;
        }
        for n in 1..path.len() {
            dirs.insert(path[..n].to_vec());
        }
        files.insert(path.clone(), c.sha256);
        out[i] = path;
    }
    out
}

/// Puts an object at `path`: a hard link (no second copy of the bytes), or a copy where the
/// file system cannot link.
fn place(store: &Store, digest: &Digest, path: &Path) -> Result<(), store::Error> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(store::Error::io("create", parent))?;
    }
    let object = store.objects().path(digest);
    if path.exists() {
        return Ok(());
    }
    if fs::hard_link(&object, path).is_err() {
        fs::copy(&object, path).map_err(store::Error::io("write", path))?;
    }
    Ok(())
}

fn object(store: &Store, digest: &Digest) -> Result<Vec<u8>, store::Error> {
    store
        .objects()
        .read(digest)
        .map_err(store::Error::io("read", &store.objects().path(digest)))
}

fn invalid(url: &str, e: url::ParseError) -> store::Error {
    store::Error::Io {
        action: "read the URL",
        path: url.into(),
        source: std::io::Error::other(e),
    }
}
