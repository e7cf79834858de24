//! Pages in the browser (issue 11). The browser has no network of its own: a [`Recorder`]
//! answers each request of a page being captured through the crawl's fetcher (the
//! private-address guard, robots.txt and the snapshot's limits apply to scripts too) and
//! records what it fetched as captures of the snapshot, like any other; a [`Replay`] answers
//! from a snapshot's own captures, for screenshots of what was kept; [`Live`] fetches and
//! keeps nothing (a homepage's picture). What the browser made of
//! a page ([`keep`]) is stored beside its capture, which stays as it was received.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use futures::future::BoxFuture;
use jiff::Timestamp;
use url::Url;

use super::crawl::{Landed, failed, store_and_read, without_fragment};
use super::plan::Limits;
use super::record::{Capture, FailedUrl, Rendered, Role};
use crate::browser::{Answer, Kind, Network, Render, Request};
use crate::digest::Digest;
use crate::fetch::{Failure, Fetcher};
use crate::store::{self, Store};

/// What the snapshot may still fetch: URLs and bytes, shared by the crawl and the pages it
/// renders.
pub struct Budget {
    limits: Limits,
    admitted: AtomicUsize,
    received: AtomicU64,
}

impl Budget {
    /// The whole budget of a snapshot.
    pub fn new(limits: Limits) -> Budget {
        Budget {
            limits,
            admitted: AtomicUsize::new(0),
            received: AtomicU64::new(0),
        }
    }

    /// Takes one URL from the budget; false when none is left.
    pub fn admit(&self) -> bool {
        self.admitted
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.limits.max_resources).then_some(n + 1)
            })
            .is_ok()
    }

    /// Counts bytes received; the total so far.
    pub fn received(&self, bytes: u64) -> u64 {
        self.received.fetch_add(bytes, Ordering::SeqCst) + bytes
    }

    /// Whether the bytes are spent.
    pub fn spent(&self) -> bool {
        self.received.load(Ordering::SeqCst) >= self.limits.max_bytes
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }
}

/// How a URL was answered before: the browser asks for the same style sheet on every page.
#[derive(Debug, Clone)]
enum Known {
    Body {
        status: u16,
        headers: Vec<(String, String)>,
        sha256: Digest,
    },
    Redirect {
        status: u16,
        location: String,
    },
    Status(u16),
    Failed(&'static str),
}

/// Answers the requests of the pages a crawl renders, fetching and recording as it goes.
pub struct Recorder<'a> {
    fetcher: &'a Fetcher,
    store: &'a Store,
    budget: &'a Budget,
    known: Mutex<HashMap<String, Known>>,
    fresh: Mutex<Vec<Result<Landed, FailedUrl>>>,
}

impl<'a> Recorder<'a> {
    /// A recorder for one snapshot.
    pub fn new(fetcher: &'a Fetcher, store: &'a Store, budget: &'a Budget) -> Recorder<'a> {
        Recorder {
            fetcher,
            store,
            budget,
            known: Mutex::new(HashMap::new()),
            fresh: Mutex::new(Vec::new()),
        }
    }

    /// A capture the crawl made itself: the browser gets it from the archive, not the server.
    pub fn knows(&self, capture: &Capture) {
        let body = Known::Body {
            status: capture.status,
            headers: capture.headers.clone(),
            sha256: capture.sha256,
        };
        let mut known = lock(&self.known);
        if capture.url != capture.final_url {
            known.insert(
                capture.url.clone(),
                Known::Redirect {
                    status: capture.redirects.first().map_or(302, |h| h.status),
                    location: capture.final_url.clone(),
                },
            );
        }
        for alias in &capture.aliases {
            known.insert(alias.clone(), body.clone());
        }
        known.insert(capture.final_url.clone(), body);
    }

    /// A URL the crawl tried and could not capture.
    pub fn knows_failure(&self, url: &Url, failure: &Failure) {
        let known = match failure {
            Failure::Http { status } => Known::Status(*status),
            f => Known::Failed(error_reason(f.reason())),
        };
        lock(&self.known).insert(without_fragment(url), known);
    }

    /// What was captured (or failed) since the last call.
    pub fn take(&self) -> Vec<Result<Landed, FailedUrl>> {
        std::mem::take(&mut *lock(&self.fresh))
    }

    /// The network of one page at `depth`.
    pub fn for_page(&self, depth: u32) -> PageNetwork<'_> {
        PageNetwork {
            recorder: self,
            depth,
        }
    }

