//! Fetching from the web: one configured HTTP client, shared by every snapshot and link check.
//!
//! Bounded in every direction (design.md, "Fetching"): connect and total timeouts, a body size
//! limit, a redirect limit; a global concurrency limit and a per-host one with an interval
//! between requests to a host; retries with backoff on 429, 503 and timeouts, honouring
//! `Retry-After`; robots.txt; and the private-address guard, applied after DNS resolution and
//! on every redirect hop. This is the only module that talks to the network.

mod failure;
mod guard;
mod robots;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use jiff::Timestamp;
use reqwest::{Method, StatusCode, redirect};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use url::Url;

pub use failure::{Failure, is_network_level};
pub use guard::is_private;

use crate::config::FetchConfig;

/// One redirect on the way to the final URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    /// The URL that answered with a redirect.
    pub url: String,
    /// Its status (301, 302, 303, 307, 308).
    pub status: u16,
}

/// A successful HTTP exchange.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The URL asked for.
    pub url: Url,
    /// The URL that answered, after redirects.
    pub final_url: Url,
    /// Redirects followed, in order.
    pub redirects: Vec<Hop>,
    /// Status of the final answer (2xx).
    pub status: u16,
    /// Response headers as received (after decompression, `Content-Encoding` is gone).
    pub headers: Vec<(String, String)>,
    /// The body, decompressed.
    pub body: Bytes,
    /// When the answer came.
    pub time: Timestamp,
}

impl Fetched {
    /// The media type, lowercased, without parameters.
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type")
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|v| !v.is_empty())
    }

    /// The `charset` parameter of `Content-Type`.
    pub fn charset(&self) -> Option<String> {
        charset(&self.headers)
    }

    /// A header's first value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The `charset` parameter of a `Content-Type` header among `headers`.
pub fn charset(headers: &[(String, String)]) -> Option<String> {
    let ct = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))?
        .1
        .as_str();
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The shared client.
pub struct Fetcher {
    client: reqwest::Client,
    config: FetchConfig,
    global: Arc<Semaphore>,
    hosts: Mutex<HashMap<String, Arc<HostGate>>>,
    robots: robots::Cache,
    /// When a server last answered (any status): the network worked then.
    last_answer: Mutex<Option<Instant>>,
}

/// How long an answer from some server vouches for the network: a failure at name resolution
/// or connection within this time is believed; later, it may be the network that is down.
const NETWORK_VOUCHED: Duration = Duration::from_secs(600);

/// Requests to one host in a row that got no answer (timeouts, refused or reset connections)
/// after which the host counts as having stopped answering: its other URLs fail at once
/// instead of each waiting out its own timeouts (issue 8).
const STRIKES: u32 = 3;

/// After this long, a host that stopped answering gets one request again (a long-running
/// daemon must not give up on a host for good).
const STRUCK_OUT_FOR: Duration = Duration::from_secs(120);

/// Longest wait for robots.txt: one attempt, no retries. A host that cannot serve it in this
/// time is slow for everything else too.
const ROBOTS_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-host politeness: a limit on requests in flight, and an interval between their starts.
struct HostGate {
    permits: Arc<Semaphore>,
    next: tokio::sync::Mutex<Instant>,
    /// The host's own minimum interval (robots.txt `Crawl-delay`), in ms.
    min_interval_ms: AtomicU64,
    /// Requests in a row that got no answer, and the last such failure.
    strikes: AtomicU32,
    last_strike: Mutex<Option<(Failure, Instant)>>,
}

/// The global and per-host permits of one request, held until its body is read (issue 8: a
/// slow body counts against the limits as long as it is being received).
struct Permits {
    _global: OwnedSemaphorePermit,
    _host: OwnedSemaphorePermit,
}

/// How one fetch treats its body.
#[derive(Clone, Copy)]
struct Mode {
    /// Obey robots.txt (false only for robots.txt itself).
    obey_robots: bool,
    /// A longer body: an error, or (robots.txt) cut there.
    truncate_at: Option<u64>,
    /// Attempts after the first.
    retries: u32,
    /// Time for each attempt.
    timeout: Duration,
}

