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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use jiff::Timestamp;
use reqwest::{Method, StatusCode, redirect};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use url::Url;

pub use failure::{Failure, is_network_level};
pub use guard::is_private;

/// `[fetch]` in vaultkeep.toml. Every default is documented in the README with its reason.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchConfig {
    /// The User-Agent header.
    pub user_agent: String,
    /// Seconds to establish a connection.
    pub connect_timeout_secs: u64,
    /// Seconds for a whole request, body included.
    pub timeout_secs: u64,
    /// Largest body accepted, in bytes.
    pub max_bytes: u64,
    /// Redirects followed per request.
    pub max_redirects: usize,
    /// Requests in flight at once, all hosts together.
    pub concurrency: usize,
    /// Requests in flight at once to one host.
    pub host_concurrency: usize,
    /// Milliseconds between the starts of two requests to one host.
    pub host_interval_ms: u64,
    /// Retries after 429, 503, a timeout or a dropped connection.
    pub retries: u32,
    /// First retry delay in milliseconds; doubled each time.
    pub retry_base_ms: u64,
    /// Longest `Retry-After` honoured, in seconds; a longer one fails the URL.
    pub max_retry_after_secs: u64,
    /// Obey robots.txt.
    pub robots: bool,
    /// Allow loopback and private addresses.
    pub allow_private: bool,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            user_agent: format!(
                "vaultkeep/{} (personal web archiver for an Obsidian vault)",
                env!("CARGO_PKG_VERSION")
            ),
            connect_timeout_secs: 10,
            timeout_secs: 30,
            max_bytes: 50 * 1024 * 1024,
            max_redirects: 10,
            concurrency: 16,
            host_concurrency: 8,
            host_interval_ms: 5,
            retries: 2,
            retry_base_ms: 500,
            max_retry_after_secs: 60,
            robots: true,
            allow_private: false,
        }
    }
}

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
    global: Semaphore,
    hosts: Mutex<HashMap<String, Arc<HostGate>>>,
    robots: robots::Cache,
    /// When a server last answered (any status): the network worked then.
    last_answer: Mutex<Option<Instant>>,
}

/// How long an answer from some server vouches for the network: a failure at name resolution
/// or connection within this time is believed; later, it may be the network that is down.
const NETWORK_VOUCHED: Duration = Duration::from_secs(600);

/// Per-host politeness: a limit on requests in flight, and an interval between their starts.
struct HostGate {
    permits: Semaphore,
    next: tokio::sync::Mutex<Instant>,
    /// The host's own minimum interval (robots.txt `Crawl-delay`), in ms.
    min_interval_ms: std::sync::atomic::AtomicU64,
}

