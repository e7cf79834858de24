//! Dead links: every external URL of the vault checked (HEAD, falling back to GET), every
//! result recorded in `checks.jsonl`, and each URL classified from its history. A URL is dead
//! only after hard failures (404, 410, no such host, refused) on several checks spread over
//! time; a 429, a 5xx, a timeout or a TLS error never makes it dead.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::copies::key;
use crate::fetch::{Failure, Fetcher};
use crate::scan::VaultView;
use crate::store::{self, Journal, Store};

/// `[links]` in vaultkeep.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinksConfig {
    /// Hard failures needed before a URL counts as dead.
    pub dead_after: usize,
    /// Time the hard failures must span (`30m`, `12h`, `1d`, `1w`).
    pub min_gap: String,
    /// URLs checked at once.
    pub concurrency: usize,
}

impl Default for LinksConfig {
    fn default() -> Self {
        LinksConfig {
            dead_after: 2,
            min_gap: "1d".into(),
            concurrency: 16,
        }
    }
}

/// One check of one URL: a line of `checks.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    /// The URL (without fragment).
    pub url: String,
    /// When it was checked.
    pub time: Timestamp,
    /// Whether it answered with a success (after redirects).
    pub ok: bool,
    /// The HTTP status, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The failure's reason (`http`, `no such host`, `refused`, `timeout`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The failure, for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl CheckRecord {
    /// A failure that says the page is gone: 404, 410, no such host, refused.
    pub fn is_hard(&self) -> bool {
        !self.ok
            && (matches!(self.status, Some(404 | 410))
                || matches!(self.reason.as_deref(), Some("no such host" | "refused")))
    }
}

/// What a URL's history says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// It answered the last time.
    Alive,
    /// It failed hard often enough, for long enough.
    Dead,
    /// Neither yet: soft failures, or not enough hard ones.
    Unknown,
}

/// Classifies a URL from its checks, oldest first. Only the checks since its last success
/// count; soft failures neither count nor reset.
pub fn classify(checks: &[CheckRecord], dead_after: usize, min_gap: Duration) -> State {
    let Some(last) = checks.last() else {
        return State::Unknown;
    };
    if last.ok {
        return State::Alive;
    }
    let since_success = checks.iter().rposition(|c| c.ok).map_or(0, |i| i + 1);
    let hard: Vec<&CheckRecord> = checks[since_success..]
        .iter()
        .filter(|c| c.is_hard())
        .collect();
    let span = match (hard.first(), hard.last()) {
        (Some(first), Some(last)) => last.time.duration_since(first.time).unsigned_abs(),
        _ => Duration::ZERO,
    };
    if hard.len() >= dead_after.max(1) && span >= min_gap {
        State::Dead
    } else {
        State::Unknown
    }
}

/// `30s`, `15m`, `12h`, `1d`, `2w`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("not a duration: {text:?} (try 12h, 1d, 1w)"))?;
    let secs = match unit.trim() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("unknown unit in {text:?} (s, m, h, d, w)")),
    };
    Ok(Duration::from_secs(n * secs))
}

fn journal(store: &Store) -> Journal {
    Journal::new(store.root().join("checks.jsonl"))
}

/// Every recorded check, by URL, oldest first.
pub fn history(store: &Store) -> Result<HashMap<String, Vec<CheckRecord>>, store::Error> {
    let j = journal(store);
    let read = j
        .read::<CheckRecord>()
        .map_err(store::Error::io("read", j.path()))?;
    let mut out: HashMap<String, Vec<CheckRecord>> = HashMap::new();
    for (_, r) in read.records {
        out.entry(r.url.clone()).or_default().push(r);
    }
    Ok(out)
}

/// Records checks (one fsync for the batch).
pub fn record(store: &Store, checks: &[CheckRecord]) -> Result<(), store::Error> {
    let j = journal(store);
    j.append(checks)
        .map_err(store::Error::io("append to", j.path()))?;
    Ok(())
}

