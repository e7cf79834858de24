//! The offline copy of a snapshot: every captured file under `offline/<host>/<path>`, pages and
//! style sheets rewritten so they refer to each other by relative paths, everything else
//! hard-linked to its object (the archive keeps one copy of the bytes).

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use url::Url;

use super::crawl::{is_html, without_fragment};
use super::css::{decode, rewrite_css};
use super::html::{process_html, resolve};
use super::paths::{Layout, offline_path, relative_href};
use super::record::{Capture, OfflineFile, Role};
use crate::digest::Digest;
use crate::report::Problem;
use crate::store::layout::{OFFLINE, RENDERS};
use crate::store::{self, Store};

/// What building an offline copy made.
#[derive(Debug, Default)]
pub struct Built {
    /// Files vaultkeep derived (rewritten pages and style sheets).
    pub derived: Vec<OfflineFile>,
    /// Files that could not be written or read; the rest of the copy stands.
    pub problems: Vec<Problem>,
}

/// Writes the offline copy of `captures` into `dir` (the snapshot's folder), setting each
/// capture's `offline` path. A file that cannot be made is a problem of that file, never of
/// the snapshot (issue 8).
pub fn build(store: &Store, dir: &Path, captures: &mut [Capture]) -> Built {
    let paths = assign_paths(captures);
    let mut by_url: HashMap<String, usize> = HashMap::new();
    for (i, c) in captures.iter().enumerate() {
        by_url.entry(c.final_url.clone()).or_insert(i);
        by_url.entry(c.url.clone()).or_insert(i);
        for alias in &c.aliases {
            by_url.entry(alias.clone()).or_insert(i);
        }
    }
    let mut built = Built::default();
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
        let rel = format!("{OFFLINE}/{}", from.join("/"));
        match copy_one(store, capture, &link) {
            Ok(digest) => {
                if let Some(d) = digest {
                    built.derived.push(OfflineFile {
                        path: rel.clone(),
                        sha256: d,
                    });
                }
                let placed = place(store, &digest.unwrap_or(capture.sha256), &dir.join(&rel));
                if let Err(e) = placed {
                    built
                        .problems
                        .push(Problem::new(&rel, crate::report::chain(&e)));
                }
            }
            Err(e) => built
                .problems
                .push(Problem::new(&rel, crate::report::chain(&e))),
        }
    }
    // Screenshots and PDFs, named after their pages.
    for (capture, path) in captures.iter().zip(&paths) {
        let Some(r) = &capture.rendered else {
            continue;
        };
        let name = path.join("/");
        for (digest, ext) in [(r.screenshot, "png"), (r.pdf, "pdf")] {
            if let Some(d) = digest {
                let rel = format!("{RENDERS}/{name}.{ext}");
                if let Err(e) = place(store, &d, &dir.join(&rel)) {
                    built
                        .problems
                        .push(Problem::new(&rel, crate::report::chain(&e)));
                }
            }
        }
    }
    for (capture, path) in captures.iter_mut().zip(&paths) {
        capture.offline = Some(format!("{OFFLINE}/{}", path.join("/")));
    }
    built
}

/// The offline bytes of one capture: a rewritten page or style sheet, stored as an object
/// (its digest returned), or `None` when the captured bytes serve as they are.
fn copy_one(
    store: &Store,
    capture: &Capture,
    link: &dyn Fn(&Url) -> String,
) -> Result<Option<Digest>, store::Error> {
    let Ok(base) = Url::parse(&capture.final_url) else {
        return Ok(None);
    };
    // A page rendered in the browser: its offline copy is made from the rendered DOM (UTF-8,
    // scripts removed), whose links resolve against the address it ended at.
    if let Some(r) = &capture.rendered
        && let Some(dom) = r.dom
    {
        let base = r
            .base
            .as_deref()
            .and_then(|b| Url::parse(b).ok())
            .unwrap_or(base);
        let bytes = object(store, &dom)?;
        let out = process_html(&bytes, Some("utf-8"), &base, &mut |r| Some(link(&r.url)));
        let d = Digest::of(&out);
        store.objects().put(&d, &out).map_err(store::Error::io(
            "store the offline copy of",
            &store.objects().path(&d),
        ))?;
        return Ok(Some(d));
    }
    let charset = crate::fetch::charset(&capture.headers);
    let rewritten = if matches!(capture.role, Role::Page | Role::Frame)
        || capture.media_type.as_deref() == Some("text/html")
    {
        let bytes = object(store, &capture.sha256)?;
        is_html(capture.media_type.as_deref(), &bytes).then(|| {
            process_html(&bytes, charset.as_deref(), &base, &mut |r| {
                Some(link(&r.url))
            })
        })
    } else if capture.role == Role::Stylesheet || capture.media_type.as_deref() == Some("text/css")
    {
        let bytes = object(store, &capture.sha256)?;
        let (css, utf8) = decode(&bytes, charset.as_deref());
        let out = rewrite_css(&css, |r| {
            Some(resolve(&r.url, &base).map_or_else(|| r.url.clone(), |u| link(&u)))
        });
        // Another encoding, read as text: the copy is UTF-8, said by a byte-order mark.
        let mut bytes = if utf8 {
            Vec::new()
        } else {
            b"\xEF\xBB\xBF".to_vec()
        };
        bytes.extend(out.into_bytes());
        Some(bytes)
    } else {
        None
    };
    let Some(bytes) = rewritten else {
        return Ok(None);
    };
    let d = Digest::of(&bytes);
    store.objects().put(&d, &bytes).map_err(store::Error::io(
        "store the offline copy of",
        &store.objects().path(&d),
    ))?;
    Ok(Some(d))
}

/// An offline path for each capture, in URL order: two URLs with the same bytes at the same
/// path share one file; otherwise clashes get numbered names (see [`Layout`]).
fn assign_paths(captures: &[Capture]) -> Vec<Vec<String>> {
    let mut order: Vec<usize> = (0..captures.len()).collect();
    order.sort_by(|a, b| captures[*a].final_url.cmp(&captures[*b].final_url));
    let mut layout = Layout::default();
    let mut out = vec![Vec::new(); captures.len()];
    for i in order {
        let c = &captures[i];
        let wanted = Url::parse(&c.final_url)
            .map(|u| offline_path(&u, c.media_type.as_deref()))
            .unwrap_or_else(|_| vec!["invalid".to_string(), format!("{i}.bin")]);
        out[i] = layout.place(wanted, &c.sha256);
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
    if !object.is_file() {
        // Packed (a scan stored the same bytes): links need a file of its own.
        let bytes = self::object(store, digest)?;
        store
            .objects()
            .put(digest, &bytes)
            .map_err(store::Error::io("write", &object))?;
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