    async fn answer(&self, request: Request, depth: u32) -> Answer {
        let role = match request.kind {
            Kind::Page => Role::Page,
            Kind::Frame => Role::Frame,
            Kind::Stylesheet => Role::Stylesheet,
            Kind::Other => Role::Requisite,
        };
        let url = request.url;
        if !matches!(request.method.as_str(), "GET" | "HEAD") {
            let failure = Failure::Unsupported {
                detail: format!(
                    "a {} request made by the page; vaultkeep captures GET requests",
                    request.method
                ),
            };
            self.failed(&url, role, &failure);
            return Answer::Fail("BlockedByClient");
        }
        let key = without_fragment(&url);
        let known = lock(&self.known).get(&key).cloned();
        if let Some(known) = known {
            return self.replay(known).await;
        }
        if !self.budget.admit() || self.budget.spent() {
            let failure = Failure::Limit {
                detail: format!(
                    "the snapshot's limits were reached ({} URLs, {} bytes)",
                    self.budget.limits().max_resources,
                    self.budget.limits().max_bytes
                ),
            };
            self.failed(&url, role, &failure);
            lock(&self.known).insert(key, Known::Failed("BlockedByClient"));
            return Answer::Fail("BlockedByClient");
        }
        let fetched = match self.fetcher.get(&url).await {
            Ok(f) => f,
            Err(failure) => {
                let (known, answer) = match failure {
                    Failure::Http { status } => (
                        Known::Status(status),
                        Answer::Respond {
                            status,
                            headers: Vec::new(),
                            body: Bytes::new(),
                        },
                    ),
                    ref f => {
                        let reason = error_reason(f.reason());
                        (Known::Failed(reason), Answer::Fail(reason))
                    }
                };
                lock(&self.known).insert(key, known);
                self.failed(&url, role, &failure);
                return answer;
            }
        };
        self.budget.received(fetched.body.len() as u64);
        let answer = if fetched.redirects.is_empty() {
            Answer::Respond {
                status: fetched.status,
                headers: fetched.headers.clone(),
                body: fetched.body.clone(),
            }
        } else {
            Answer::Redirect {
                status: fetched.redirects[0].status,
                location: fetched.final_url.to_string(),
            }
        };
        let store = self.store.clone();
        let landed =
            tokio::task::spawn_blocking(move || store_and_read(&store, &fetched, role, depth))
                .await
                .unwrap_or_else(|e| {
                    Err(Failure::Store {
                        detail: format!("storing stopped: {e}"),
                    })
                });
        match landed {
            Ok(landed) => {
                self.knows(&landed.capture);
                lock(&self.fresh).push(Ok(landed));
                answer
            }
            Err(failure) => {
                self.failed(&url, role, &failure);
                Answer::Fail("Failed")
            }
        }
    }

    async fn replay(&self, known: Known) -> Answer {
        match known {
            Known::Body {
                status,
                headers,
                sha256,
            } => match read_object(self.store, sha256).await {
                Some(body) => Answer::Respond {
                    status,
                    headers,
                    body,
                },
                None => Answer::Fail("Failed"),
            },
            Known::Redirect { status, location } => Answer::Redirect { status, location },
            Known::Status(status) => Answer::Respond {
                status,
                headers: Vec::new(),
                body: Bytes::new(),
            },
            Known::Failed(reason) => Answer::Fail(reason),
        }
    }

    fn failed(&self, url: &Url, role: Role, failure: &Failure) {
        lock(&self.fresh).push(Err(failed(url, role, failure)));
    }
}

/// The recorder, for one page (its captures get the page's depth).
pub struct PageNetwork<'r> {
    recorder: &'r Recorder<'r>,
    depth: u32,
}

