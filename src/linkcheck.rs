//! Dead links: every external URL of the vault checked (HEAD, falling back to GET), every
//! result recorded in `checks.jsonl`, and each URL classified from its history. A URL is dead
//! only after hard failures (404, 410, no such host, refused) on several checks spread over
//! time; a 429, a 5xx, a timeout or a TLS error never makes it dead, and neither does a check
//! made while the network was down (issue 9: offline is not dead).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::{LinksConfig, Period};
use crate::copies::{Copies, key};
use crate::fetch::{Failure, Fetcher, is_network_level};
use crate::scan::VaultView;
use crate::store::{self, Doc, Journal, Log, Store};

impl From<&LinksConfig> for Rule {
    fn from(c: &LinksConfig) -> Rule {
        Rule {
            dead_after: c.dead_after,
            min_gap: c.min_gap,
        }
    }
}

/// When a URL counts as dead: `dead_after` hard failures since its last success, spanning at
/// least `min_gap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Hard failures needed.
    pub dead_after: usize,
    /// Time they must span.
    pub min_gap: Period,
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
/// count; soft failures (offline ones included) neither count nor reset.
pub fn classify(checks: &[CheckRecord], rule: Rule) -> State {
    let (dead_after, min_gap) = (rule.dead_after, rule.min_gap.get());
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

fn journal(store: &Store) -> Journal {
    store.log(Log::Checks)
}

/// What the recorded checks of one URL say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checks {
    /// How many were recorded.
    pub count: usize,
    /// Those since its last success, that one included, oldest first: all that [`classify`]
    /// looks at, so a URL checked every day for years keeps a few records, not thousands.
    pub recent: Vec<CheckRecord>,
}

impl Checks {
    fn add(&mut self, check: CheckRecord) {
        self.count += 1;
        if check.ok {
            self.recent.clear();
        }
        self.recent.push(check);
    }
}

/// The recorded checks, by URL, read a record at a time (the log grows with every check of
/// every URL).
pub fn history(store: &Store) -> Result<HashMap<String, Checks>, store::Error> {
    let j = journal(store);
    let mut out: HashMap<String, Checks> = HashMap::new();
    j.visit(
        0,
        0,
        |_| true,
        |_, r: CheckRecord| match out.get_mut(&r.url) {
            Some(checks) => checks.add(r),
            None => out.entry(r.url.clone()).or_default().add(r),
        },
    )
    .map_err(store::Error::io("read", j.path()))?;
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

/// Whether a run's results say the network itself was down: every host (or, out of three or
/// more, nine in ten) failed at name resolution or connection. One or two hosts failing that
/// way, in a run where nothing said "offline", are judged on their own.
pub fn network_down(results: &[CheckRecord]) -> bool {
    let mut hosts: HashMap<String, bool> = HashMap::new();
    for r in results {
        let host = Url::parse(&r.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let unreachable = !r.ok && r.reason.as_deref().is_some_and(is_network_level);
        *hosts.entry(host).or_insert(true) &= unreachable;
    }
    let total = hosts.len();
    let down = hosts.values().filter(|d| **d).count();
    let said_offline = results
        .iter()
        .any(|r| r.reason.as_deref() == Some("offline"));
    total > 0 && ((total >= 3 && down * 10 >= total * 9) || (down == total && said_offline))
}

/// Turns the network-level failures of an offline run into `offline` checks, which judge
/// nothing. Successes stay what they are.
pub fn mark_offline(results: &mut [CheckRecord]) {
    for r in results.iter_mut() {
        if !r.ok && r.reason.as_deref().is_some_and(is_network_level) {
            r.reason = Some("offline".into());
            r.detail = Some(format!(
                "the network was down during this check ({})",
                r.detail.as_deref().unwrap_or("no answer")
            ));
        }
    }
}

/// What the last check concluded, kept in `links.json` so that `links restore` acts on the
/// same verdict (issue 9: one verdict).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    /// When the check ran.
    pub time: Timestamp,
    /// The rule it judged with.
    pub rule: Rule,
    /// Whether that rule came from the command line (`--dead-after`, `--min-gap`) rather
    /// than from the configuration; `links restore` then judges with it too.
    #[serde(default)]
    pub explicit: bool,
    /// Whether the network was down (nothing was judged).
    pub offline: bool,
    /// The URLs it found dead.
    pub dead: Vec<String>,
}

impl Verdict {
    /// The last recorded verdict, if any.
    pub fn load(store: &Store) -> Option<Verdict> {
        store.read_doc(Doc::Verdict)
    }

    fn save(&self, store: &Store) -> Result<(), store::Error> {
        store.write_doc(Doc::Verdict, self)
    }
}

/// One URL in the `links check` report.
#[derive(Debug, Clone, Serialize)]
pub struct UrlReport {
    /// The URL.
    pub url: String,
    /// Its state after this check.
    pub state: State,
    /// The latest check.
    pub last: CheckRecord,
    /// Checks recorded so far.
    pub checks: usize,
    /// Where the vault references it.
    pub references: Vec<Reference>,
    /// Its newest local copy.
    pub local_copy: Option<LocalCopy>,
}

/// A URL's newest local copy.
#[derive(Debug, Clone, Serialize)]
pub struct LocalCopy {
    /// The snapshot.
    pub snapshot: String,
    /// When it was captured.
    pub captured: Timestamp,
    /// Its entry page.
    pub offline: std::path::PathBuf,
}

/// The result of `vaultkeep links check`.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// URLs checked.
    pub checked: usize,
    /// URLs dead.
    pub dead: usize,
    /// Whether the network was down: the checks were recorded as `offline` and judged nothing.
    pub offline: bool,
    /// The rule URLs were judged with.
    pub rule: Rule,
    /// Every URL, in order.
    pub urls: Vec<UrlReport>,
}

