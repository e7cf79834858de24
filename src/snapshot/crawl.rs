//! Capturing one root: the page, its requisites from any host, and (with a depth) the pages
//! under the root's host and path prefix, fetched concurrently within the fetcher's limits.
//!
//! Bounded in every direction (issue 8): a fixed number of URLs in flight (the rest wait in a
//! queue), a cap on URLs and on bytes per snapshot, a stop signal. Storing a body and reading
//! it for references run on blocking threads, beside the fetches. Captures reach the
//! snapshot's journal in batches, after their objects are durable.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use jiff::Timestamp;
use url::Url;

use super::css::{css_refs, decode};
use super::html::{RefKind, process_html, resolve};
use super::journal::{Line, SnapshotJournal};
use super::plan::Plan;
use super::record::{Capture, FailedUrl, Role};
use super::render::{Budget, Recorder};
use super::stop::Stop;
use crate::browser::{BrowserError, Render};
use crate::config::BrowserUse;
use crate::digest::Digest;
use crate::fetch::{Failure, Fetched, Fetcher, shorten};
use crate::report::Problem;
use crate::store::{self, Store};

/// URLs longer than this are not fetched: servers commonly refuse beyond 8 KiB, and a page
/// can hold megabytes of one URL.
const MAX_URL: usize = 8 * 1024;

/// Failures for URLs over a limit listed one by one; beyond this they are only counted.
const LISTED_OVER_LIMIT: usize = 10_000;

/// A batch of captures reaches the journal after this many, or after this long.
const BATCH: usize = 256;
const BATCH_EVERY: Duration = Duration::from_secs(1);

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
    /// Why the crawl stopped before it was done (a limit, a stop request).
    pub incomplete: Option<String>,
    /// URLs over a limit that were only counted, past the first ten thousand listed.
    pub not_listed: u64,
    /// Pages that could not be rendered in the browser (captured statically instead).
    pub problems: Vec<Problem>,
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

/// One URL to fetch.
struct Wanted {
    url: Url,
    role: Role,
    depth: u32,
}

/// A fetched and stored URL, read for its references.
pub(crate) struct Landed {
    pub(crate) capture: Capture,
    new: bool,
    refs: Vec<(Url, RefKind)>,
    /// An HTML page that looks built by its scripts.
    script_built: bool,
    /// An HTML page or frame.
    html: bool,
}

/// A page captured and being rendered in the browser; its own references are followed after
/// the rendered page's (by then, what the browser loaded is seen and not fetched again).
struct RenderJob {
    /// Its capture, in the crawl's list.
    index: usize,
    url: Url,
    depth: u32,
    refs: Vec<(Url, RefKind)>,
}

/// One piece of work done.
enum Done {
    Fetched(Wanted, Result<Box<Landed>, Failure>),
    Rendered(RenderJob, Result<Render, BrowserError>),
}

/// What the browser takes from a page it renders for a snapshot.
const RENDER_WANTED: crate::browser::Wanted = crate::browser::Wanted {
    dom: true,
    screenshot: true,
    full_page: true,
    pdf: true,
    scroll: true,
};