impl Fetcher {
    /// Builds the client. Fails only if the TLS stack or the configured proxy cannot be set up.
    pub fn new(config: FetchConfig) -> Result<Fetcher, reqwest::Error> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            reqwest::header::HeaderValue::from_static(
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            ),
        );
        let mut builder = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(config.connect_timeout_secs))
            .timeout(Duration::from_secs(config.timeout_secs))
            .redirect(redirect::Policy::none())
            .dns_resolver(Arc::new(guard::GuardedResolver {
                allow_private: config.allow_private,
            }))
            // HTTP_PROXY and friends in the environment are ignored: a proxy resolves names
            // itself, out of the private-address guard's reach. Only `[fetch] proxy` sets one.
            .no_proxy();
        if let Some(proxy) = &config.proxy {
            builder = builder.proxy(reqwest::Proxy::all(proxy.as_str())?);
        }
        Ok(Fetcher {
            client: builder.build()?,
            global: Arc::new(Semaphore::new(config.concurrency.max(1))),
            hosts: Mutex::new(HashMap::new()),
            robots: robots::Cache::default(),
            last_answer: Mutex::new(None),
            config,
        })
    }

    /// Whether some server answered recently, so that a failure at name resolution or
    /// connection says something about its URL rather than about the network (issue 9).
    pub fn network_known_up(&self) -> bool {
        self.last_answer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() < NETWORK_VOUCHED)
    }

    fn answered(&self) {
        *self.last_answer.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// The settings it was made with.
    pub fn config(&self) -> &FetchConfig {
        &self.config
    }

    /// GETs `url`, following redirects, and reads the body, within the URL's time budget.
    pub async fn get(&self, url: &Url) -> Result<Fetched, Failure> {
        self.within_budget(Method::GET, url).await
    }

    /// HEADs `url`, following redirects (for link checks), within the URL's time budget.
    pub async fn head(&self, url: &Url) -> Result<Fetched, Failure> {
        self.within_budget(Method::HEAD, url).await
    }

    /// One URL, robots.txt and retries included, bounded by `url_budget_secs`.
    async fn within_budget(&self, method: Method, url: &Url) -> Result<Fetched, Failure> {
        let budget = Duration::from_secs(self.config.url_budget_secs.max(1));
        let mode = Mode {
            obey_robots: true,
            truncate_at: None,
            retries: self.config.retries,
            timeout: Duration::from_secs(self.config.timeout_secs),
        };
        match tokio::time::timeout(budget, self.fetch(method, url, mode)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout {
                seconds: budget.as_secs(),
            }),
        }
    }

    /// robots.txt: one attempt, a short timeout, the first 500 KiB.
    async fn fetch_robots(&self, url: &Url) -> Result<Bytes, Failure> {
        let mode = Mode {
            obey_robots: false,
            truncate_at: Some(robots::MAX_ROBOTS_BYTES),
            retries: 0,
            timeout: ROBOTS_TIMEOUT.min(Duration::from_secs(self.config.timeout_secs)),
        };
        match tokio::time::timeout(mode.timeout, self.fetch(Method::GET, url, mode)).await {
            Ok(result) => result.map(|f| f.body),
            Err(_) => Err(Failure::Timeout {
                seconds: mode.timeout.as_secs(),
            }),
        }
    }

    /// Fetches `url`, following redirects.
    async fn fetch(&self, method: Method, url: &Url, mode: Mode) -> Result<Fetched, Failure> {
        let mut current = url.clone();
        let mut redirects: Vec<Hop> = Vec::new();
        loop {
            self.check_url(&current)?;
            if mode.obey_robots
                && self.config.robots
                && !Box::pin(self.robots.allows(self, &current)).await
            {
                return Err(Failure::Robots);
            }
            let (response, permits) = self.send_with_retries(&method, &current, mode).await?;
            let status = response.status();
            if status.is_redirection()
                && let Some(location) = response.headers().get(reqwest::header::LOCATION)
            {
                drop(permits);
                let next = location
                    .to_str()
                    .ok()
                    .and_then(|l| current.join(l).ok())
                    .ok_or_else(|| Failure::Unsupported {
                        detail: format!("bad redirect Location from {}", shorten(current.as_str())),
                    })?;
                redirects.push(Hop {
                    url: current.to_string(),
                    status: status.as_u16(),
                });
                if redirects.len() > self.config.max_redirects {
                    return Err(Failure::TooManyRedirects {
                        limit: self.config.max_redirects,
                    });
                }
                if next == *url || redirects.iter().any(|h| h.url == next.as_str()) {
                    return Err(Failure::RedirectLoop {
                        url: shorten(next.as_str()),
                    });
                }
                current = next;
                continue;
            }
            if !status.is_success() {
                return Err(Failure::Http {
                    status: status.as_u16(),
                });
            }
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = self.read_body(response, mode).await;
            drop(permits);
            return Ok(Fetched {
                url: url.clone(),
                final_url: current,
                redirects,
                status: status.as_u16(),
                headers,
                body: body?,
                time: Timestamp::now(),
            });
        }
    }

    /// Only http(s), and no literal private address (names are checked by the resolver).
    fn check_url(&self, url: &Url) -> Result<(), Failure> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Failure::Unsupported {
                detail: format!("{} is not an http(s) URL", shorten(url.as_str())),
            });
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => {
                return Err(Failure::Unsupported {
                    detail: format!("{} has no host", shorten(url.as_str())),
                });
            }
        };
        if let Some(ip) = literal
            && !self.config.allow_private
            && is_private(ip)
        {
            return Err(Failure::Private {
                detail: format!("{ip} is a private address (use --allow-private to fetch it)"),
            });
        }
        Ok(())
    }

    /// One request, retried on 429, 503, timeouts and dropped connections. Returns the
    /// response with the permits it holds until its body is read.
    async fn send_with_retries(
        &self,
        method: &Method,
        url: &Url,
        mode: Mode,
    ) -> Result<(reqwest::Response, Permits), Failure> {
        let gate = self.gate(url);
        let mut attempt = 0;
        loop {
            if let Some(failure) = gate.struck_out(url) {
                return Err(failure);
            }
            let global = self.global.clone().acquire_owned().await.map_err(closed)?;
            let host = gate
                .enter(Duration::from_millis(self.config.host_interval_ms))
                .await?;
            let permits = Permits {
                _global: global,
                _host: host,
            };
            let result = self
                .client
                .request(method.clone(), url.clone())
                .timeout(mode.timeout)
                .send()
                .await;
            if result.is_ok() {
                self.answered();
                gate.strikes.store(0, Ordering::Relaxed);
            }
            let (failure, wait) = match result {
                Ok(r)
                    if matches!(
                        r.status(),
                        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                    ) =>
                {
                    let status = r.status().as_u16();
                    let after = retry_after(&r);
                    if let Some(after) = after
                        && after > Duration::from_secs(self.config.max_retry_after_secs)
                    {
                        tracing::info!(url = %shorten(url.as_str()), ?after, "Retry-After is longer than the limit; giving up");
                        return Ok((r, permits));
                    }
                    (Failure::Http { status }, after)
                }
                Ok(r) => return Ok((r, permits)),
                Err(e) => {
                    let failure = Failure::from_reqwest(&e, mode.timeout);
                    if e.is_timeout() || e.is_connect() {
                        gate.strike(&failure);
                    }
                    if !failure.is_transient() {
                        return Err(failure);
                    }
                    (failure, None)
                }
            };
            drop(permits);
            if attempt >= mode.retries {
                return Err(failure);
            }
            let backoff = Duration::from_millis(
                self.config
                    .retry_base_ms
                    .saturating_mul(1 << attempt.min(16)),
            );
            let wait = wait.unwrap_or(backoff);
            tracing::debug!(url = %shorten(url.as_str()), %failure, ?wait, attempt, "retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Reads a body up to the size limit: beyond it, an error, or (robots.txt) the first part.
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        mode: Mode,
    ) -> Result<Bytes, Failure> {
        let limit = mode.truncate_at.unwrap_or(self.config.max_bytes.get());
        if mode.truncate_at.is_none() && response.content_length().is_some_and(|n| n > limit) {
            return Err(Failure::TooLarge { limit });
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Failure::from_reqwest(&e, mode.timeout))?
        {
            if body.len() as u64 + chunk.len() as u64 > limit {
                if mode.truncate_at.is_some() {
                    body.extend_from_slice(&chunk[..(limit as usize - body.len())]);
                    break;
                }
                return Err(Failure::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    fn gate(&self, url: &Url) -> Arc<HostGate> {
        let key = format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(0)
        );
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts
            .entry(key)
            .or_insert_with(|| {
                Arc::new(HostGate {
                    permits: Arc::new(Semaphore::new(self.config.host_concurrency.max(1))),
                    next: tokio::sync::Mutex::new(Instant::now()),
                    min_interval_ms: AtomicU64::new(0),
                    strikes: AtomicU32::new(0),
                    last_strike: Mutex::new(None),
                })
            })
            .clone()
    }
}

impl HostGate {
    /// Waits for a slot and for the interval since the previous start.
    async fn enter(&self, interval: Duration) -> Result<OwnedSemaphorePermit, Failure> {
        let own = Duration::from_millis(self.min_interval_ms.load(Ordering::Relaxed));
        let interval = interval.max(own);
        let permit = self.permits.clone().acquire_owned().await.map_err(closed)?;
        let mut next = self.next.lock().await;
        let now = Instant::now();
        if *next > now {
            tokio::time::sleep_until(*next).await;
        }
        *next = (*next).max(now) + interval;
        Ok(permit)
    }

    /// A request got no answer.
    fn strike(&self, failure: &Failure) {
        self.strikes.fetch_add(1, Ordering::Relaxed);
        *self.last_strike.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((failure.clone(), Instant::now()));
    }

    /// The failure the next request would end in without being sent, once the host has not
    /// answered [`STRIKES`] requests in a row: the same refusal or unknown name again, or for
    /// timeouts a note that the host stopped answering.
    fn struck_out(&self, url: &Url) -> Option<Failure> {
        if self.strikes.load(Ordering::Relaxed) < STRIKES {
            return None;
        }
        let (last, when) = self
            .last_strike
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        if when.elapsed() > STRUCK_OUT_FOR {
            return None;
        }
        Some(match last {
            Failure::Timeout { .. } | Failure::Unresponsive { .. } => Failure::Unresponsive {
                detail: format!(
                    "{} stopped answering ({STRIKES} requests in a row timed out)",
                    url.host_str().unwrap_or("the host")
                ),
            },
            other => other,
        })
    }

    fn raise_interval(&self, interval: Duration) {
        self.min_interval_ms
            .fetch_max(interval.as_millis() as u64, Ordering::Relaxed);
    }
}

fn closed(_: tokio::sync::AcquireError) -> Failure {
    Failure::Other {
        detail: "the fetcher is shutting down".into(),
    }
}

/// A URL cut to a length a message can show (issue 8: a 2 MB URL is stored once, in its
/// record's `url`, not repeated in every message).
pub fn shorten(url: &str) -> String {
    const KEEP: usize = 160;
    if url.len() <= KEEP + 40 {
        return url.to_string();
    }
    let mut head = KEEP;
    while !url.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = url.len() - 30;
    while !url.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}…[{} bytes]…{}", &url[..head], url.len(), &url[tail..])
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(r: &reqwest::Response) -> Option<Duration> {
    let value = r
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}
