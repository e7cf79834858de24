//! Capturing one root: the page, its requisites from any host, and (with a depth) the pages
//! under the root's host and path prefix, fetched concurrently within the fetcher's limits.

use std::collections::HashSet;

use futures::stream::{FuturesUnordered, StreamExt};
use jiff::Timestamp;
use url::Url;

use super::css::css_refs;
use super::html::{RefKind, process_html, resolve};
use super::record::{Capture, FailedUrl, Role};
use crate::digest::Digest;
use crate::fetch::{Failure, Fetched, Fetcher};
use crate::store::{self, Store};

/// What to capture for one root URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The root URL.
    pub root: Url,
    /// Link hops to follow under the root's host and path prefix (0: the page alone).
    pub depth: u32,
    /// Most pages to fetch.
    pub max_pages: usize,
}

/// Everything a crawl captured and failed to capture.
#[derive(Debug, Default)]
pub struct Crawl {
    /// Captures, in the order they completed.
    pub captures: Vec<Capture>,
    /// Failures.
    pub failures: Vec<FailedUrl>,
    /// New bytes stored.
    pub new_bytes: u64,
    /// Bytes already held.
    pub reused_bytes: u64,
}

/// Counts for a progress display.
pub trait Progress: Sync {
    /// A URL was captured (`bytes` long) or failed.
    fn done(&self, bytes: u64, failed: bool);
    /// More URLs were queued.
    fn queued(&self, n: u64);
}

/// A crawl that nobody watches.
pub struct NoProgress;

impl Progress for NoProgress {
    fn done(&self, _: u64, _: bool) {}
    fn queued(&self, _: u64) {}
}

/// Captures `plan` into `store` (objects only; the caller records the snapshot).
pub async fn crawl(
    fetcher: &Fetcher,
    store: &Store,
    plan: &Plan,
    progress: &dyn Progress,
) -> Result<Crawl, store::Error> {
    let mut state = State {
        plan,
        scope: Scope::of(&plan.root),
        seen: HashSet::new(),
        pages: 0,
        queue: Vec::new(),
    };
    state.want(plan.root.clone(), Role::Page, 0);
    let mut out = Crawl::default();
    let mut in_flight = FuturesUnordered::new();
    loop {
        for (url, role, depth) in state.queue.drain(..) {
            progress.queued(1);
            in_flight.push(async move {
                let result = fetcher.get(&url).await;
                (url, role, depth, result)
            });
        }
        let Some((url, role, depth, result)) = in_flight.next().await else {
            break;
        };
        match result {
            Ok(fetched) => {
                let size = fetched.body.len() as u64;
                let capture = store_capture(store, &fetched, role, depth, &mut out)?;
                state.seen.insert(without_fragment(&fetched.final_url));
                state.follow(&fetched, role, depth);
                out.captures.push(capture);
                progress.done(size, false);
            }
            Err(failure) => {
                tracing::debug!(%url, %failure, "not captured");
                out.failures.push(failed(&url, role, &failure));
                progress.done(0, true);
            }
        }
    }
    Ok(out)
}

struct State<'a> {
    plan: &'a Plan,
    scope: Scope,
    seen: HashSet<String>,
    pages: usize,
    queue: Vec<(Url, Role, u32)>,
}

impl State<'_> {
    /// Queues a URL once, pages within the page budget.
    fn want(&mut self, mut url: Url, role: Role, depth: u32) {
        url.set_fragment(None);
        if !self.seen.insert(url.to_string()) {
            return;
        }
        if role == Role::Page {
            if self.pages >= self.plan.max_pages {
                return;
            }
            self.pages += 1;
        }
        self.queue.push((url, role, depth));
    }

    /// Queues what a captured body refers to.
    fn follow(&mut self, fetched: &Fetched, role: Role, depth: u32) {
        let media = fetched.media_type();
        if matches!(role, Role::Page | Role::Frame) && is_html(media.as_deref(), &fetched.body) {
            let mut refs = Vec::new();
            process_html(
                &fetched.body,
                fetched.charset().as_deref(),
                &fetched.final_url,
                &mut |r| {
                    refs.push(r.clone());
                    None
                },
            );
            for r in refs {
                match r.kind {
                    RefKind::Page
                        if role == Role::Page
                            && depth < self.plan.depth
                            && self.scope.contains(&r.url) =>
                    {
                        self.want(r.url, Role::Page, depth + 1)
                    }
                    RefKind::Frame if role == Role::Page => self.want(r.url, Role::Frame, depth),
                    RefKind::Stylesheet => self.want(r.url, Role::Stylesheet, depth),
                    RefKind::Requisite => self.want(r.url, Role::Requisite, depth),
                    _ => {}
                }
            }
        } else if role == Role::Stylesheet || media.as_deref() == Some("text/css") {
            let css = String::from_utf8_lossy(&fetched.body);
            for r in css_refs(&css) {
                if let Some(url) = resolve(&r.url, &fetched.final_url) {
                    let role = if r.import {
                        Role::Stylesheet
                    } else {
                        Role::Requisite
                    };
                    self.want(url, role, depth);
                }
            }
        }
    }
}

