//! What the daemon runs when: snapshots of new and stale URLs, link checks, composting, and
//! probes while the network is down. Pure: every decision takes the time it is made at, so
//! the tests drive it with a fake clock instead of sleeping (issue 12).
//!
//! The URLs come from the notes, each kept once: a note read adds what it asks; every note
//! read again (after each scan of every file) replaces the set, so a URL that no note has any
//! more leaves then.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::config::{SnapshotConfig, WatchConfig};
use crate::copies::key;
use crate::links::Destination;
use crate::note::NoteFacts;
use crate::snapshot::Plan;
use crate::snapshot::plan::plans_for_notes;

/// How long a root whose snapshots all failed waits before it is tried again.
pub const RETRY_FAILED: Duration = Duration::from_secs(24 * 3600);

/// How often an offline daemon tries one queued snapshot to see whether the network is back.
pub const PROBE_EVERY: Duration = Duration::from_secs(60);

/// After a push or pull that failed (the remote unreachable, a full bucket), the wait before
/// the next try; what was not pushed stays in the archive meanwhile.
pub const REMOTE_RETRY: Duration = Duration::from_secs(60);

/// The newest snapshot of a root URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Newest {
    /// When the newest successful one was taken.
    pub success: Option<Timestamp>,
    /// When the newest attempt was made.
    pub attempt: Timestamp,
}

/// Scheduled work that is not a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Check every link.
    CheckLinks,
    /// Preserve and mark the composted profiles.
    Compost,
    /// Push to the remote what was recorded since the last push.
    Push,
    /// Pull from the remote what other devices recorded.
    Pull,
}

/// Why a snapshot is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The URL has no snapshot yet.
    New,
    /// Its newest snapshot is older than `resnapshot_after`.
    Stale,
    /// Every attempt failed, the last over a day ago.
    Retry,
}

impl Why {
    /// The word the queue keeps.
    pub fn word(self) -> &'static str {
        match self {
            Why::New => "new",
            Why::Stale => "stale",
            Why::Retry => "retry",
        }
    }
}

/// What the notes ask of the daemon: their external URLs (for link checks) and snapshot plans,
/// each kept once however many notes ask for it. Nothing is kept per note: a large vault has
/// tens of thousands of notes that link out and a few thousand distinct URLs, and a daemon's
/// memory should follow the URLs, not the vault (issue 14).
#[derive(Debug, Default)]
struct Asked {
    urls: HashSet<Box<str>>,
    plans: HashSet<Plan>,
}

impl Asked {
    /// Adds what a note asks; whether it asked for a plan not asked for before.
    fn add(&mut self, facts: &NoteFacts, snapshot: &SnapshotConfig) -> bool {
        for link in &facts.links {
            if let Destination::External(url) = link.destination() {
                let url = key(url);
                if !self.urls.contains(url.as_str()) {
                    self.urls.insert(url.into());
                }
            }
        }
        let mut new = false;
        for plan in plans_for_notes([facts], snapshot, None, snapshot.max_pages) {
            new |= self.plans.insert(plan);
        }
        new
    }
}

/// The daemon's schedule.
#[derive(Debug)]
pub struct Schedule {
    snapshot: SnapshotConfig,
    resnapshot_after: Duration,
    check_every: Option<Duration>,
    compost_every: Option<Duration>,
    asked: Asked,
    /// [`Schedule::wanted`], kept until a note changes (asked every few seconds).
    wanted: std::sync::Mutex<Option<Arc<BTreeMap<String, Plan>>>>,
    newest: HashMap<String, Newest>,
    links_checked: Option<Timestamp>,
    composted: Option<Timestamp>,
    /// While the network seems down: when to probe next.
    offline: Option<Timestamp>,
    /// With a remote: the push and pull rhythm, and where they stand.
    remote: Option<RemoteRhythm>,
}

