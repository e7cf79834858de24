//! The sections of `vaultkeep.toml`, each key typed and defaulted here: the one place a
//! setting is declared. The modules that act on them import them from here.

use serde::Deserialize;

use super::{Period, Size};

/// `[scan]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanConfig {
    /// Notes larger than this are recorded but not read for links.
    pub max_note_bytes: Size,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            max_note_bytes: Size(10 * 1024 * 1024),
        }
    }
}

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
    /// Seconds for one URL, robots.txt, redirects and retries included.
    pub url_budget_secs: u64,
    /// Largest body accepted.
    pub max_bytes: Size,
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
    /// A proxy for every request (`http://host:port`, `socks5://...`); `HTTP_PROXY` and the
    /// like in the environment are ignored.
    pub proxy: Option<url::Url>,
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
            url_budget_secs: 60,
            max_bytes: Size(50 * 1024 * 1024),
            max_redirects: 10,
            concurrency: 16,
            host_concurrency: 8,
            host_interval_ms: 5,
            retries: 2,
            retry_base_ms: 500,
            max_retry_after_secs: 60,
            robots: true,
            allow_private: false,
            proxy: None,
        }
    }
}

/// `[snapshot]` in vaultkeep.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Crawl depth for a profile's `url` and for documentation sites.
    pub depth: u32,
    /// Most pages per snapshot.
    pub max_pages: usize,
    /// Most URLs fetched per snapshot, pages and resources together.
    pub max_resources: usize,
    /// Most bytes received per snapshot.
    pub max_total_bytes: Size,
    /// Words that mark a documentation site, in a host label or the first path segment.
    pub docs_words: Vec<String>,
    /// When pages are rendered in headless Chromium.
    pub browser: BrowserUse,
    /// A full-page screenshot of every page, even of pages captured without the browser.
    pub screenshots: bool,
}

/// When a snapshot renders its pages in a browser (`[snapshot] browser`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BrowserUse {
    /// Pages that look built by scripts (little text, scripts that build the body), when
    /// Chromium is installed; the others, and all of them without Chromium, statically.
    #[default]
    Auto,
    /// Every page (`archive snapshot --browser`); without Chromium, an error.
    Always,
    /// No page (`--no-browser`).
    Never,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            depth: 3,
            max_pages: 500,
            max_resources: 5000,
            max_total_bytes: Size(1 << 30),
            docs_words: [
                "handbook",
                "docs",
                "doc",
                "documentation",
                "wiki",
                "manual",
                "guide",
                "guides",
                "book",
            ]
            .map(String::from)
            .to_vec(),
            browser: BrowserUse::Auto,
            screenshots: false,
        }
    }
}

/// `[browser]` in vaultkeep.toml: the headless Chromium that renders script-built pages and
/// takes screenshots.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrowserConfig {
    /// The Chromium (or Chrome) executable; default: `chromium`, `chromium-browser`,
    /// `google-chrome` or `google-chrome-stable`, the first found on PATH.
    pub path: Option<std::path::PathBuf>,
    /// Seconds one page may take, from navigation to its screenshot and DOM.
    pub page_timeout_secs: u64,
    /// Most memory the browser's processes may use together; beyond it they are killed and
    /// the page is recorded without its rendering.
    pub max_memory: Size,
    /// Pages rendered at once.
    pub tabs: usize,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        BrowserConfig {
            path: None,
            page_timeout_secs: 60,
            max_memory: Size(2 << 30),
            tabs: 2,
        }
    }
}

/// `[links]` in vaultkeep.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinksConfig {
    /// Hard failures needed before a URL counts as dead.
    pub dead_after: usize,
    /// Time the hard failures must span (`30m`, `12h`, `1d`, `1w`).
    pub min_gap: Period,
    /// URLs checked at once.
    pub concurrency: usize,
}

impl Default for LinksConfig {
    fn default() -> Self {
        LinksConfig {
            dead_after: 2,
            min_gap: Period::secs(86_400),
            concurrency: 16,
        }
    }
}

/// `[watch]` in vaultkeep.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchConfig {
    /// Quiet time after a change before the vault is scanned, in ms.
    pub debounce_ms: u64,
    /// Polling interval when the kernel refuses more watches, in seconds.
    pub poll_secs: u64,
    /// Snapshot new external URLs automatically.
    pub snapshots: bool,
    /// Snapshots taken at once.
    pub snapshot_concurrency: usize,
    /// Take a new snapshot of a URL whose newest one is older than this (`30d`).
    pub resnapshot_after: Period,
    /// Check every external link this often (`1d`; `0` never).
    pub check_links_every: Period,
    /// Preserve and mark composted profiles this often (`1d`; `0` never).
    pub compost_every: Period,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            debounce_ms: 150,
            poll_secs: 2,
            snapshots: true,
            snapshot_concurrency: 2,
            resnapshot_after: Period::secs(30 * 86_400),
            check_links_every: Period::secs(86_400),
            compost_every: Period::secs(86_400),
        }
    }
}

/// `[remote]` in vaultkeep.toml: S3-compatible object storage that devices share. Credentials
/// never live here: they come from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and
/// `AWS_SESSION_TOKEN`), or from a profile of `~/.aws/credentials`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteConfig {
    /// `s3://bucket/prefix`: where the shared archive lives.
    pub url: Option<RemoteUrl>,
    /// The S3 endpoint of a service other than AWS (`https://<account>.r2.cloudflarestorage.com`,
    /// `http://127.0.0.1:8333` for a local SeaweedFS).
    pub endpoint: Option<url::Url>,
    /// The region (`auto` for R2, anything for most self-hosted servers).
    pub region: String,
    /// Path-style requests (`endpoint/bucket/key`), which self-hosted servers need; AWS uses
    /// virtual-hosted style (`bucket.endpoint/key`).
    pub path_style: bool,
    /// The profile of `~/.aws/credentials` to use when the environment has no keys
    /// (default: `AWS_PROFILE`, else `default`).
    pub profile: Option<String>,
    /// This device's name on the remote (default: the host name).
    pub device: Option<String>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// The daemon pushes this long after the last recorded change.
    pub push_after: Period,
    /// The daemon pulls this often.
    pub pull_every: Period,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            url: None,
            endpoint: None,
            region: "us-east-1".into(),
            path_style: false,
            profile: None,
            device: None,
            concurrency: 32,
            push_after: Period::secs(30),
            pull_every: Period::secs(15 * 60),
        }
    }
}

/// `s3://bucket/prefix`, checked when the config loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    /// The bucket.
    pub bucket: String,
    /// The folder inside it (no leading or trailing `/`; may be empty).
    pub prefix: String,
}

impl std::fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

impl std::str::FromStr for RemoteUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<RemoteUrl, String> {
        let rest = s.strip_prefix("s3://").ok_or_else(|| {
            format!("{s:?} is not an s3:// URL (write s3://bucket or s3://bucket/prefix)")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{s:?} names no bucket"));
        }
        Ok(RemoteUrl {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    }
}

impl<'de> Deserialize<'de> for RemoteUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RemoteUrl, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
