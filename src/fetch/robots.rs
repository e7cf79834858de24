//! robots.txt, fetched once per origin and obeyed for every request to it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use texting_robots::Robot;
use tokio::sync::OnceCell;
use url::Url;

use super::{Failure, Fetcher};

/// The product token robots.txt rules name.
const AGENT: &str = "vaultkeep";

/// Longest `Crawl-delay` honoured.
const MAX_CRAWL_DELAY: Duration = Duration::from_secs(5);

/// Parsed robots.txt files by origin; `None` means everything is allowed.
#[derive(Default)]
pub(super) struct Cache {
    origins: tokio::sync::Mutex<HashMap<String, Arc<OnceCell<Option<Robot>>>>>,
}

impl Cache {
    /// Whether robots.txt of the URL's origin allows fetching it.
    pub(super) async fn allows(&self, fetcher: &Fetcher, url: &Url) -> bool {
        let origin = url.origin().ascii_serialization();
        let cell = self.origins.lock().await.entry(origin).or_default().clone();
        let robot = cell.get_or_init(|| load(fetcher, url)).await;
        robot.as_ref().is_none_or(|r| r.allowed(url.as_str()))
    }
}

/// Fetches and parses robots.txt. Missing (4xx) or unreachable: everything is allowed, as
/// crawlers commonly do; a `Crawl-delay` slows requests to the host.
async fn load(fetcher: &Fetcher, url: &Url) -> Option<Robot> {
    let robots_url = url.join("/robots.txt").ok()?;
    match Box::pin(fetcher.fetch(Method::GET, &robots_url, false)).await {
        Ok(found) => match Robot::new(AGENT, &found.body) {
            Ok(robot) => {
                if let Some(delay) = robot.delay.filter(|d| d.is_finite() && *d > 0.0) {
                    let delay = Duration::from_secs_f32(delay).min(MAX_CRAWL_DELAY);
                    fetcher.gate(url).raise_interval(delay);
                }
                Some(robot)
            }
            Err(e) => {
                tracing::info!(%robots_url, "unreadable robots.txt, ignored: {e}");
                None
            }
        },
        Err(Failure::Http { status }) => {
            tracing::debug!(%robots_url, status, "no robots.txt");
            None
        }
        Err(e) => {
            tracing::info!(%robots_url, "cannot fetch robots.txt ({e}); proceeding");
            None
        }
    }
}
