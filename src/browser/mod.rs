//! Headless Chromium, driven through the DevTools protocol: pages rendered as a visitor's
//! browser renders them, for pages built by scripts, screenshots and PDFs. Every request a
//! page makes is paused and answered by vaultkeep (a [`Network`]), so the private-address
//! guard, robots.txt and the snapshot's limits hold for the page's scripts as for the crawl;
//! the browser itself has no way out. The only code that talks to a browser.

mod cdp;
mod page;
mod process;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;
use url::Url;

pub use page::{Answer, Kind, Network, Render, Request, Wanted};

use crate::config::BrowserConfig;
use cdp::{CdpError, Connection};
use process::Process;

/// What to tell someone who has no Chromium.
pub const INSTALL_HINT: &str = "install Chromium (Debian, Ubuntu: `sudo apt-get install chromium`; \
Fedora: `sudo dnf install chromium`; macOS: `brew install --cask chromium`) or set [browser] path \
in vaultkeep.toml";

/// Why a page could not be rendered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrowserError {
    /// No browser to run.
    #[error("no Chromium found on PATH: {INSTALL_HINT}")]
    NotFound,
    /// The browser would not start.
    #[error("cannot start the browser {path}: {detail}")]
    Launch {
        /// The executable.
        path: PathBuf,
        /// Why, as far as it said.
        detail: String,
    },
    /// It used more memory than allowed and was stopped.
    #[error("the browser used more than {max} of memory ([browser] max_memory) and was stopped")]
    Memory {
        /// The limit.
        max: String,
    },
    /// The page took too long.
    #[error("the page took longer than {seconds} s in the browser ([browser] page_timeout_secs)")]
    Timeout {
        /// The limit.
        seconds: u64,
    },
    /// The page itself could not be loaded.
    #[error("the browser could not load the page: {detail}")]
    Navigation {
        /// The browser's error (`net::ERR_ACCESS_DENIED`...).
        detail: String,
    },
    /// A step run in the page failed.
    #[error("a step in the page failed: {detail}")]
    Script {
        /// The exception.
        detail: String,
    },
    /// The browser or the page crashed.
    #[error("the browser crashed")]
    Crashed,
    /// The browser refused a command.
    #[error("the browser refused: {0}")]
    Protocol(String),
}

impl From<CdpError> for BrowserError {
    fn from(e: CdpError) -> BrowserError {
        match e {
            CdpError::Closed => BrowserError::Crashed,
            e @ CdpError::Command { .. } => BrowserError::Protocol(e.to_string()),
        }
    }
}

/// A running browser.
struct Browser {
    connection: Connection,
    process: Process,
    path: PathBuf,
}

/// Starts the browser when first needed, again if it died, and stops it when dropped: no
/// browser process outlives the launcher.
pub struct Launcher {
    config: BrowserConfig,
    running: tokio::sync::Mutex<Option<Arc<Browser>>>,
    tabs: Semaphore,
}

impl Launcher {
    /// A launcher; nothing starts yet.
    pub fn new(config: &BrowserConfig) -> Launcher {
        Launcher {
            config: config.clone(),
            running: tokio::sync::Mutex::new(None),
            tabs: Semaphore::new(config.tabs.max(1)),
        }
    }

    /// The browser executable, if there is one.
    pub fn executable(&self) -> Option<PathBuf> {
        process::find(self.config.path.as_deref())
    }

    /// The running browser, started (or restarted) as needed.
    async fn browser(&self) -> Result<Arc<Browser>, BrowserError> {
        let mut running = self.running.lock().await;
        if let Some(b) = running.as_ref()
            && b.process.alive()
        {
            return Ok(b.clone());
        }
        *running = None;
        let path = self.executable().ok_or(BrowserError::NotFound)?;
        let launch_error = |detail: String| BrowserError::Launch {
            path: path.clone(),
            detail,
        };
        let (process, pipes) = Process::start(&path, self.config.max_memory.get())
            .map_err(|e| launch_error(e.to_string()))?;
        let connection = Connection::start(pipes);
        let version = tokio::time::timeout(
            Duration::from_secs(30),
            connection.call(None, "Browser.getVersion", json!({})),
        )
        .await;
        match version {
            Ok(Ok(v)) => {
                tracing::info!(
                    browser = v["product"].as_str().unwrap_or("?"),
                    path = %path.display(),
                    "browser started"
                );
            }
            _ if process.over_memory() => {
                return Err(BrowserError::Memory {
                    max: crate::report::human_bytes(self.config.max_memory.get()),
                });
            }
            _ => {
                let tail = process.log_tail();
                return Err(launch_error(if tail.is_empty() {
                    "it did not answer on its DevTools pipe".into()
                } else {
                    tail
                }));
            }
        }
        let browser = Arc::new(Browser {
            connection,
            process,
            path,
        });
        *running = Some(browser.clone());
        Ok(browser)
    }

    /// Renders `url`, every request answered by `network`.
    pub async fn render(
        &self,
        network: &dyn Network,
        url: &Url,
        wanted: Wanted,
    ) -> Result<Render, BrowserError> {
        let _tab = self.tabs.acquire().await;
        let browser = self.browser().await?;
        let budget = Duration::from_secs(self.config.page_timeout_secs.max(1));
        let result = page::render(&browser.connection, network, url, wanted, budget).await;
        match result {
            Err(BrowserError::Crashed) if browser.process.over_memory() => {
                Err(BrowserError::Memory {
                    max: crate::report::human_bytes(self.config.max_memory.get()),
                })
            }
            Err(BrowserError::Crashed) => {
                tracing::debug!(path = %browser.path.display(), log = %browser.process.log_tail(), "the browser crashed");
                Err(BrowserError::Crashed)
            }
            other => other,
        }
    }
}