impl CheckReport {
    /// URLs in a state.
    pub fn count(&self, state: State) -> usize {
        self.urls.iter().filter(|u| u.state == state).count()
    }
}

/// Checks every external URL of `view`, records the results and the verdict, and reports.
/// When the network is down, the checks are recorded as `offline` and nothing is judged.
pub async fn run(
    fetcher: &Fetcher,
    store: &Store,
    view: &VaultView,
    rule: Rule,
    explicit: bool,
    concurrency: usize,
) -> Result<CheckReport, store::Error> {
    let urls = external_urls(view);
    let list: Vec<String> = urls.keys().cloned().collect();
    let checked = check_and_record(fetcher, store, &list, rule, explicit, concurrency).await?;
    let history = history(store)?;
    let copies = Copies::load(store);
    let mut report = CheckReport {
        checked: checked.results.len(),
        dead: 0,
        offline: checked.offline,
        rule,
        urls: Vec::new(),
    };
    for (url, references) in urls {
        let Some(checks) = history.get(&url) else {
            continue;
        };
        let Some(last) = checks.recent.last().cloned() else {
            continue;
        };
        report.urls.push(UrlReport {
            state: classify(&checks.recent, rule),
            checks: checks.count,
            local_copy: copies.get(&url).map(|c| LocalCopy {
                snapshot: c.snapshot.clone(),
                captured: c.captured,
                offline: c.entry.clone(),
            }),
            url,
            last,
            references,
        });
    }
    report.dead = report.count(State::Dead);
    Ok(report)
}

/// What one round of checks found.
#[derive(Debug)]
pub struct Checked {
    /// One result per URL.
    pub results: Vec<CheckRecord>,
    /// Whether the network was down.
    pub offline: bool,
}

/// Checks `urls`, records the results (as `offline` when the network was down) and the
/// verdict `rule` gives on them; `explicit` when the rule came from the command line.
pub async fn check_and_record(
    fetcher: &Fetcher,
    store: &Store,
    urls: &[String],
    rule: Rule,
    explicit: bool,
    concurrency: usize,
) -> Result<Checked, store::Error> {
    let mut results = check_all(fetcher, urls, concurrency).await;
    let offline = network_down(&results);
    if offline {
        mark_offline(&mut results);
    }
    crate::fsutil::off_executor(|| {
        record(store, &results)?;
        let dead = dead_urls(store, urls.iter().cloned(), rule)?;
        Verdict {
            time: Timestamp::now(),
            rule,
            explicit,
            offline,
            dead: dead.into_iter().collect(),
        }
        .save(store)
    })?;
    Ok(Checked { results, offline })
}