impl Fetcher {
    /// Builds the client. Fails only if the TLS stack cannot be set up.
    pub fn new(config: FetchConfig) -> Result<Fetcher, reqwest::Error> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            reqwest::header::HeaderValue::from_static(
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            ),
        );
        let client = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(config.connect_timeout_secs))
            .timeout(Duration::from_secs(config.timeout_secs))
            .redirect(redirect::Policy::none())
            .dns_resolver(Arc::new(guard::GuardedResolver {
                allow_private: config.allow_private,
            }))
            .build()?;
        Ok(Fetcher {
            client,
            global: Semaphore::new(config.concurrency.max(1)),
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

    /// GETs `url`, following redirects, and reads the body.
    pub async fn get(&self, url: &Url) -> Result<Fetched, Failure> {
        self.fetch(Method::GET, url, true).await
    }

    /// HEADs `url`, following redirects (for link checks).
    pub async fn head(&self, url: &Url) -> Result<Fetched, Failure> {
        self.fetch(Method::HEAD, url, true).await
    }

    /// Fetches `url`; `obey_robots` is false only for robots.txt itself.
    async fn fetch(
        &self,
        method: Method,
        url: &Url,
        obey_robots: bool,
    ) -> Result<Fetched, Failure> {
        let mut current = url.clone();
        let mut redirects: Vec<Hop> = Vec::new();
        loop {
            self.check_url(&current)?;
            if obey_robots && self.config.robots && !self.robots.allows(self, &current).await {
                return Err(Failure::Robots);
            }
            let response = self.send_with_retries(&method, &current).await?;
            let status = response.status();
            if status.is_redirection()
                && let Some(location) = response.headers().get(reqwest::header::LOCATION)
            {
                let next = location
                    .to_str()
                    .ok()
                    .and_then(|l| current.join(l).ok())
                    .ok_or_else(|| Failure::Unsupported {
                        detail: format!("bad redirect Location from {current}"),
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
                        url: next.to_string(),
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
            let body = self.read_body(response).await?;
            return Ok(Fetched {
                url: url.clone(),
                final_url: current,
                redirects,
                status: status.as_u16(),
                headers,
                body,
                time: Timestamp::now(),
            });
        }
    }

    /// Only http(s), and no literal private address (names are checked by the resolver).
    fn check_url(&self, url: &Url) -> Result<(), Failure> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Failure::Unsupported {
                detail: format!("{url} is not an http(s) URL"),
            });
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => {
                return Err(Failure::Unsupported {
                    detail: format!("{url} has no host"),
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

    /// One request, retried on 429, 503, timeouts and dropped connections.
    async fn send_with_retries(
        &self,
        method: &Method,
        url: &Url,
    ) -> Result<reqwest::Response, Failure> {
        let timeout = Duration::from_secs(self.config.timeout_secs);
        let mut attempt = 0;
        loop {
            let result = {
                let _global = self.global.acquire().await.map_err(closed)?;
                let gate = self.gate(url);
                let _host = gate
                    .enter(Duration::from_millis(self.config.host_interval_ms))
                    .await?;
                self.client
                    .request(method.clone(), url.clone())
                    .send()
                    .await
            };
            if result.is_ok() {
                self.answered();
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
                        tracing::info!(%url, ?after, "Retry-After is longer than the limit; giving up");
                        return Ok(r);
                    }
                    (Failure::Http { status }, after)
                }
                Ok(r) => return Ok(r),
                Err(e) => {
                    let failure = Failure::from_reqwest(&e, timeout);
                    if !failure.is_transient() {
                        return Err(failure);
                    }
                    (failure, None)
                }
            };
            if attempt >= self.config.retries {
                return Err(failure);
            }
            let backoff = Duration::from_millis(
                self.config
                    .retry_base_ms
                    .saturating_mul(1 << attempt.min(16)),
            );
            let wait = wait.unwrap_or(backoff);
            tracing::debug!(%url, %failure, ?wait, attempt, "retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<Bytes, Failure> {
        let limit = self.config.max_bytes;
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(Failure::TooLarge { limit });
        }
        let timeout = Duration::from_secs(self.config.timeout_secs);
        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Failure::from_reqwest(&e, timeout))?
        {
            if body.len() as u64 + chunk.len() as u64 > limit {
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
                    permits: Semaphore::new(self.config.host_concurrency.max(1)),
                    next: tokio::sync::Mutex::new(Instant::now()),
                    min_interval_ms: Default::default(),
                })
            })
            .clone()
    }
}

impl HostGate {
    /// Waits for a slot and for the interval since the previous start.
    async fn enter(&self, interval: Duration) -> Result<tokio::sync::SemaphorePermit<'_>, Failure> {
        let own = Duration::from_millis(
            self.min_interval_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        let interval = interval.max(own);
        let permit = self.permits.acquire().await.map_err(closed)?;
        let mut next = self.next.lock().await;
        let now = Instant::now();
        if *next > now {
            tokio::time::sleep_until(*next).await;
        }
        *next = (*next).max(now) + interval;
        Ok(permit)
    }
}

impl HostGate {
    fn raise_interval(&self, interval: Duration) {
        self.min_interval_ms.fetch_max(
            interval.as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

fn closed(_: tokio::sync::AcquireError) -> Failure {
    Failure::Other {
        detail: "the fetcher is shutting down".into(),
    }
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
