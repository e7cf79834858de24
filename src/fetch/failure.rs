//! Why a URL could not be captured, in words a report can group by.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A fetch that did not yield a page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Failure {
    /// DNS answered that there is no such host (NXDOMAIN, or a name without addresses).
    #[error("no such host: {detail}")]
    NoSuchHost {
        /// What the resolver said.
        detail: String,
    },
    /// The network cannot be reached now: the resolver does not answer, or there is no route.
    /// Says nothing about the URL (issue 9: offline is not dead).
    #[error("offline: {detail}")]
    Offline {
        /// What failed.
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
    /// The host stopped answering earlier requests: this one was not sent.
    #[error("timed out: {detail}")]
    Unresponsive {
        /// Which host, and why it counts as unresponsive.
        detail: String,
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
    /// A limit of the snapshot was reached (resources, bytes, time) before this URL.
    #[error("not fetched: {detail}")]
    Limit {
        /// Which limit.
        detail: String,
    },
    /// The server's answer could not be parsed (headers too large, malformed chunks...).
    #[error("bad response: {detail}")]
    BadResponse {
        /// What the HTTP parser said.
        detail: String,
    },
    /// The snapshot was stopped (Ctrl-C, SIGTERM, the daemon shutting down) before this URL
    /// was captured.
    #[error("interrupted: {detail}")]
    Interrupted {
        /// By what.
        detail: String,
    },
    /// The capture could not be stored or named in the archive.
    #[error("cannot store: {detail}")]
    Store {
        /// The archive's error.
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
    /// The short reason used in reports: `no such host`, `offline`, `refused`, `timeout`,
    /// `too large`, `http`, `robots`, `private`, `redirects`, `unsupported`, `limit`,
    /// `bad response`, `interrupted`, `store`, `error`.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::NoSuchHost { .. } => "no such host",
            Failure::Offline { .. } => "offline",
            Failure::Limit { .. } => "limit",
            Failure::BadResponse { .. } => "bad response",
            Failure::Interrupted { .. } => "interrupted",
            Failure::Store { .. } => "store",
            Failure::Refused { .. } => "refused",
            Failure::Timeout { .. } | Failure::Unresponsive { .. } => "timeout",
            Failure::TooLarge { .. } => "too large",
            Failure::Http { .. } => "http",
            Failure::Robots => "robots",
            Failure::Private { .. } => "private",
            Failure::TooManyRedirects { .. } | Failure::RedirectLoop { .. } => "redirects",
            Failure::Unsupported { .. } => "unsupported",
            Failure::Other { .. } => "error",
        }
    }

    /// Whether the same request, retried within the same fetch, may succeed: timeouts, dropped
    /// connections, 429 and 5xx. Not an offline network (it will not be back in a second), not
    /// an answer the parser refused (it would be refused again).
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
            if let Some(n) = err.downcast_ref::<super::guard::CannotResolve>() {
                return Failure::Offline {
                    detail: n.to_string(),
                };
            }
            if let Some(h) = err.downcast_ref::<hyper::Error>()
                && h.is_parse()
            {
                return Failure::BadResponse {
                    detail: h.to_string(),
                };
            }
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind;
                match io.kind() {
                    ErrorKind::ConnectionRefused => {
                        return Failure::Refused {
                            detail: io.to_string(),
                        };
                    }
                    ErrorKind::NetworkUnreachable
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkDown => {
                        return Failure::Offline {
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
            detail: crate::report::chain(e),
        }
    }
}

/// Whether a failure's [`Failure::reason`] says no server answered: name resolution or
/// connection failed.
pub fn is_network_level(reason: &str) -> bool {
    matches!(reason, "no such host" | "offline" | "refused" | "timeout")
}