/// The URLs of `urls` that are dead by `rule` and the recorded checks.
pub fn dead_urls(
    store: &Store,
    urls: impl IntoIterator<Item = String>,
    rule: Rule,
) -> Result<BTreeSet<String>, store::Error> {
    let history = history(store)?;
    Ok(urls
        .into_iter()
        .filter(|u| {
            let checks = history.get(u).map_or(&[][..], |c| c.recent.as_slice());
            classify(checks, rule) == State::Dead
        })
        .collect())
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

    fn rule(dead_after: usize, min_gap: Duration) -> Rule {
        Rule {
            dead_after,
            min_gap: Period(min_gap),
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn the_checks_kept_per_url_judge_as_every_check_recorded_would() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _lock) = Store::open_for_writing(dir.path(), "test").unwrap();
        let gone = |h| rec(h, false, Some(404), None);
        let soft = |h| rec(h, false, None, Some("offline"));
        let x = vec![
            gone(0),
            rec(24, true, Some(200), None),
            gone(48),
            soft(60),
            gone(72),
            gone(200),
            rec(300, true, Some(200), None),
            gone(320),
            gone(400),
            soft(410),
            gone(500),
        ];
        let y: Vec<CheckRecord> = [gone(0), gone(30), gone(90)]
            .into_iter()
            .map(|mut c| {
                c.url = "https://y.org/".into();
                c
            })
            .collect();
        let rules = [rule(1, Duration::ZERO), rule(2, DAY), rule(3, 3 * DAY)];
        for n in 1..=x.len() {
            // The log as it stood after each check: both URLs' records, interleaved.
            let _ = std::fs::remove_file(journal(&store).path());
            let mut log: Vec<CheckRecord> = x[..n].to_vec();
            log.extend(y.iter().cloned());
            log.sort_by_key(|c| c.time);
            record(&store, &log).unwrap();
            let kept = history(&store).unwrap();
            assert_eq!(kept["https://x.org/"].count, n);
            assert_eq!(kept["https://y.org/"].count, 3);
            for r in rules {
                assert_eq!(
                    classify(&kept["https://x.org/"].recent, r),
                    classify(&x[..n], r),
                    "after {n} checks, {r:?}"
                );
                assert_eq!(classify(&kept["https://y.org/"].recent, r), classify(&y, r));
            }
        }
        // After the last success, only what followed it is kept.
        assert_eq!(history(&store).unwrap()["https://x.org/"].recent.len(), 5);
    }

    #[test]
    fn two_hard_failures_a_day_apart_make_a_url_dead() {
        let gone = [
            rec(0, false, Some(404), Some("http")),
            rec(25, false, None, Some("refused")),
        ];
        assert_eq!(classify(&gone, rule(2, DAY)), State::Dead);
        assert_eq!(
            classify(&gone[..1], rule(2, DAY)),
            State::Unknown,
            "one failure is not enough"
        );
        let quick = [
            rec(0, false, Some(410), Some("http")),
            rec(1, false, Some(410), Some("http")),
        ];
        assert_eq!(
            classify(&quick, rule(2, DAY)),
            State::Unknown,
            "too close together"
        );
        assert_eq!(classify(&quick, rule(2, Duration::ZERO)), State::Dead);
    }

    #[test]
    fn soft_failures_never_make_a_url_dead() {
        let soft = [
            rec(0, false, Some(503), Some("http")),
            rec(30, false, Some(429), Some("http")),
            rec(60, false, None, Some("timeout")),
            rec(90, false, None, Some("error")),
        ];
        assert_eq!(classify(&soft, rule(2, DAY)), State::Unknown);
        assert_eq!(
            classify(
                &[
                    rec(0, false, Some(403), Some("http")),
                    rec(48, false, Some(403), Some("http"))
                ],
                rule(2, DAY)
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
        assert_eq!(classify(&back, rule(2, DAY)), State::Alive);
        let again = [
            rec(0, false, Some(404), Some("http")),
            rec(10, true, Some(200), None),
            rec(40, false, Some(404), Some("http")),
        ];
        assert_eq!(
            classify(&again, rule(2, DAY)),
            State::Unknown,
            "failures before the success do not count"
        );
    }

    fn at(url: &str, ok: bool, reason: Option<&str>) -> CheckRecord {
        CheckRecord {
            url: url.into(),
            ..rec(0, ok, None, reason)
        }
    }

    #[test]
    fn a_run_where_every_host_fails_before_answering_is_offline() {
        let all_down = [
            at("https://a.org/x", false, Some("no such host")),
            at("https://b.org/", false, Some("no such host")),
            at("https://c.org/", false, Some("refused")),
            at("https://d.org/", false, Some("timeout")),
        ];
        assert!(network_down(&all_down));
        let one_answered = [
            at("https://a.org/x", false, Some("no such host")),
            at("https://b.org/", false, Some("no such host")),
            at("https://c.org/", true, None),
        ];
        assert!(!network_down(&one_answered));
        // Two dead domains on a working network are judged on their own...
        let two = [
            at("https://a.org/", false, Some("no such host")),
            at("https://b.org/", false, Some("no such host")),
        ];
        assert!(!network_down(&two));
        // ... unless the resolver itself said it could not work.
        let unresolvable = [at("https://a.org/", false, Some("offline"))];
        assert!(network_down(&unresolvable));
        let mut marked = all_down.to_vec();
        mark_offline(&mut marked);
        assert!(
            marked
                .iter()
                .all(|r| r.reason.as_deref() == Some("offline"))
        );
        assert!(marked.iter().all(|r| !r.is_hard()));
    }

    #[test]
    fn offline_checks_never_make_a_url_dead() {
        let offline: Vec<_> = (0..10)
            .map(|h| rec(h * 30, false, None, Some("offline")))
            .collect();
        assert_eq!(classify(&offline, rule(2, DAY)), State::Unknown);
    }
}