impl Network for PageNetwork<'_> {
    fn answer(&self, request: Request) -> BoxFuture<'_, Answer> {
        Box::pin(self.recorder.answer(request, self.depth))
    }
}

/// Answers from a snapshot's captures only: the page as it was kept, for its screenshot.
pub struct Replay<'a> {
    store: &'a Store,
    by_url: HashMap<String, &'a Capture>,
}

impl<'a> Replay<'a> {
    /// A replay of `captures`.
    pub fn new(store: &'a Store, captures: &'a [Capture]) -> Replay<'a> {
        let mut by_url = HashMap::new();
        for c in captures {
            by_url.entry(c.final_url.clone()).or_insert(c);
            by_url.entry(c.url.clone()).or_insert(c);
            for a in &c.aliases {
                by_url.entry(a.clone()).or_insert(c);
            }
        }
        Replay { store, by_url }
    }
}

impl Network for Replay<'_> {
    fn answer(&self, request: Request) -> BoxFuture<'_, Answer> {
        Box::pin(async move {
            let Some(c) = self.by_url.get(&without_fragment(&request.url)) else {
                return Answer::Fail("InternetDisconnected");
            };
            match read_object(self.store, c.sha256).await {
                Some(body) => Answer::Respond {
                    status: c.status,
                    headers: c.headers.clone(),
                    body,
                },
                None => Answer::Fail("Failed"),
            }
        })
    }
}

/// Answers from the web through the fetcher, recording nothing: a homepage's picture.
pub struct Live<'a> {
    fetcher: &'a Fetcher,
}

impl<'a> Live<'a> {
    /// The fetcher's view of the web.
    pub fn new(fetcher: &'a Fetcher) -> Live<'a> {
        Live { fetcher }
    }
}

impl Network for Live<'_> {
    fn answer(&self, request: Request) -> BoxFuture<'_, Answer> {
        Box::pin(async move {
            if !matches!(request.method.as_str(), "GET" | "HEAD") {
                return Answer::Fail("BlockedByClient");
            }
            match self.fetcher.get(&request.url).await {
                Ok(f) if f.redirects.is_empty() => Answer::Respond {
                    status: f.status,
                    headers: f.headers,
                    body: f.body,
                },
                Ok(f) => Answer::Redirect {
                    status: f.redirects[0].status,
                    location: f.final_url.to_string(),
                },
                Err(Failure::Http { status }) => Answer::Respond {
                    status,
                    headers: Vec::new(),
                    body: Bytes::new(),
                },
                Err(f) => Answer::Fail(error_reason(f.reason())),
            }
        })
    }
}

async fn read_object(store: &Store, digest: Digest) -> Option<Bytes> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.objects().read(&digest).ok().map(Bytes::from))
        .await
        .ok()
        .flatten()
}

/// The DevTools error a failure looks like to the page.
fn error_reason(reason: &str) -> &'static str {
    match reason {
        "no such host" => "NameNotResolved",
        "offline" => "InternetDisconnected",
        "refused" => "ConnectionRefused",
        "timeout" => "TimedOut",
        "private" | "robots" | "limit" => "BlockedByClient",
        _ => "Failed",
    }
}

/// Stores what the browser made of a page (blocking): its DOM, screenshot and PDF as objects.
pub fn keep(store: &Store, render: &Render) -> Result<Rendered, store::Error> {
    let put = |bytes: &[u8]| -> Result<Digest, store::Error> {
        let d = Digest::of(bytes);
        store
            .objects()
            .put(&d, bytes)
            .map_err(store::Error::io("store", &store.objects().path(&d)))?;
        Ok(d)
    };
    Ok(Rendered {
        dom: render
            .dom
            .as_deref()
            .map(|d| put(d.as_bytes()))
            .transpose()?,
        base: render.base.clone(),
        screenshot: render.screenshot.as_deref().map(put).transpose()?,
        pdf: render.pdf.as_deref().map(put).transpose()?,
        width: render.width,
        height: render.height,
        title: render.title.clone(),
        time: Timestamp::now(),
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