/// Captures `plan` into `store` (objects, and the journal; the caller writes the record).
/// With a browser among the `tools`, pages the plan says to render are rendered, their
/// requests answered by a [`Recorder`] through the same fetcher and budget.
pub async fn crawl(
    tools: super::Tools<'_>,
    store: &Store,
    plan: &Plan,
    progress: &dyn Progress,
    stop: &Stop,
    journal: &SnapshotJournal,
) -> Result<Crawl, store::Error> {
    let fetcher = tools.fetcher;
    let in_flight_max = fetcher.config().concurrency.max(1) * 2;
    let budget = Budget::new(plan.limits);
    let browser = tools.browser.filter(|_| plan.browser != BrowserUse::Never);
    let recorder = browser.map(|_| Recorder::new(fetcher, store, &budget));
    let mut state = State {
        plan,
        scope: Scope::of(&plan.root),
        seen: HashSet::new(),
        aliases: HashMap::new(),
        pages: 0,
        budget: &budget,
        queue: VecDeque::new(),
        out: Crawl::default(),
        listed_over_limit: 0,
        browser_missing: false,
    };
    state.want(plan.root.clone(), Role::Page, 0);
    let mut in_flight: FuturesUnordered<BoxFuture<'_, Done>> = FuturesUnordered::new();
    // The URLs in flight, so that a stop can say which were cut short.
    let mut flying: HashMap<String, (Url, Role)> = HashMap::new();
    let mut batch: Vec<Line> = Vec::new();
    let mut flushed = Instant::now();
    loop {
        while in_flight.len() < in_flight_max
            && let Some(w) = state.queue.pop_front()
        {
            progress.queued(1);
            flying.insert(w.url.to_string(), (w.url.clone(), w.role));
            in_flight.push(Box::pin(async move {
                let (w, result) = land(fetcher, store, w).await;
                Done::Fetched(w, result.map(Box::new))
            }));
        }
        let next = tokio::select! {
            biased;
            () = stop.requested() => None,
            done = in_flight.next() => Some(done),
        };
        let Some(done) = next else {
            state.out.incomplete = stop.reason();
            break;
        };
        let Some(done) = done else {
            break; // nothing in flight, nothing queued: done
        };
        match done {
            Done::Fetched(wanted, result) => {
                flying.remove(wanted.url.as_str());
                match result {
                    Ok(landed) => {
                        budget.received(landed.capture.size);
                        if let Some(r) = &recorder {
                            r.knows(&landed.capture);
                        }
                        let render = recorder.is_some()
                            && !state.browser_missing
                            && landed.capture.role == Role::Page
                            && landed.html
                            && (plan.browser == BrowserUse::Always || landed.script_built);
                        let final_url = landed.capture.final_url.clone();
                        let refs = state.land(*landed, &mut batch, progress);
                        match (render, browser, &recorder, Url::parse(&final_url)) {
                            (true, Some(launcher), Some(recorder), Ok(url)) => {
                                let job = RenderJob {
                                    index: state.out.captures.len() - 1,
                                    url,
                                    depth: wanted.depth,
                                    refs,
                                };
                                in_flight.push(Box::pin(async move {
                                    let network = recorder.for_page(job.depth);
                                    let result =
                                        launcher.render(&network, &job.url, RENDER_WANTED).await;
                                    Done::Rendered(job, result)
                                }));
                            }
                            _ => {
                                for (url, kind) in refs {
                                    state.follow(url, kind, wanted.role, wanted.depth);
                                }
                            }
                        }
                    }
                    Err(failure) => {
                        tracing::debug!(url = %shorten(wanted.url.as_str()), %failure, "not captured");
                        if let Some(r) = &recorder {
                            r.knows_failure(&wanted.url, &failure);
                        }
                        let f = failed(&wanted.url, wanted.role, &failure);
                        state.fail(f, &mut batch, progress);
                    }
                }
            }
            Done::Rendered(job, result) => {
                if let Some(r) = &recorder {
                    state.take_recorded(r, &mut batch, progress);
                }
                state.rendered(store, job, result).await?;
            }
        }
        if batch.len() >= BATCH || flushed.elapsed() >= BATCH_EVERY {
            flush(store, journal, &mut batch).await?;
            flushed = Instant::now();
        }
        if budget.spent() {
            state.out.incomplete = Some(format!(
                "limit: {} bytes received, the most a snapshot takes (max_total_bytes)",
                plan.limits.max_bytes
            ));
            break;
        }
    }
    // What was still in flight or waiting when the crawl stopped early.
    if let Some(why) = state.out.incomplete.clone() {
        let failure = if why.starts_with("limit") {
            Failure::Limit { detail: why }
        } else {
            Failure::Interrupted { detail: why }
        };
        drop(in_flight);
        for (url, role) in flying.into_values() {
            state.over_limit(&url, role, &failure);
        }
        let left: Vec<Wanted> = state.queue.drain(..).collect();
        for w in left {
            state.over_limit(&w.url, w.role, &failure);
        }
    } else {
        drop(in_flight);
    }
    if let Some(r) = &recorder {
        state.take_recorded(r, &mut batch, progress);
    }
    flush(store, journal, &mut batch).await?;
    state.attach_aliases();
    Ok(state.out)
}