/// The pages a crawl may follow: the root's scheme, host and port, under its folder (as
/// `wget --no-parent` does).
struct Scope {
    origin: String,
    prefix: String,
}

impl Scope {
    fn of(root: &Url) -> Scope {
        let path = root.path();
        let prefix = path[..path.rfind('/').map_or(0, |i| i + 1)].to_string();
        Scope {
            origin: root.origin().ascii_serialization(),
            prefix,
        }
    }

    fn contains(&self, url: &Url) -> bool {
        url.origin().ascii_serialization() == self.origin && url.path().starts_with(&self.prefix)
    }
}

/// Whether a body is HTML: by its media type, or by its first bytes when the server says
/// nothing useful.
pub(crate) fn is_html(media: Option<&str>, body: &[u8]) -> bool {
    match media {
        Some("text/html" | "application/xhtml+xml") => true,
        Some("application/octet-stream" | "text/plain") | None => {
            let head = String::from_utf8_lossy(&body[..body.len().min(512)]).to_ascii_lowercase();
            let head = head.trim_start();
            head.starts_with("<!doctype html") || head.starts_with("<html")
        }
        _ => false,
    }
}

fn store_capture(
    store: &Store,
    fetched: &Fetched,
    role: Role,
    depth: u32,
    out: &mut Crawl,
) -> Result<Capture, store::Error> {
    let digest = Digest::of(&fetched.body);
    let objects = store.objects();
    let new = objects
        .put(&digest, &fetched.body)
        .map_err(store::Error::io(
            "store a capture of",
            std::path::Path::new(fetched.url.as_str()),
        ))?;
    let size = fetched.body.len() as u64;
    if new {
        out.new_bytes += size;
    } else {
        out.reused_bytes += size;
    }
    Ok(Capture {
        url: fetched.url.to_string(),
        final_url: fetched.final_url.to_string(),
        redirects: fetched.redirects.clone(),
        status: fetched.status,
        headers: fetched.headers.clone(),
        time: fetched.time,
        sha256: digest,
        size,
        media_type: fetched.media_type(),
        role,
        depth,
        offline: None,
    })
}

fn failed(url: &Url, role: Role, failure: &Failure) -> FailedUrl {
    FailedUrl {
        url: url.to_string(),
        reason: failure.reason().to_string(),
        detail: failure.to_string(),
        role,
        time: Timestamp::now(),
    }
}

pub(crate) fn without_fragment(url: &Url) -> String {
    let mut u = url.clone();
    u.set_fragment(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_is_the_roots_folder_on_its_origin() {
        let s = Scope::of(&Url::parse("https://x.org/docs/intro.html").unwrap());
        assert!(s.contains(&Url::parse("https://x.org/docs/a/b.html").unwrap()));
        assert!(!s.contains(&Url::parse("https://x.org/blog/").unwrap()));
        assert!(!s.contains(&Url::parse("http://x.org/docs/a.html").unwrap()));
        assert!(!s.contains(&Url::parse("https://cdn.x.org/docs/a.html").unwrap()));
        let root = Scope::of(&Url::parse("https://handbook.ouishare.net/").unwrap());
        assert!(root.contains(&Url::parse("https://handbook.ouishare.net/guides/x.html").unwrap()));
    }

    #[test]
    fn html_is_known_by_type_or_by_its_first_bytes() {
        assert!(is_html(Some("text/html"), b""));
        assert!(is_html(None, b"  <!DOCTYPE html><p>"));
        assert!(!is_html(Some("image/png"), b"<html>"));
        assert!(!is_html(None, b"%PDF-1.4"));
    }
}