/// When the daemon pushes and pulls.
#[derive(Debug, Clone, Default)]
struct RemoteRhythm {
    push_after: Duration,
    pull_every: Duration,
    /// The last change recorded (a version, a snapshot).
    changed: Option<Timestamp>,
    /// The state the last successful push covered: changes up to then.
    pushed: Option<Timestamp>,
    push_started: Option<Timestamp>,
    pulled: Option<Timestamp>,
    /// After a failure: not before then.
    retry_at: Option<Timestamp>,
}

impl Schedule {
    /// A schedule with these settings, knowing the archive's newest snapshots and when links
    /// were last checked and profiles composted.
    pub fn new(
        watch: &WatchConfig,
        snapshot: &SnapshotConfig,
        newest: HashMap<String, Newest>,
        links_checked: Option<Timestamp>,
        composted: Option<Timestamp>,
    ) -> Schedule {
        Schedule {
            snapshot: snapshot.clone(),
            resnapshot_after: watch.resnapshot_after.get(),
            check_every: watch.check_links_every.nonzero(),
            compost_every: watch.compost_every.nonzero(),
            asked: Asked::default(),
            wanted: std::sync::Mutex::new(None),
            newest,
            links_checked,
            composted,
            offline: None,
            remote: None,
        }
    }

    /// With a remote: push `push_after` after the last recorded change, pull every
    /// `pull_every` (the first pull at once, the first push once something changed).
    pub fn with_remote(mut self, push_after: Duration, pull_every: Duration) -> Schedule {
        self.remote = Some(RemoteRhythm {
            push_after,
            pull_every,
            ..RemoteRhythm::default()
        });
        self
    }

    /// Something was recorded at `now` (versions, a snapshot): the remote lacks it.
    pub fn changed(&mut self, now: Timestamp) {
        if let Some(r) = &mut self.remote {
            r.changed = Some(now);
        }
    }

    /// A job starts at `now`.
    pub fn job_started(&mut self, job: Job, now: Timestamp) {
        if let (Job::Push, Some(r)) = (job, &mut self.remote) {
            r.push_started = Some(now);
        }
    }

    /// A push or pull failed at `now`: tried again after [`REMOTE_RETRY`].
    pub fn job_failed(&mut self, job: Job, now: Timestamp) {
        if let (Job::Push | Job::Pull, Some(r)) = (job, &mut self.remote) {
            r.retry_at = Some(now + REMOTE_RETRY);
        }
    }

    /// A note was read (created or changed): what it asks is added. What it no longer asks
    /// (or a deleted note asked) stays until every note is read again ([`Schedule::all_notes`],
    /// after each of the daemon's scans of every file, at least hourly).
    pub fn note(&mut self, facts: &NoteFacts) {
        if self.asked.add(facts, &self.snapshot) {
            self.forget_wanted();
        }
    }

    /// Every note, read again: what they ask replaces what was asked, so the URLs and plans no
    /// note has any more leave. `read` gives each note's facts to the function it is passed;
    /// when it fails, what was asked stays as it was.
    pub fn all_notes<E>(
        &mut self,
        read: impl FnOnce(&mut dyn FnMut(&NoteFacts)) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut asked = Asked::default();
        let snapshot = &self.snapshot;
        read(&mut |facts| {
            asked.add(facts, snapshot);
        })?;
        self.asked = asked;
        self.forget_wanted();
        Ok(())
    }