/// Makes the batch's objects durable, then appends it to the journal.
async fn flush(
    store: &Store,
    journal: &SnapshotJournal,
    batch: &mut Vec<Line>,
) -> Result<(), store::Error> {
    if batch.is_empty() {
        return Ok(());
    }
    let lines = std::mem::take(batch);
    crate::fsutil::off_executor(|| {
        store
            .objects()
            .sync()
            .map_err(store::Error::io("sync the objects of", store.root()))?;
        journal.append(&lines)
    })
}

/// Fetches one URL, then stores its body and reads it for references off the executor.
async fn land(fetcher: &Fetcher, store: &Store, w: Wanted) -> (Wanted, Result<Landed, Failure>) {
    let fetched = match fetcher.get(&w.url).await {
        Ok(f) => f,
        Err(e) => return (w, Err(e)),
    };
    let (store, role, depth) = (store.clone(), w.role, w.depth);
    let landed = tokio::task::spawn_blocking(move || store_and_read(&store, &fetched, role, depth))
        .await
        .unwrap_or_else(|e| {
            Err(Failure::Store {
                detail: format!("storing stopped: {e}"),
            })
        });
    (w, landed)
}

/// Stores a body as an object and lists what it refers to.
pub(crate) fn store_and_read(
    store: &Store,
    fetched: &Fetched,
    role: Role,
    depth: u32,
) -> Result<Landed, Failure> {
    let digest = Digest::of(&fetched.body);
    let new = store
        .objects()
        .put(&digest, &fetched.body)
        .map_err(|e| Failure::Store {
            detail: crate::report::chain(&store::Error::io(
                "store",
                &store.objects().path(&digest),
            )(e)),
        })?;
    let capture = Capture {
        url: fetched.url.to_string(),
        final_url: fetched.final_url.to_string(),
        redirects: fetched.redirects.clone(),
        status: fetched.status,
        headers: fetched.headers.clone(),
        time: fetched.time,
        sha256: digest,
        size: fetched.body.len() as u64,
        media_type: fetched.media_type(),
        role,
        depth,
        offline: None,
        aliases: Vec::new(),
        rendered: None,
    };
    let html = matches!(role, Role::Page | Role::Frame)
        && is_html(capture.media_type.as_deref(), &fetched.body);
    let script_built =
        html && role == Role::Page && super::text::read(&fetched.body).script_built();
    Ok(Landed {
        capture,
        new,
        refs: references(fetched, role),
        script_built,
        html,
    })
}

/// What a captured body refers to: links and requisites of a page, `url()`s of a sheet.
fn references(fetched: &Fetched, role: Role) -> Vec<(Url, RefKind)> {
    let media = fetched.media_type();
    let mut refs = Vec::new();
    if matches!(role, Role::Page | Role::Frame) && is_html(media.as_deref(), &fetched.body) {
        process_html(
            &fetched.body,
            fetched.charset().as_deref(),
            &fetched.final_url,
            &mut |r| {
                refs.push((r.url.clone(), r.kind));
                None
            },
        );
    } else if role == Role::Stylesheet || media.as_deref() == Some("text/css") {
        let (css, _) = decode(&fetched.body, fetched.charset().as_deref());
        for r in css_refs(&css) {
            if let Some(url) = resolve(&r.url, &fetched.final_url) {
                let kind = if r.import {
                    RefKind::Stylesheet
                } else {
                    RefKind::Requisite
                };
                refs.push((url, kind));
            }
        }
    }
    refs
}

struct State<'a> {
    plan: &'a Plan,
    scope: Scope,
    seen: HashSet<String>,
    /// `…/index.html` wanted while `…/` was (or the other way round): the same page, fetched
    /// once (issue 8). Alias → the URL fetched.
    aliases: HashMap<String, String>,
    pages: usize,
    budget: &'a Budget,
    queue: VecDeque<Wanted>,
    out: Crawl,
    listed_over_limit: usize,
    /// A page needed the browser and there was none: the others are not tried.
    browser_missing: bool,
}

