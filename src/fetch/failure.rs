//! Why a URL could not be captured, in words a report can group by.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A fetch that did not yield a page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Failure {
    /// DNS found no such host.
    #[error("no such host: {detail}")]
    NoSuchHost {
        /// What the resolver said.
        detail: String,
    },
    /// The server refused the connection.
    #[error("connection refused: {detail}")]
    Refused {
        /// The underlying error.
        detail: String,
    },
    /// No answer in time.
    #[error("timed out after {seconds} s")]
    Timeout {
        /// The limit that was hit.
        seconds: u64,
    },
    /// The body was larger than the limit.
    #[error("larger than the {limit} byte limit")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The server answered with an error status.
    #[error("HTTP {status}")]
    Http {
        /// The status code.
        status: u16,
    },
    /// robots.txt forbids it.
    #[error("blocked by robots.txt")]
    Robots,
    /// The host is (or resolves to) a private address.
    #[error("blocked by the private-address guard: {detail}")]
    Private {
        /// The host and address.
        detail: String,
    },
    /// More redirects than allowed.
    #[error("more than {limit} redirects")]
    TooManyRedirects {
        /// The limit.
        limit: usize,
    },
    /// A redirect led back to a URL already visited.
    #[error("redirect loop at {url}")]
    RedirectLoop {
        /// Where the loop closed.
        url: String,
    },
    /// Not an http(s) URL.
    #[error("unsupported URL: {detail}")]
    Unsupported {
        /// Why.
        detail: String,
    },
    /// Anything else (TLS, protocol, reset connection...).
    #[error("{detail}")]
    Other {
        /// The underlying error.
        detail: String,
    },
}

impl Failure {
    /// The short reason used in reports: `no such host`, `refused`, `timeout`, `too large`,
    /// `http`, `robots`, `private`, `redirects`, `unsupported`, `error`.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::NoSuchHost { .. } => "no such host",
            Failure::Refused { .. } => "refused",
            Failure::Timeout { .. } => "timeout",
            Failure::TooLarge { .. } => "too large",
            Failure::Http { .. } => "http",
            Failure::Robots => "robots",
            Failure::Private { .. } => "private",
            Failure::TooManyRedirects { .. } | Failure::RedirectLoop { .. } => "redirects",
            Failure::Unsupported { .. } => "unsupported",
            Failure::Other { .. } => "error",
        }
    }

    /// Whether trying again later may succeed (a dead link needs failures that are not).
    pub fn is_transient(&self) -> bool {
        match self {
            Failure::Timeout { .. } | Failure::Other { .. } => true,
            Failure::Http { status } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// Classifies a reqwest error by walking its causes.
    pub(crate) fn from_reqwest(e: &reqwest::Error, timeout: Duration) -> Failure {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            if let Some(b) = err.downcast_ref::<super::guard::Blocked>() {
                return Failure::Private {
                    detail: b.to_string(),
                };
            }
            if let Some(n) = err.downcast_ref::<super::guard::NoSuchHost>() {
                return Failure::NoSuchHost {
                    detail: format!("{} ({})", n.host, n.message),
                };
            }
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => {
                        return Failure::Refused {
                            detail: io.to_string(),
                        };
                    }
                    std::io::ErrorKind::TimedOut => {
                        return Failure::Timeout {
                            seconds: timeout.as_secs(),
                        };
                    }
                    _ => {}
                }
            }
            source = err.source();
        }
        if e.is_timeout() {
            return Failure::Timeout {
                seconds: timeout.as_secs(),
            };
        }
        Failure::Other {
            detail: error_chain(e),
        }
    }
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