    fn forget_wanted(&mut self) {
        *self.wanted.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Every external URL of the vault's notes.
    pub fn urls(&self) -> BTreeSet<String> {
        self.asked.urls.iter().map(|u| u.to_string()).collect()
    }

    /// Every snapshot plan the notes ask for, each root once at the greatest depth asked.
    /// Computed again only after a note changed.
    pub fn wanted(&self) -> Arc<BTreeMap<String, Plan>> {
        let mut cached = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = &*cached {
            return w.clone();
        }
        let mut out: BTreeMap<String, Plan> = BTreeMap::new();
        for plan in &self.asked.plans {
            let root = key(plan.root.as_str());
            match out.get_mut(&root) {
                Some(p) if p.depth >= plan.depth => {}
                _ => {
                    out.insert(root, plan.clone());
                }
            }
        }
        let out = Arc::new(out);
        *cached = Some(out.clone());
        out
    }

    /// The snapshots due at `now`: URLs without one, stale ones, failed ones to retry.
    pub fn due_snapshots(&self, now: Timestamp) -> Vec<(Plan, Why)> {
        let older = |t: Timestamp, d: Duration| now.duration_since(t).unsigned_abs() >= d;
        self.wanted()
            .iter()
            .filter_map(|(root, plan)| {
                let why = match self.newest.get(root) {
                    None => Why::New,
                    Some(Newest {
                        success: Some(t), ..
                    }) if older(*t, self.resnapshot_after) => Why::Stale,
                    Some(Newest {
                        success: None,
                        attempt,
                    }) if older(*attempt, RETRY_FAILED) => Why::Retry,
                    Some(_) => return None,
                };
                Some((plan.clone(), why))
            })
            .collect()
    }

    /// A snapshot of `root` was recorded at `now`.
    pub fn snapshot_recorded(&mut self, root: &str, now: Timestamp, root_captured: bool) {
        let entry = self.newest.entry(root.to_string()).or_insert(Newest {
            success: None,
            attempt: now,
        });
        entry.attempt = now;
        if root_captured {
            entry.success = Some(now);
        }
    }

    /// The job due at `now`, if any: one at a time, link checks first, none while offline.
    pub fn due_job(&self, now: Timestamp) -> Option<Job> {
        if self.offline.is_some() {
            return None;
        }
        let due = |last: Option<Timestamp>, every: Option<Duration>| {
            every.is_some_and(|e| last.is_none_or(|t| now.duration_since(t).unsigned_abs() >= e))
        };
        if due(self.links_checked, self.check_every) && !self.asked.urls.is_empty() {
            return Some(Job::CheckLinks);
        }
        if due(self.composted, self.compost_every) {
            return Some(Job::Compost);
        }
        None
    }

    /// The remote job due at `now`, if any: a push once changes have settled, else a pull
    /// when its time comes. Independent of the web jobs, and of the web being down (the
    /// remote may be on the local network).
    pub fn due_remote(&self, now: Timestamp) -> Option<Job> {
        let due = |last: Option<Timestamp>, every: Duration| {
            last.is_none_or(|t| now.duration_since(t).unsigned_abs() >= every)
        };
        if let Some(r) = &self.remote
            && r.retry_at.is_none_or(|t| now >= t)
        {
            let unpushed = r
                .changed
                .filter(|c| r.pushed.is_none_or(|p| p < *c))
                .is_some_and(|c| now.duration_since(c).unsigned_abs() >= r.push_after);
            if unpushed {
                return Some(Job::Push);
            }
            if due(r.pulled, r.pull_every) {
                return Some(Job::Pull);
            }
        }
        None
    }

    /// A job finished at `now` with the network working: it is not due again for a while.
    pub fn job_done(&mut self, job: Job, now: Timestamp) {
        match job {
            Job::CheckLinks => self.links_checked = Some(now),
            Job::Compost => self.composted = Some(now),
            Job::Push => {
                if let Some(r) = &mut self.remote {
                    r.pushed = r.push_started.take();
                    r.retry_at = None;
                }
            }
            Job::Pull => {
                if let Some(r) = &mut self.remote {
                    r.pulled = Some(now);
                    r.retry_at = None;
                }
            }
        }
    }

    /// When links were last checked and profiles composted (for `status`).
    pub fn last_jobs(&self) -> (Option<Timestamp>, Option<Timestamp>) {
        (self.links_checked, self.composted)
    }

    /// The network seems down at `now`: jobs wait, snapshots go one at a time as probes.
    /// Returns whether this is news.
    pub fn went_offline(&mut self, now: Timestamp) -> bool {
        let news = self.offline.is_none();
        self.offline = Some(now + PROBE_EVERY);
        news
    }

    /// Something answered: back to normal. Returns whether this is news.
    pub fn online(&mut self) -> bool {
        self.offline.take().is_some()
    }

    /// How many snapshots may start at `now` beside `running` ones, at most `limit` at once:
    /// while offline, one probe per [`PROBE_EVERY`], alone.
    pub fn snapshot_slots(&mut self, now: Timestamp, running: usize, limit: usize) -> usize {
        match self.offline {
            Some(probe) if now >= probe && running == 0 => {
                self.offline = Some(now + PROBE_EVERY);
                1
            }
            Some(_) => 0,
            None => limit.max(1).saturating_sub(running),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Period;
    use crate::note::read_note;

    const DAY: i64 = 24;

    fn at(hours: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_hours(hours)
    }

    fn schedule() -> Schedule {
        let watch = WatchConfig {
            resnapshot_after: Period::secs(30 * 86_400),
            check_links_every: Period::secs(86_400),
            compost_every: Period::secs(7 * 86_400),
            ..WatchConfig::default()
        };
        Schedule::new(
            &watch,
            &SnapshotConfig::default(),
            HashMap::new(),
            None,
            None,
        )
    }

    fn note(text: &str) -> NoteFacts {
        read_note(text)
    }

    fn roots(s: &Schedule, now: Timestamp) -> Vec<(String, Why)> {
        s.due_snapshots(now)
            .into_iter()
            .map(|(p, w)| (p.root.to_string(), w))
            .collect()
    }

    #[test]
    fn a_new_url_is_due_at_once_then_again_when_stale() {
        let mut s = schedule();
        s.note(&note("https://x.org/"));
        assert_eq!(roots(&s, at(0)), vec![("https://x.org/".into(), Why::New)]);
        s.snapshot_recorded("https://x.org/", at(0), true);
        assert!(roots(&s, at(29 * DAY)).is_empty());
        assert_eq!(
            roots(&s, at(30 * DAY)),
            vec![("https://x.org/".into(), Why::Stale)]
        );
    }

    #[test]
    fn a_url_whose_snapshots_failed_is_retried_a_day_later() {
        let mut s = schedule();
        s.note(&note("https://x.org/"));
        s.snapshot_recorded("https://x.org/", at(0), false);
        assert!(roots(&s, at(23)).is_empty());
        assert_eq!(
            roots(&s, at(24)),
            vec![("https://x.org/".into(), Why::Retry)]
        );
    }

    #[test]
    fn urls_leave_the_set_when_every_note_is_read_again_without_them() {
        let mut s = schedule();
        s.note(&note("https://x.org/ https://y.org/"));
        s.note(&note("https://y.org/"));
        s.note(&note("just https://x.org/ now"));
        assert_eq!(
            s.urls(),
            BTreeSet::from(["https://x.org/".into(), "https://y.org/".into()])
        );
        // Every note read again: only x.org is still linked to.
        let notes = [note("just https://x.org/ now"), note("no link")];
        s.all_notes(|add| {
            notes.iter().for_each(add);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(s.urls(), BTreeSet::from(["https://x.org/".into()]));
        assert_eq!(roots(&s, at(0)), vec![("https://x.org/".into(), Why::New)]);
        // A failed reading leaves the set as it was.
        assert!(s.all_notes(|_| Err(())).is_err());
        assert_eq!(s.urls().len(), 1);
        s.all_notes(|_| Ok::<(), ()>(())).unwrap();
        assert!(s.urls().is_empty());
        assert!(
            roots(&s, at(0)).is_empty(),
            "no snapshot of a URL no note has"
        );
    }

    #[test]
    fn the_wanted_snapshots_are_kept_until_a_note_asks_for_a_new_one_and_notes_share_them() {
        let mut s = schedule();
        s.note(&note("https://x.org/"));
        assert_eq!(roots(&s, at(0)).len(), 1);
        // Asked again with nothing changed: the same set, not rebuilt from every plan.
        let wanted = s.wanted();
        assert!(Arc::ptr_eq(&wanted, &s.wanted()));
        // A note asking for nothing new keeps it.
        s.note(&note("again https://x.org/"));
        assert!(Arc::ptr_eq(&wanted, &s.wanted()));
        s.note(&note("https://x.org/ and https://y.org/"));
        assert_eq!(
            roots(&s, at(0)).len(),
            2,
            "a new note's URL is wanted at once"
        );
        assert_eq!(s.asked.urls.len(), 2, "one copy of a URL two notes have");
        assert_eq!(s.asked.plans.len(), 2, "one copy of a plan two notes have");
    }

    #[test]
    fn jobs_run_when_due_links_first_and_none_while_offline() {
        let mut s = schedule();
        assert_eq!(
            s.due_job(at(0)),
            Some(Job::Compost),
            "no URLs: no link check"
        );
        s.note(&note("https://x.org/"));
        assert_eq!(s.due_job(at(0)), Some(Job::CheckLinks));
        s.job_done(Job::CheckLinks, at(0));
        assert_eq!(s.due_job(at(1)), Some(Job::Compost));
        s.job_done(Job::Compost, at(1));
        assert_eq!(s.due_job(at(23)), None);
        assert_eq!(s.due_job(at(DAY)), Some(Job::CheckLinks));
        assert!(s.went_offline(at(DAY)));
        assert_eq!(s.due_job(at(3 * DAY)), None, "offline: nothing is judged");
        assert!(s.online());
        assert_eq!(s.due_job(at(3 * DAY)), Some(Job::CheckLinks));
        assert_eq!(s.due_job(at(8 * DAY)), Some(Job::CheckLinks));
    }

    #[test]
    fn a_remote_is_pushed_after_changes_settle_and_pulled_on_its_rhythm() {
        let mut s = schedule().with_remote(Duration::from_secs(30), Duration::from_secs(3600));
        let t0 = at(0);
        let secs = |n: i64| t0 + jiff::SignedDuration::from_secs(n);
        // Nothing changed: the first pull is due at once.
        let due = |s: &Schedule, t| s.due_remote(t);
        assert_eq!(due(&s, t0), Some(Job::Pull));
        s.job_done(Job::Pull, t0);
        assert_eq!(due(&s, secs(10)), None);
        s.changed(secs(10));
        assert_eq!(due(&s, secs(20)), None, "waits for changes to settle");
        assert_eq!(due(&s, secs(40)), Some(Job::Push));
        s.job_started(Job::Push, secs(40));
        s.changed(secs(45)); // recorded while the push ran
        s.job_done(Job::Push, secs(50));
        assert_eq!(
            due(&s, secs(80)),
            Some(Job::Push),
            "the change made meanwhile goes next"
        );
        s.job_started(Job::Push, secs(80));
        s.job_failed(Job::Push, secs(81));
        assert_eq!(due(&s, secs(100)), None, "a failure waits a minute");
        assert_eq!(due(&s, secs(142)), Some(Job::Push));
        s.job_started(Job::Push, secs(142));
        s.job_done(Job::Push, secs(143));
        assert_eq!(due(&s, secs(1000)), None);
        assert_eq!(due(&s, secs(3600)), Some(Job::Pull));
    }

    #[test]
    fn offline_snapshots_go_one_probe_a_minute() {
        let mut s = schedule();
        assert_eq!(s.snapshot_slots(at(0), 0, 2), 2);
        assert_eq!(s.snapshot_slots(at(0), 1, 2), 1);
        s.went_offline(at(0));
        let minute = jiff::SignedDuration::from_secs(60);
        assert_eq!(s.snapshot_slots(at(0), 0, 2), 0);
        assert_eq!(s.snapshot_slots(at(0) + minute, 0, 2), 1, "a probe");
        assert_eq!(s.snapshot_slots(at(0) + minute, 0, 2), 0, "one per minute");
        assert_eq!(s.snapshot_slots(at(0) + minute * 3, 1, 2), 0, "alone");
        s.online();
        assert_eq!(s.snapshot_slots(at(0) + minute * 3, 1, 2), 1);
    }

    #[test]
    fn a_profile_url_is_crawled_at_the_greatest_depth_asked() {
        let mut s = schedule();
        s.note(&note("---\nurl: https://x.org/\n---\n"));
        s.note(&note("https://x.org/"));
        let wanted = s.wanted();
        assert_eq!(
            wanted["https://x.org/"].depth,
            SnapshotConfig::default().depth
        );
    }
}