impl State<'_> {
    /// Queues a URL once, within the page budget and the snapshot's limits.
    fn want(&mut self, mut url: Url, role: Role, depth: u32) {
        url.set_fragment(None);
        if url.as_str().len() > MAX_URL {
            let failure = Failure::Limit {
                detail: format!(
                    "a URL of {} bytes; longer than {MAX_URL} bytes are not fetched",
                    url.as_str().len()
                ),
            };
            self.over_limit(&url, role, &failure);
            return;
        }
        let key = url.to_string();
        if !self.seen.insert(key.clone()) {
            return;
        }
        if let Some(twin) = index_twin(&url)
            && self.seen.contains(&twin)
        {
            self.aliases.insert(key, twin);
            return;
        }
        if role == Role::Page {
            if self.pages >= self.plan.max_pages {
                let failure = Failure::Limit {
                    detail: format!(
                        "the crawl's {} pages were taken (max_pages)",
                        self.plan.max_pages
                    ),
                };
                self.over_limit(&url, role, &failure);
                return;
            }
            self.pages += 1;
        }
        if !self.budget.admit() {
            let failure = Failure::Limit {
                detail: format!(
                    "the snapshot's {} URLs were taken (max_resources)",
                    self.plan.limits.max_resources
                ),
            };
            self.over_limit(&url, role, &failure);
            if self.out.incomplete.is_none() {
                self.out.incomplete = Some(format!(
                    "limit: {} URLs, the most a snapshot fetches (max_resources)",
                    self.plan.limits.max_resources
                ));
            }
            return;
        }
        self.queue.push_back(Wanted { url, role, depth });
    }

    /// Records a capture (journal batch, counts, progress); returns what it refers to.
    fn land(
        &mut self,
        landed: Landed,
        batch: &mut Vec<Line>,
        progress: &dyn Progress,
    ) -> Vec<(Url, RefKind)> {
        let size = landed.capture.size;
        if landed.new {
            self.out.new_bytes += size;
        } else {
            self.out.reused_bytes += size;
        }
        self.seen.insert(landed.capture.url.clone());
        self.seen.insert(landed.capture.final_url.clone());
        batch.push(Line::Capture(Box::new(landed.capture.clone())));
        self.out.captures.push(landed.capture);
        progress.done(size, false);
        landed.refs
    }

    /// Records a failure.
    fn fail(&mut self, f: FailedUrl, batch: &mut Vec<Line>, progress: &dyn Progress) {
        batch.push(Line::Failure(f.clone()));
        self.out.failures.push(f);
        progress.done(0, true);
    }

    /// Records what the browser's requests captured; style sheets are read for the rest of
    /// what they refer to (fonts and pictures the rendered page did not show yet).
    fn take_recorded(
        &mut self,
        recorder: &Recorder<'_>,
        batch: &mut Vec<Line>,
        progress: &dyn Progress,
    ) {
        for item in recorder.take() {
            match item {
                Ok(landed) => {
                    let (role, depth) = (landed.capture.role, landed.capture.depth);
                    // Counted by the recorder already.
                    let refs = self.land(landed, batch, progress);
                    if role == Role::Stylesheet {
                        for (url, kind) in refs {
                            self.follow(url, kind, role, depth);
                        }
                    }
                }
                Err(f) => {
                    self.seen.insert(f.url.clone());
                    self.fail(f, batch, progress);
                }
            }
        }
    }

    /// A page came back from the browser: what it made of the page is stored beside the
    /// capture, and the rendered page's references are followed, then the raw page's. A page the browser could
    /// not render keeps its static capture, and its own references are followed.
    async fn rendered(
        &mut self,
        store: &Store,
        job: RenderJob,
        result: Result<Render, BrowserError>,
    ) -> Result<(), store::Error> {
        let render = match result {
            Ok(render) => render,
            Err(e) => {
                if matches!(e, BrowserError::NotFound) {
                    // Said once, by the command or the daemon.
                    self.browser_missing = true;
                    tracing::debug!(url = %job.url, "not rendered: {e}");
                } else {
                    tracing::warn!(url = %job.url, "not rendered: {e}");
                }
                self.out.problems.push(Problem::new(
                    job.url.as_str(),
                    format!("captured without the browser: {e}"),
                ));
                for (url, kind) in job.refs {
                    self.follow(url, kind, Role::Page, job.depth);
                }
                return Ok(());
            }
        };
        let store_for_keep = store.clone();
        let (rendered, render) = crate::fsutil::off_executor(move || {
            super::render::keep(&store_for_keep, &render).map(|r| (r, render))
        })?;
        self.out.captures[job.index].rendered = Some(rendered);
        let base = render
            .base
            .as_deref()
            .and_then(|b| Url::parse(b).ok())
            .unwrap_or(job.url);
        let mut refs = Vec::new();
        if let Some(dom) = &render.dom {
            process_html(dom.as_bytes(), Some("utf-8"), &base, &mut |r| {
                refs.push((r.url.clone(), r.kind));
                None
            });
        }
        // Then what the raw page named and the browser did not load (icons, the manifest,
        // images for other screens): what the browser loaded is seen already.
        refs.extend(job.refs);
        for (url, kind) in refs {
            self.follow(url, kind, Role::Page, job.depth);
        }
        Ok(())
    }

    /// Records a URL that was not fetched because of a limit (or a stop): listed up to a
    /// bound, counted beyond it.
    fn over_limit(&mut self, url: &Url, role: Role, failure: &Failure) {
        if self.listed_over_limit >= LISTED_OVER_LIMIT {
            self.out.not_listed += 1;
            return;
        }
        self.listed_over_limit += 1;
        let mut f = failed(url, role, failure);
        if f.url.len() > MAX_URL {
            f.url = shorten(&f.url);
        }
        self.out.failures.push(f);
    }

    /// Queues a reference found in a body fetched as `role` at `depth`.
    fn follow(&mut self, url: Url, kind: RefKind, role: Role, depth: u32) {
        match kind {
            RefKind::Page
                if role == Role::Page && depth < self.plan.depth && self.scope.contains(&url) =>
            {
                self.want(url, Role::Page, depth + 1)
            }
            RefKind::Frame if role == Role::Page => self.want(url, Role::Frame, depth),
            RefKind::Stylesheet => self.want(url, Role::Stylesheet, depth),
            RefKind::Requisite => self.want(url, Role::Requisite, depth),
            _ => {}
        }
    }

    /// Each alias goes to the capture of the URL fetched in its place, when that is a page.
    fn attach_aliases(&mut self) {
        if self.aliases.is_empty() {
            return;
        }
        let by_url: HashMap<&str, usize> = self
            .out
            .captures
            .iter()
            .enumerate()
            .map(|(i, c)| (c.url.as_str(), i))
            .collect();
        let mut moves: Vec<(usize, String)> = Vec::new();
        for (alias, fetched) in &self.aliases {
            if let Some(&i) = by_url.get(fetched.as_str())
                && matches!(self.out.captures[i].role, Role::Page | Role::Frame)
            {
                moves.push((i, alias.clone()));
            }
        }
        for (i, alias) in moves {
            self.out.captures[i].aliases.push(alias);
        }
        for c in &mut self.out.captures {
            c.aliases.sort();
        }
    }
}