/// Checks one URL: HEAD, and GET when HEAD fails in a way GET might not (many servers answer
/// HEAD badly).
pub async fn check(fetcher: &Fetcher, url: &str) -> CheckRecord {
    let time = Timestamp::now();
    let parsed = match Url::parse(url) {
        Ok(u) => u,
        Err(e) => {
            return CheckRecord {
                url: url.to_string(),
                time,
                ok: false,
                status: None,
                reason: Some("unsupported".into()),
                detail: Some(format!("not a URL: {e}")),
            };
        }
    };
    let mut result = fetcher.head(&parsed).await;
    if let Err(f) = &result
        && !matches!(
            f,
            Failure::NoSuchHost { .. }
                | Failure::Refused { .. }
                | Failure::Private { .. }
                | Failure::Robots
        )
    {
        result = fetcher.get(&parsed).await;
    }
    match result {
        Ok(f) => CheckRecord {
            url: url.to_string(),
            time,
            ok: true,
            status: Some(f.status),
            reason: None,
            detail: None,
        },
        Err(f) => CheckRecord {
            url: url.to_string(),
            time,
            ok: false,
            status: match f {
                Failure::Http { status } => Some(status),
                _ => None,
            },
            reason: Some(f.reason().to_string()),
            detail: Some(f.to_string()),
        },
    }
}

/// Where a URL is referenced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reference {
    /// The note.
    pub note: String,
    /// The line.
    pub line: usize,
}

/// Every external URL of the vault (without fragment), with the notes and lines that
/// reference it.
pub fn external_urls(view: &VaultView) -> BTreeMap<String, Vec<Reference>> {
    let mut out: BTreeMap<String, Vec<Reference>> = BTreeMap::new();
    for (note, facts) in view.notes() {
        for link in &facts.links {
            if let crate::links::Destination::External(url) = link.destination() {
                out.entry(key(url)).or_default().push(Reference {
                    note: note.to_string(),
                    line: link.line,
                });
            }
        }
    }
    out
}

/// Checks every URL with bounded concurrency.
pub async fn check_all(fetcher: &Fetcher, urls: &[String], concurrency: usize) -> Vec<CheckRecord> {
    stream::iter(urls.to_vec())
        .map(|u| async move { check(fetcher, &u).await })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(hours: i64, ok: bool, status: Option<u16>, reason: Option<&str>) -> CheckRecord {
        CheckRecord {
            url: "https://x.org/".into(),
            time: Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_hours(hours),
            ok,
            status,
            reason: reason.map(String::from),
            detail: None,
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn two_hard_failures_a_day_apart_make_a_url_dead() {
        let gone = [
            rec(0, false, Some(404), Some("http")),
            rec(25, false, None, Some("refused")),
        ];
        assert_eq!(classify(&gone, 2, DAY), State::Dead);
        assert_eq!(
            classify(&gone[..1], 2, DAY),
            State::Unknown,
            "one failure is not enough"
        );
        let quick = [
            rec(0, false, Some(410), Some("http")),
            rec(1, false, Some(410), Some("http")),
        ];
        assert_eq!(
            classify(&quick, 2, DAY),
            State::Unknown,
            "too close together"
        );
        assert_eq!(classify(&quick, 2, Duration::ZERO), State::Dead);
    }

    #[test]
    fn soft_failures_never_make_a_url_dead() {
        let soft = [
            rec(0, false, Some(503), Some("http")),
            rec(30, false, Some(429), Some("http")),
            rec(60, false, None, Some("timeout")),
            rec(90, false, None, Some("error")),
        ];
        assert_eq!(classify(&soft, 2, DAY), State::Unknown);
        assert_eq!(
            classify(
                &[
                    rec(0, false, Some(403), Some("http")),
                    rec(48, false, Some(403), Some("http"))
                ],
                2,
                DAY
            ),
            State::Unknown
        );
    }

    #[test]
    fn a_success_resets_and_the_last_answer_decides_alive() {
        let back = [
            rec(0, false, Some(404), Some("http")),
            rec(30, false, Some(404), Some("http")),
            rec(40, true, Some(200), None),
        ];
        assert_eq!(classify(&back, 2, DAY), State::Alive);
        let again = [
            rec(0, false, Some(404), Some("http")),
            rec(10, true, Some(200), None),
            rec(40, false, Some(404), Some("http")),
        ];
        assert_eq!(
            classify(&again, 2, DAY),
            State::Unknown,
            "failures before the success do not count"
        );
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("1d").unwrap(), DAY);
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("soon").is_err());
    }
}