/// The other spelling of a folder's index page: `/a/` for `/a/index.html` (or `.htm`), and
/// `/a/index.html` for `/a/`. URLs with a query have none.
fn index_twin(url: &Url) -> Option<String> {
    if url.query().is_some() {
        return None;
    }
    let path = url.path();
    let mut twin = url.clone();
    if path.ends_with('/') {
        twin.set_path(&format!("{path}index.html"));
    } else if let Some(dir) = path
        .strip_suffix("index.html")
        .or_else(|| path.strip_suffix("index.htm"))
        .filter(|d| d.ends_with('/'))
    {
        twin.set_path(dir);
    } else {
        return None;
    }
    Some(twin.to_string())
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
            let head = head.trim_start_matches('\u{feff}').trim_start();
            head.starts_with("<!doctype html") || head.starts_with("<html")
        }
        _ => false,
    }
}

pub(crate) fn failed(url: &Url, role: Role, failure: &Failure) -> FailedUrl {
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

    #[test]
    fn a_folder_and_its_index_page_are_twins() {
        let twin = |u: &str| index_twin(&Url::parse(u).unwrap());
        assert_eq!(
            twin("https://x.org/").as_deref(),
            Some("https://x.org/index.html")
        );
        assert_eq!(
            twin("https://x.org/a/index.html").as_deref(),
            Some("https://x.org/a/")
        );
        assert_eq!(
            twin("https://x.org/a/index.htm").as_deref(),
            Some("https://x.org/a/")
        );
        assert_eq!(twin("https://x.org/a/myindex.html"), None);
        assert_eq!(twin("https://x.org/?q=1"), None);
        assert_eq!(twin("https://x.org/a.html"), None);
    }
}
